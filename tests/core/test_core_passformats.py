"""Pass frames are written in the formats chosen for read speed (machinima.passes.PASS_ENCODING),
checked with OpenImageIO's reader (not ours): uncompressed float EXR depth, half linear light,
a stored PNG beauty; lossless either way."""

from __future__ import annotations

import json

import numpy as np
import pytest

from machinima.imageseq import ImageSeqError, write_image
from machinima.passes import PassSet

oiio = pytest.importorskip("OpenImageIO")


def _spec(path):
    inp = oiio.ImageInput.open(str(path))
    assert inp is not None, oiio.geterror()
    try:
        return inp.spec(), inp.read_image("float")
    finally:
        inp.close()


def test_pass_frames_are_encoded_for_fast_reads_and_stay_lossless(tmp_path):
    rng = np.random.default_rng(0)
    ps = PassSet.create(tmp_path / "passes", width=64, height=32, fps="24")
    depth = rng.uniform(0.5, 80.0, (32, 64)).astype(np.float32)
    light = rng.uniform(0.0, 2.0, (32, 64, 3)).astype(np.float32)
    rgb = rng.integers(0, 256, (32, 64, 3), dtype=np.uint8)
    ps.write("depth", 0, depth)
    ps.write("light", 0, light)
    ps.write("rgb", 0, rgb)
    ps.save()

    spec, pixels = _spec(ps.path("depth", 0))
    assert spec.format == oiio.FLOAT and spec.get_string_attribute("compression") == "none"
    assert np.array_equal(pixels[..., 0], depth)  # exact: depth is data
    spec, pixels = _spec(ps.path("light", 0))
    assert spec.format == oiio.HALF and spec.get_string_attribute("compression") == "none"
    assert np.allclose(pixels[..., :3], light, rtol=1e-3, atol=1e-4)  # half: far under an 8-bit step
    assert np.array_equal(PassSet.open(tmp_path / "passes").read("rgb", 0), rgb)
    assert ps.path("rgb", 0).stat().st_size > rgb.nbytes  # PNG level 0: stored, not deflated

    doc = json.loads((tmp_path / "passes" / "passes.json").read_text())["passes"]
    assert doc["depth"]["encoding"] == "exr-float-none" and doc["light"]["encoding"] == "exr-half-none"
    assert doc["rgb"]["encoding"] == "png-level0"


def test_old_pass_sets_still_read(tmp_path):
    """Passes written before (PIZ EXR, PNG level 1) read the same: users keep their renders."""
    ps = PassSet.create(tmp_path / "passes", width=16, height=8, fps="24")
    depth = np.linspace(1, 9, 128, dtype=np.float32).reshape(8, 16)
    write_image(ps.path("depth", 0), depth)  # the old default: PIZ
    write_image(ps.path("rgb", 0), np.full((8, 16, 3), 7, np.uint8), png_level=1)
    ps.meta["frames"] = [0]
    ps.meta["passes"] = {"depth": {"format": "exr"}, "rgb": {"format": "png"}}
    ps.save()
    back = PassSet.open(tmp_path / "passes")
    assert np.array_equal(back.read("depth", 0), depth) and back.read("rgb", 0).max() == 7


def test_unknown_exr_compression_is_a_clear_error(tmp_path):
    with pytest.raises(ImageSeqError, match="EXR compression must be one of"):
        write_image(tmp_path / "x.exr", np.zeros((4, 4), np.float32), exr_compression="fast")
    assert not list(tmp_path.iterdir())

"""`machinima takes export TAKE --step STEP --format mp4|prores|dnxhr|exr|png`: read back by
PyAV (codec, pixel format, frame count, timecode track), OpenEXR/OpenImageIO (half, PIZ,
linear values, header metadata) and c2pa-python (the delivered files are disclosed)."""

import hashlib
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from machinima.cli import app
from machinima.poststep import PostStep

N = 5


def _frame(f):
    y, x = np.mgrid[0:192, 0:256]
    return np.clip(np.stack([x, y, np.full_like(x, 40 * f)], -1), 0, 255).astype(np.uint8)


@pytest.fixture
def take(tmp_path, monkeypatch):
    from machinima.take import Take

    for k in list(__import__("os").environ):
        if k.startswith("MACHINIMA_"):
            monkeypatch.delenv(k)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "machinima.toml").write_text('production = "film"\n')
    t = Take.create(tmp_path / "takes", production="film", scene="1", shot="a", fps="24", timecode_in="01:00:00:00")
    t.finalize()
    t.close()
    PostStep(t.path / "post" / "look", "stylize", {}).run(range(N), lambda fr: [{"rgb": _frame(f)} for f in fr], progress=False)
    return t.path


def _export(take, fmt, out):
    res = CliRunner().invoke(app, ["takes", "export", str(take), "--step", "look", "--format", fmt, "--out", str(out)])
    assert res.exit_code == 0, (res.output, res.exception)
    return res


@pytest.mark.parametrize("fmt,name,codec,pix_fmt", [("mp4", "d.mp4", "h264", "yuv420p"), ("prores", "d.mov", "prores", "yuv422p10le"),
                                                    ("dnxhr", "d.mov", "dnxhd", "yuv422p")])
def test_movies_have_the_right_codec_pixel_format_timecode_and_disclosure(take, tmp_path, fmt, name, codec, pix_fmt):
    import av

    from machinima import provenance as pv

    out = tmp_path / "deliver" / name
    _export(take, fmt, out)
    with av.open(str(out)) as c:
        v = c.streams.video[0]
        assert (v.codec_context.name, v.codec_context.pix_fmt, v.average_rate) == (codec, pix_fmt, 24)
        assert v.metadata.get("timecode") == "01:00:00:00" and any(s.type == "data" for s in c.streams)  # a tmcd track
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(frames) == N
    assert np.abs(frames[2].astype(int) - _frame(2)).mean() < 3  # the step's pictures (watermarked, compressed; BT.709 both ways)
    r = pv.verify_file(out)
    assert r.status == "ok-local" and r.watermark_matches and r.step == "look", r.to_doc()


def test_exr_frames_are_linear_half_piz_with_header_metadata_and_listed(take, tmp_path):
    OpenEXR = pytest.importorskip("OpenEXR")
    from machinima import provenance as pv
    from machinima.delivery import srgb_to_linear
    from machinima.imageseq import read_image

    out = tmp_path / "exr"
    _export(take, "exr", out)
    files = sorted(out.glob("*.exr"))
    assert [p.name for p in files] == [f"{f:06d}.exr" for f in range(N)]
    f = OpenEXR.File(str(files[1]))
    assert f.header()["compression"] == OpenEXR.PIZ_COMPRESSION
    px = next(iter(f.channels().values())).pixels
    step_frame = read_image(take / "post" / "look" / "rgb" / f"000001.{'qoi' if (take / 'post/look/rgb/000001.qoi').exists() else 'png'}")
    assert px.dtype == np.float16 and np.allclose(px.astype(np.float32), srgb_to_linear(step_frame), atol=2e-3)
    side = out / "disclosure.png"
    state, man, _ = pv.read_manifest(side)
    seq = next(a for a in man["assertions"] if a["label"] == "org.machinima.sequence")["data"]["frames"]
    assert seq["000003.exr"] == hashlib.sha256(files[3].read_bytes()).hexdigest()
    oiio = pytest.importorskip("OpenImageIO")
    spec = oiio.ImageInput.open(str(files[2])).spec()
    assert spec.getattribute("oiio:ColorSpace").startswith("lin_rec709") and spec.getattribute("machinima:timecode") == "01:00:00:02"
    assert tuple(spec.getattribute("FramesPerSecond")) in ((24, 1), 24.0) or spec.getattribute("FramesPerSecond") == 24


def test_png_frames_each_signed_and_motion_formats_unchanged(take, tmp_path):
    from machinima import provenance as pv

    _export(take, "png", tmp_path / "png")
    reps = pv.verify_path(tmp_path / "png")
    assert len(reps) == N and all(r.status == "ok-local" for r in reps), [r.to_doc() for r in reps]
    res = CliRunner().invoke(app, ["takes", "export", str(take), "--step", "look", "--format", "glb", "--out", str(tmp_path / "x")])
    assert res.exit_code != 0 and "mp4 | prores | dnxhr | exr | png" in str(res.exception or res.output)
    res = CliRunner().invoke(app, ["takes", "export", str(take), "--step", "nope", "--format", "mp4", "--out", str(tmp_path / "x.mp4")])
    assert res.exit_code != 0 and "no post step" in str(res.exception or res.output)


def test_takes_verify_counts_a_steps_frames_and_finds_a_changed_one(take):
    res = CliRunner().invoke(app, ["takes", "verify", str(take)])
    assert res.exit_code == 0, res.output
    rgb = sorted((take / "post" / "look" / "rgb").iterdir())
    qoi = rgb[0].suffix == ".qoi"
    assert f"post/look: {N} frames, {N} files ({N if qoi else 0} QOI{', disclosure.png' if qoi else ''})" in res.output
    if not qoi:
        return
    data = bytearray(rgb[2].read_bytes())
    data[len(data) // 2] ^= 0x01
    rgb[2].write_bytes(bytes(data))
    (take / "post" / "look" / "disclosure.png").unlink()
    res = CliRunner().invoke(app, ["takes", "verify", str(take)])
    assert res.exit_code == 1 and "000002.qoi changed after it was written" in res.output and "disclosure.png" in res.output

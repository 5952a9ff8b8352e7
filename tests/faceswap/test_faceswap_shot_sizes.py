"""Faces at every shot size in extract and merge (machinima.faces underneath), and steps that
find no face where one was asked for fail with a message instead of reporting success."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from faceswap_testdata import write_clip


def _wide_clip(picture: np.ndarray, n: int, face_frac: float, size=(1280, 720)) -> list[np.ndarray]:
    """A 720p plate (scikit-image's coffee photo) with the portrait pasted small and drifting: its
    face ~``face_frac`` of the frame height (the astronaut's face is ~0.2 of her picture)."""
    import cv2
    import skimage.data

    bg = cv2.resize(skimage.data.coffee(), size, interpolation=cv2.INTER_AREA)
    s = face_frac * size[1] / (0.2 * picture.shape[0])
    out = []
    for i in range(n):
        f = bg.copy()
        cv2.warpAffine(picture, np.float32([[s, 0, 500 + 6 * i], [0, s, 250 + 2 * i]]), size, dst=f, flags=cv2.INTER_AREA,
                       borderMode=cv2.BORDER_TRANSPARENT)
        out.append(f)
    return out


@pytest.mark.parametrize("face_frac", [0.10, 0.05])
def test_extract_finds_the_face_on_every_frame_of_medium_and_wide_shots(tmp_path, astronaut, face_frac):
    from faceswap.extract import extract

    write_clip(tmp_path / "clip", _wide_clip(astronaut, 4, face_frac))
    r = extract(tmp_path / "clip", tmp_path / "fs", size=64, progress=False)
    assert r.added == 4 and r.no_face == [], r.messages()


def test_steps_fail_with_a_message_when_no_frame_has_a_face(tmp_path, tiny_model):
    import cv2
    import skimage.data

    from faceswap.errors import NoFaceError
    from faceswap.extract import extract
    from faceswap.merge import MergeOptions, merge

    write_clip(tmp_path / "empty", [cv2.resize(skimage.data.coffee(), (320, 240))] * 3)
    with pytest.raises(NoFaceError, match=r"no face found in any of the 3 frame\(s\)"):
        extract(tmp_path / "empty", tmp_path / "fs", size=64, progress=False)
    with pytest.raises(NoFaceError, match=r"no face found in any of the 3 frame\(s\)"):
        merge(tmp_path / "empty", tiny_model, out=tmp_path / "out", options=MergeOptions(engine="none", blend="alpha"),
              override="test", production="t", rights_store=tmp_path / "r", progress=False)
    assert not list((tmp_path / "out").glob("rgb/[0-9]*"))  # nothing reported as merged (no frame, whatever its format)
    # the command line: one line on stderr, exit 1, no traceback
    r = subprocess.run([sys.executable, "-m", "machinima", "faceswap", "extract", str(tmp_path / "empty"), "--out", str(tmp_path / "fs2")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 1 and "no face found in any of the 3 frame(s)" in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_merge_track_ids_that_do_not_exist_are_an_error(tmp_path, grace, tiny_model):
    import cv2

    from faceswap.errors import NoFaceError
    from faceswap.merge import MergeOptions, merge

    write_clip(tmp_path / "clip", [cv2.resize(grace, (256, 300))] * 2)
    with pytest.raises(NoFaceError, match="--track 7: no such face track.*tracks found: 0"):
        merge(tmp_path / "clip", tiny_model, out=tmp_path / "out", options=MergeOptions(engine="none", blend="alpha", tracks=[7]),
              override="test", production="t", rights_store=tmp_path / "r", progress=False)


def test_the_summary_says_when_smoothing_made_jitter_worse(tmp_path):
    from faceswap.merge import MergeReport

    worse = MergeReport(tmp_path, jitter_raw=0.0059, jitter_used=0.0161, smooth="one-euro")
    assert "WORSE" in worse.jitter_message() and "0.006 px -> 0.016 px" in worse.jitter_message()
    better = MergeReport(tmp_path, jitter_raw=0.3, jitter_used=0.12)
    assert better.jitter_message() == "landmark jitter 0.300 px -> 0.120 px after zero-lag smoothing"

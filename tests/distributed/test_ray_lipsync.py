"""``lipsync video --ray``: the mouth re-synced on a local Ray cluster, byte-identical to the
local run, frames without a face reported back to the driver as a local run lists them."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from ray_helpers import frame_files, params_apart_from_time

ray = pytest.importorskip("ray")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lipsync"))


def test_lipsync_video_on_ray_is_identical_and_lists_faceless_frames(cluster, tmp_path):
    from lipsync_helpers import make_take, need_espeak, write_wav
    from skimage import data

    from lipsync.truth import synthesize
    from lipsync.video import resync_video
    from machinima.imageseq import find_frame, write_image
    from machinima.provenance import record_decision

    need_espeak()
    face = np.ascontiguousarray(data.astronaut())
    plate = tmp_path / "plate"
    plate.mkdir()
    for i in range(8):
        img = np.roll(face, 2 * i, axis=1) if i != 5 else np.full_like(face, 90)  # frame 6: no face
        write_image(plate / f"{i + 1:06d}.png", img)
    write_wav(tmp_path / "line.wav", synthesize("Bob moved five heavy boxes.", voice="en-us", speed=160).samples[:16000])
    take = make_take(tmp_path / "takes", ("eileen",), fps=25)
    record_decision(take, False, "pixel-exact Ray test")
    kw = dict(audio=tmp_path / "line.wav", override="public-domain NASA portrait, test", allow_no_face=True, progress=False)
    local = resync_video(take, plate, step_id="ls-local", **kw)
    on_ray = resync_video(take, plate, step_id="ls-ray", ray="local", chunk_size=3, **kw)
    assert local.no_face == on_ray.no_face == [6]
    assert local.resynced == on_ray.resynced == 7
    a, b = frame_files(take / "post" / "ls-local", "frames"), frame_files(take / "post" / "ls-ray", "frames")
    assert len(a) == 8 and a == b
    assert params_apart_from_time(take / "post" / "ls-local") == params_apart_from_time(take / "post" / "ls-ray")
    changed = np.abs(np.asarray(face, int) - _read(find_frame(take / "post" / "ls-ray" / "frames", 1))).max()
    assert changed > 0  # the mouth was repainted: identical outputs are not two copies of the plate
    again = resync_video(take, plate, step_id="ls-ray", ray="local", **kw)
    assert again.resynced == 0 and again.skipped == 8 and again.no_face == [6]


def _read(p):
    from machinima.imageseq import read_image

    return read_image(p).astype(int)

import subprocess
import sys

import numpy as np
import pytest

from machinima.imageseq import find_frame, list_frames, read_image, write_image
from stylize.dream import load_dream, parse_dream
from stylize.dream_schedule import ScheduleError
from stylize.dream_warp import intrinsics_from_fov, relative_motion, warp_3d
from stylize.errors import LookError


def run(*args, cwd):
    return subprocess.run([sys.executable, "-m", "machinima", "dream", *args], capture_output=True, text=True, cwd=cwd)


def _image(path):
    rng = np.random.default_rng(3)
    import cv2

    img = cv2.resize(rng.integers(0, 255, (12, 16, 3), dtype=np.uint8), (96, 72), interpolation=cv2.INTER_CUBIC)
    write_image(path, img)
    return img


def test_shipped_dream_parses_and_bad_files_are_named():
    d = load_dream("drift")
    assert d.frames == 48 and d.cadence == 2 and d.value("zoom", 0) == 1.0 and d.prompts(30).startswith("the same set")
    with pytest.raises(LookError, match="unknown schedule 'wobble'"):
        parse_dream({"schedules": {"wobble": "0:(1)"}})
    with pytest.raises(ScheduleError, match="schedule 'zoom'.*name 'os'"):
        parse_dream({"schedules": {"zoom": "0:(os)"}})
    with pytest.raises(LookError, match="'mode'"):
        parse_dream({"mode": "4d"})


def test_dream_from_an_image_resumes_and_is_deterministic(tmp_path):
    _image(tmp_path / "init.png")
    r = run("init.png", "--frames", "4", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = run("init.png", "--frames", "8", cwd=tmp_path)
    assert "4 dream frames made, 4 already done" in r.stdout  # a longer run continues a shorter one
    out = tmp_path / "dream-drift"
    assert (out / "dream-drift.mp4").exists() and len(list_frames(out / "frames")) == 8
    r = run("init.png", "--frames", "8", "--step-id", "again", cwd=tmp_path)
    for f in range(8):
        assert np.array_equal(read_image(find_frame(out / "frames", f)), read_image(find_frame(tmp_path / "again" / "frames", f)))
    zoomed = read_image(find_frame(out / "frames", 7))
    assert not np.array_equal(zoomed, read_image(find_frame(out / "frames", 6)))


def test_3d_dream_follows_the_take_camera(tmp_path):
    from machinima.passes import CameraFrame, PassSet, intrinsics, look_at
    from machinima.take import Take

    take = Take.create(tmp_path / "takes", production="p", scene="1", shot="1", fps=24)
    take.finalize()
    ps = PassSet.create(take.passes_dir(), width=96, height=72, fps="24")
    img = _image(tmp_path / "x.png")
    cams = {}
    for f in range(4):
        ps.write("rgb", f, img)
        ps.write("depth", f, np.full((72, 96), 4.0, np.float32))
        eye = np.array([0.05 * f, 1.5, 4.0])
        cams[f] = CameraFrame(intrinsics(96, 72), look_at(eye, eye - [0, 0, 1.0]), 96, 72)
    ps.write_cameras(cams)
    ps.save()
    (tmp_path / "follow.toml").write_text(
        'look = "painted"\nframes = 4\nmode = "3d"\ncamera = "take"\ncadence = 2\nfov = 40\ncolor_coherence = "none"\n'
    )
    r = run(str(take.path), "--dream", str(tmp_path / "follow.toml"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = take.post_dir("dream-follow") / "frames"
    f0, f1 = read_image(find_frame(out, 0)), read_image(find_frame(out, 1))
    R, t = relative_motion(cams[0].world_to_camera, cams[1].world_to_camera)
    expect = warp_3d(f0, np.full((72, 96), 4.0), intrinsics_from_fov(96, 72, 40), R, t)
    assert np.abs(f1.astype(int) - expect.astype(int)).max() <= 1  # frame 1 (between diffusions) = the camera's move

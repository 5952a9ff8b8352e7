"""Ctrl-C during a Cycles render: the real `machinima blender render` process gets SIGINT while
Cycles holds the main thread, stops within a second, keeps finished frames, leaves no temporary
folders, and the same command resumes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from blender_helpers import make_take

from machinima import skeleton
from machinima.passes import PassSet

pytest.importorskip("bpy")

SET = {
    "set": {"name": "room"},
    "floor": {"size": [20, 20]},
    "walls": [{"id": "back", "from": [-10, -4], "to": [10, -4], "thickness": 0.2, "height": 5}],
    "lights": [{"id": "lamp", "type": "area", "position": [2, 4, 3], "target": [0, 0, 0], "size": 3}],
    "cameras": [{"id": "cam", "position": [0, 1.5, 5], "target": [0, 1.0, 0], "lens": 30}],
}


FRAMES = 4


def _camera_frames(passes) -> int:
    try:
        return len(json.loads((passes / "camera.json").read_text())["frames"])
    except (OSError, ValueError, KeyError):
        return 0


def test_ctrl_c_during_cycles_stops_within_a_second_keeps_frames_and_resumes(tmp_path):
    set_file = tmp_path / "room.json"
    set_file.write_text(json.dumps(SET))
    take = make_take(tmp_path / "takes", {"ana": np.repeat(skeleton.rest_pose()[None], FRAMES, 0)}, fps=24)
    passes = take / "passes"
    # a Cycles frame takes seconds here even at 160x90 (scene sync, kernels): SIGINT lands inside one
    cmd = [sys.executable, "-m", "machinima", "blender", "render", str(take), "--set", str(set_file), "--passes", "rgb",
           "--res", "160x90", "--samples", "64", "--no-denoise", "--frames", f"0:{FRAMES - 1}"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 120
        while _camera_frames(passes) < 1 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        # into a later frame's render (a fast machine finishes a frame in well under a second, so poll)
        while not list(passes.glob(".render-*")) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        assert proc.poll() is None, proc.communicate()
        assert list(passes.glob(".render-*")), "a render should be in progress"
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        stopped = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    kept = _camera_frames(passes)
    print({"stop_seconds": round(stopped, 3), "kept": kept})
    assert proc.returncode == 130, err
    assert stopped < 1.0, stopped
    assert 1 <= kept < FRAMES
    assert "Traceback" not in err and f"interrupted: {kept} finished frames kept" in err
    assert not list(passes.glob(".render-*")) and not list(passes.rglob(".*.*"))  # no temporary folders or half files
    ps = PassSet.open(passes)
    assert [f for f in ps.frames if (passes / "rgb" / f"{f:06d}.png").exists()] == list(range(kept))
    # the same command resumes: the kept frames are not rendered again
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert f"{FRAMES - kept} frames rendered, {kept} already done" in r.stdout
    assert PassSet.open(passes).frames == list(range(FRAMES))

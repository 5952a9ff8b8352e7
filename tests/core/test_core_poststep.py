import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from machinima.imageseq import read_image
from machinima.poststep import Interrupted, PostStep


def _process(batch):
    return [{"frames": np.full((8, 8, 3), f, np.uint8), "depth": np.full((8, 8), f / 10, np.float32)} for f in batch]


def test_run_resume_and_param_change(tmp_path):
    calls = []

    def proc(batch):
        calls.extend(batch)
        return _process(batch)

    step = PostStep(tmp_path / "post" / "s1", "test", {"strength": 0.5})
    rep = step.run(range(6), proc, batch_size=4, progress=False)
    assert rep.done == list(range(6)) and calls == list(range(6))
    assert read_image(step.output_path("frames", 3)).mean() == 3
    assert np.isclose(read_image(step.output_path("depth", 3, "exr")).mean(), 0.3)
    calls.clear()
    again = PostStep(tmp_path / "post" / "s1", "test", {"strength": 0.5})
    rep = again.run(range(6), proc, progress=False)
    assert rep.done == [] and rep.skipped == list(range(6)) and calls == []
    # a frame's own input changes: only that frame is redone
    rep = again.run(range(6), proc, frame_inputs=lambda f: {"seed": 1 if f == 2 else 0}, progress=False)
    # (keys changed for every frame: frame_inputs adds a key to all) -> all redone
    assert rep.done == list(range(6))
    rep = again.run(range(6), proc, frame_inputs=lambda f: {"seed": 5 if f == 2 else 0}, progress=False)
    assert rep.done == [2]
    changed = PostStep(tmp_path / "post" / "s1", "test", {"strength": 0.6})
    assert changed.run(range(6), proc, progress=False).done == list(range(6))
    params = json.loads((tmp_path / "post" / "s1" / "params.json").read_text())
    assert params["params"] == {"strength": 0.6} and params["versions"]["numpy"]


def test_missing_output_file_is_redone_and_torn_ledger_tolerated(tmp_path):
    step = PostStep(tmp_path / "s", "test", {})
    step.run(range(3), _process, progress=False)
    step.output_path("frames", 1).unlink()
    with open(tmp_path / "s" / "ledger.jsonl", "a") as fh:
        fh.write('{"frame": 2, "key": "tor')  # a line cut by a crash
    again = PostStep(tmp_path / "s", "test", {})
    assert again.run(range(3), _process, progress=False).done == [1]


def test_errors_skip_or_raise(tmp_path):
    def bad(batch):
        if 1 in batch:
            raise ValueError("corrupt source frame 1")
        return _process(batch)

    step = PostStep(tmp_path / "s", "test", {})
    rep = step.run(range(3), bad, progress=False, on_error="skip")
    assert rep.done == [0, 2] and "corrupt" in rep.failed[1]
    with pytest.raises(ValueError):
        PostStep(tmp_path / "t", "test", {}).run(range(3), bad, progress=False)


SLOW = r"""
import sys, time, numpy as np
from machinima.poststep import PostStep, Interrupted
def proc(batch):
    print("frame", batch[0], flush=True)
    time.sleep(0.3)
    return [{"frames": np.zeros((64, 64, 3), np.uint8)} for _ in batch]
try:
    PostStep(sys.argv[1], "slow", {}).run(range(100), proc, progress=False)
except Interrupted as e:
    print("INTERRUPTED", e, flush=True)
    sys.exit(3)
"""


def test_sigint_finishes_frame_in_hand_then_stops(tmp_path):
    out = tmp_path / "s"
    p = subprocess.Popen([sys.executable, "-c", SLOW, str(out)], stdout=subprocess.PIPE, text=True)
    seen = 0
    while seen < 3:
        if p.stdout.readline().startswith("frame"):
            seen += 1
    p.send_signal(signal.SIGINT)
    rest, _ = p.communicate(timeout=30)
    assert p.returncode == 3 and "run the same command again" in rest
    files = sorted((out / "frames").iterdir())
    assert not [f for f in files if f.name.startswith(".")]  # no temp files: nothing half-written
    ledger = [json.loads(line) for line in (out / "ledger.jsonl").read_text().splitlines()]
    assert len(ledger) == len(files) >= 3
    # resume: the finished frames are skipped
    step = PostStep(out, "slow", {})
    assert set(step.frames_done()) == {r["frame"] for r in ledger}


def test_params_extras_survive_run(tmp_path):
    step = PostStep(tmp_path / "s", "test", {})
    step.write_params(plan={"keyframes": [0, 4]})
    step.run(range(2), _process, progress=False)
    assert json.loads((tmp_path / "s" / "params.json").read_text())["plan"] == {"keyframes": [0, 4]}

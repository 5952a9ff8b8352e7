"""QC of a step made from passes every 2nd frame (the demo's): it reported 'pairs 0, mean None'."""

import subprocess
import sys

from stylize_helpers import make_take

from machinima.passes import PassSet
from stylize.look import Look
from stylize.qc import qc_step
from stylize.runner import stylize_take

LOOK = {"name": "paint", "engine": "classical", "classical": {"sigma_s": 20.0}, "controls": [{"kind": "lineart"}],
        "cadence": {"mode": "every"}}


def _every_2nd(take):
    """Keep the even frames of the passes, as `machinima blender render --step 2` writes them."""
    ps = PassSet.open(take / "passes")
    for name in ("rgb", "depth", "pose", "mask/ada"):
        for f, p in ps.frame_files(name).items():
            if f % 2:
                p.unlink()
    ps.meta["frames"] = [f for f in ps.frames if f % 2 == 0]
    ps.save()


def test_qc_pairs_consecutive_frames_that_exist(tmp_path):
    take = make_take(tmp_path / "takes", n=12)
    _every_2nd(take)
    res = stylize_take(take, Look.from_doc(LOOK), progress=False, video=False)
    assert sorted(res.report.done) == list(range(0, 12, 2))
    rep = qc_step(res.out_dir)
    assert rep["pairs"] == 5 and rep["gap"] == 2 and rep["mean"] is not None and rep["input_mean"] is not None
    assert rep["frames_note"] == "every 2nd frame (0..10, 6 frames)"
    r = subprocess.run([sys.executable, "-m", "machinima", "stylize", "qc", str(res.out_dir)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "pairs are 2 frames apart" in r.stdout

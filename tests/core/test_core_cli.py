import subprocess
import sys

import numpy as np

from machinima.skeleton import rest_pose
from machinima.take import Take


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "machinima", *args], capture_output=True, text=True, cwd=cwd)


def _make(root):
    t = Take.create(root, production="p", scene="1", shot="1", fps=24, performers=["ada"])
    t.add_performer("ada")
    t.store.append("mocap/ada", t.store.origin_ns + np.arange(24) * 41_666_667, np.broadcast_to(rest_pose(), (24, 55, 7)))
    t.finalize()
    return t


def test_version_and_help():
    r = run("--version")
    assert r.returncode == 0 and "machinima 0.1.0" in r.stdout
    assert "takes" in run("--help").stdout


def test_takes_commands(tmp_path):
    root = tmp_path / "takes"
    t = _make(root)
    r = run("takes", "list", "--root", str(root))
    assert r.returncode == 0 and "p_1_1_t001" in r.stdout
    assert "mocap/ada" in run("takes", "show", t.id, "--root", str(root)).stdout
    assert run("takes", "verify", t.id, "--root", str(root)).returncode == 0
    r = run("takes", "export", t.id, "--root", str(root), "--out", str(tmp_path / "bvh"))
    assert r.returncode == 0 and (tmp_path / "bvh" / f"{t.id}_ada.bvh").exists()
    r = run("takes", "import", str(tmp_path / "bvh" / f"{t.id}_ada.bvh"), "--performer", "bo", "--root", str(root))
    assert r.returncode == 0, r.stderr
    assert run("takes", "rebuild-catalog", "--root", str(root)).stdout.strip().endswith("indexed 2 take(s)")
    assert run("takes", "rm", t.id, "--root", str(root)).returncode == 0
    assert (root / ".trash").exists()


def test_errors_are_one_line_without_traceback(tmp_path):
    r = run("takes", "show", "nope", "--root", str(tmp_path))
    assert r.returncode == 1
    assert "Traceback" not in r.stderr and r.stderr.startswith("error: no take 'nope'")
    t = _make(tmp_path)
    (t.path / "take.json").write_text("{")
    r = run("takes", "verify", t.id, "--root", str(tmp_path))
    assert r.returncode == 1 and "not valid JSON" in r.stderr and "Traceback" not in r.stderr


def test_takes_list_follows_take_folders_the_catalog_missed(tmp_path):
    """A take.json written while its catalog row could not be (a full disk fails both), a take
    folder removed by hand: `takes list` shows the folders as they are, without rebuild-catalog."""
    import json

    from machinima.fsutil import atomic_write_json

    root = tmp_path / "takes"
    t = _make(root)
    gone = Take.create(root, production="p", scene="1", shot="2", fps=24)
    gone.finalize()
    doc = json.loads((t.path / "take.json").read_text())
    doc["status"], doc["notes"] = "failed", ["recording stopped: disk full"]
    atomic_write_json(t.path / "take.json", doc)  # behind the catalog's back
    import shutil

    shutil.rmtree(gone.path)
    r = run("takes", "list", "--root", str(root), "--json")
    assert r.returncode == 0, r.stderr
    assert [(x["id"], x["status"]) for x in json.loads(r.stdout)] == [(t.id, "failed")]
    r = run("takes", "list", "--root", str(root), "--status", "failed")
    assert t.id in r.stdout


def test_takes_list_tells_the_truth_on_a_full_disk(tmp_path):
    """The catalog cannot be written on a full disk (neither when a take fails nor when it is
    listed): `takes list` still shows each take as its take.json says."""
    import json

    from fs_helpers import fill, tmpfs

    from machinima.fsutil import atomic_write_json

    with tmpfs(tmp_path / "disk", "2m") as root:
        t = _make(root)
        assert run("takes", "list", "--root", str(root)).returncode == 0  # a catalog on disk
        doc = json.loads((t.path / "take.json").read_text())
        doc["status"] = "failed"
        atomic_write_json(t.path / "take.json", doc)
        fill(root)
        r = run("takes", "list", "--root", str(root), "--json")
        assert r.returncode == 0 and [(x["id"], x["status"]) for x in json.loads(r.stdout)] == [(t.id, "failed")], r.stderr

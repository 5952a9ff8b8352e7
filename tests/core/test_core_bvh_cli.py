"""`takes import/export` and `mocap send --bvh` as a person types them: what was chosen is
printed, what is wrong is one line."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

from bvh_helpers import DATA

from machinima.take import Take


def run(*args):
    return subprocess.run([sys.executable, "-m", "machinima", *args], capture_output=True, text=True, timeout=120)


def test_takes_import_prints_what_it_chose_and_warns_of_unmapped_joints(tmp_path):
    root = tmp_path / "takes"
    r = run("takes", "import", str(DATA / "pymo_walk_meredith.bvh"), "--performer", "ada", "--root", str(root))
    assert r.returncode == 0, r.stderr
    out = r.stdout.splitlines()
    assert out[0] == "bone map: humanik (chosen automatically: 21 of 23 joints matched)"
    assert out[1].startswith("units: in (auto: rest pose 60.9 file units = 1.55 m)")
    assert out[2].startswith("fps: 120 (Frame Time 0.008333 = 120.0048 fps, snapped")
    assert r.stderr.strip() == "warning: 2 joint(s) not mapped to canonical bones (kept in the source record): LeftHand_End, RightHand_End"
    take_id = out[-1].removeprefix("created ")
    take = Take.open(root / take_id)
    entry = take.manifest.performers[0]
    assert entry["source"] == "bvh:pymo_walk_meredith.bvh" and entry["source_record"] == "source/ada.json"
    record = json.loads((take.path / "source" / "ada.json").read_text())
    assert record["bone_map"] == {"name": "humanik", "source": "shipped", "auto": True, "moved": []}
    assert record["units"] == "in" and record["fps"] == "120" and len(record["skeleton"]) == 23

    r = run("takes", "export", take_id, "--root", str(root), "--out", str(tmp_path / "ada.bvh"), "--performer", "ada",
            "--rotation-order", "XYZ")
    assert r.returncode == 0, r.stderr
    assert "CHANNELS 3 Xrotation Yrotation Zrotation" in (tmp_path / "ada.bvh").read_text()

    r = run("takes", "import", str(DATA / "bvhio_example.bvh"), "--performer", "bo", "--root", str(root), "--bone-map", "biovision",
            "--units", "cm")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[:2] == ["bone map: biovision (given, 18 of 18 joints matched)",
                                         "units: cm (given: rest pose 72.35 file units = 0.72 m)"]
    assert "not a person's height; pass --units if that is wrong" in r.stderr


def test_bad_input_is_one_line(tmp_path):
    root = tmp_path / "takes"
    walk = str(DATA / "bvhio_example.bvh")
    for args, start in (
        (("--bone-map", "mixamoo"), "error: no bone map 'mixamoo' (shipped: biovision, cmu, humanik, mixamo, rokoko; or give a .toml path)"),
        (("--units", "ft"), "error: unknown units 'ft' (one of m, cm, mm, in, auto)"),
        (("--bone-map", str(tmp_path / "nope.toml")), f"error: no bone map file at {tmp_path / 'nope.toml'} (shipped maps: "),
    ):
        r = run("takes", "import", walk, "--performer", "ada", "--root", str(root), *args)
        assert r.returncode == 1 and r.stderr.startswith(start) and "Traceback" not in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
    bad = tmp_path / "bad.bvh"
    bad.write_text((DATA / "bvhio_example.bvh").read_text().replace(" 35.01\t", " x\t", 1))
    r = run("takes", "import", str(bad), "--performer", "ada", "--root", str(root))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.startswith("error: bad.bvh: line ") and "is not a number" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not root.exists() or not any(root.iterdir())  # nothing half-made


def test_mocap_send_reads_bvh_like_takes_import():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        r = run("mocap", "send", "--bvh", str(DATA / "dme_cmu_example.bvh"), "--seconds", "0.2", "--vmc", f"127.0.0.1:{port}",
                "--units", "in")
        assert r.returncode == 0, r.stderr
        assert "bone map: cmu (chosen automatically: 26 of 31 joints matched)" in r.stderr
        assert "units: in (given" in r.stderr
        assert json.loads(r.stdout)["frames"] > 0  # stdout stays the JSON summary
        assert sock.recv(65536)  # VMC datagrams arrived


def test_mocap_send_names_the_bvh_performer():
    """`--name ada` is the BVH performer's name, as it arrives (it was `ada-bvh`); without it, the
    file's name; synthetic performers beside it stay NAME-1, NAME-2."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(10)
        port = sock.getsockname()[1]
        r = run("mocap", "send", "--bvh", str(DATA / "bvhio_example.bvh"), "--name", "ada", "--synthetic", "1", "--seconds", "0.2",
                "--vmc", f"127.0.0.1:{port}")
        assert r.returncode == 0, r.stderr
        assert "sending 2 performer(s) (ada, ada-1)" in r.stderr
        assert sock.recv(65536)
    r = run("mocap", "send", "--bvh", str(DATA / "bvhio_example.bvh"), "--seconds", "0.1", "--vmc", "127.0.0.1:9")
    assert r.returncode == 0 and "(bvhio_example)" in r.stderr, r.stderr

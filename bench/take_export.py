"""Benchmark: takes out to engines and editors, each as the command a person types, disk to disk.

    .venv/bin/python bench/take_export.py [--seconds 60] [--performers 2] [--takes 20]

Prints one JSON object:
- export: ``machinima takes export TAKE --format glb|fbx`` on a take of P performers x S seconds at
  30 fps with an engine camera and a lip-sync stream (wall seconds including Python and Blender
  start-up, output MB). Baselines in the same run: ``--format bvh`` (no Blender: the hub writes
  the text), and the bare cost of starting Python with bpy (``python -c "import bpy"``), which
  every glb/fbx export pays.
- editorial: ``machinima edit export`` of N circled takes to .otio, .edl and .xml in one command,
  and ``machinima edit import`` of the EDL (wall seconds); baseline: ``machinima takes list``
  on the same root (the CLI's start-up and a catalog read).
- load: os.getloadavg() before and after, and the CPU count.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from machinima import quat, skeleton  # noqa: E402
from machinima.imageseq import frame_path, write_image  # noqa: E402
from machinima.take import Take  # noqa: E402
from machinima.timecode import ns_from_frames  # noqa: E402

FPS = 30


def _poses(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n)[:, None, None] / FPS
    axes = rng.normal(size=(1, len(skeleton.BONES), 3))
    axes /= np.linalg.norm(axes, axis=-1, keepdims=True)
    angle = 0.4 * np.sin(2 * np.pi * rng.uniform(0.2, 1.5, (1, len(skeleton.BONES))) * t[..., 0])
    poses = np.repeat(skeleton.rest_pose()[None], n, 0)
    poses[:, :, 3:7] = quat.from_axis_angle(np.broadcast_to(axes, (n, len(skeleton.BONES), 3)), angle)
    poses[:, 0, :3] = np.stack([np.sin(t[:, 0, 0]), np.full(n, 0.95), -0.5 * t[:, 0, 0]], -1)
    return poses.astype(np.float32)


def make_take(root: Path, performers: int, seconds: float, shot: str = "a", circled: bool = False) -> Take:
    n = int(seconds * FPS)
    take = Take.create(root, production="bench", scene="1", shot=shot, fps=FPS, timecode_in="01:00:00:00")
    stamps = take.store.origin_ns + ns_from_frames(np.arange(n), take.fps)
    for p in range(performers):
        name = f"p{p}"
        take.add_performer(name)
        take.store.append(f"mocap/{name}", stamps, _poses(n, p))
        take.store.add_blend_stream(f"{name}-mouth", ["A", "I", "U", "E", "O"], {"performer": name})
        take.store.append(f"blend/{name}-mouth", stamps, np.abs(np.sin(np.arange(n)[:, None] / 7.0 + np.arange(5))).astype(np.float32))
    cams = np.zeros((n, 12), np.float32)
    cams[:, 0:3] = np.stack([np.linspace(-2, 2, n), np.full(n, 1.6), np.full(n, 5.0)], -1)
    cams[:, 3:7] = [0, 1, 0, 0]
    cams[:, 7], cams[:, 8], cams[:, 9] = 35, 36, 24
    take.store.add_camera_stream("main")
    take.store.append("camera/main", stamps, cams)
    take.finalize()
    return Take.open(take.path)


def timed(*args: str) -> float:
    t0 = time.perf_counter()
    res = subprocess.run(list(args), capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed: {res.stderr.strip()[-500:]}")
    return round(time.perf_counter() - t0, 2)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--performers", type=int, default=2)
    ap.add_argument("--takes", type=int, default=20)
    a = ap.parse_args()
    load0 = os.getloadavg()
    cli = [sys.executable, "-m", "machinima"]
    out: dict = {"machine": {"cpus": os.cpu_count(), "load_before": [round(x, 2) for x in load0]}}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "takes"
        take = make_take(root, a.performers, a.seconds)
        export = {"take": {"performers": a.performers, "seconds": a.seconds, "fps": FPS, "frames": int(a.seconds * FPS)}}
        export["baseline_python_import_bpy_s"] = timed(sys.executable, "-c", "import bpy")
        for fmt in ("bvh", "glb", "fbx"):
            dest = Path(tmp) / fmt
            s = timed(*cli, "takes", "export", take.id, "--root", str(root), "--format", fmt, "--out", str(dest))
            size = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())
            export[fmt] = {"command": f"machinima takes export TAKE --format {fmt} --out DIR", "wall_s": s, "mb": round(size / 1e6, 2)}
        out["export"] = export
        for k in range(a.takes):  # a scene's circled takes with rendered frames
            t = Take.create(root, production="bench", scene="2", shot=f"s{k // 3}", fps=FPS, timecode_in=f"{1 + k % 9:02d}:00:00:00")
            t.finalize()
            for f in range(0, 48):
                write_image(frame_path(t.passes_dir("rgb"), f), np.zeros((4, 4, 3), np.uint8))
            subprocess.run([*cli, "takes", "circle", t.id, "--root", str(root)], capture_output=True, check=True)
        cuts = [str(Path(tmp) / f"cut.{s}") for s in ("otio", "edl", "xml")]
        out["editorial"] = {
            "takes": a.takes,
            "baseline_takes_list_s": timed(*cli, "takes", "list", "--root", str(root)),
            "edit_export_3_formats_s": timed(*cli, "edit", "export", "--scene", "2", "--root", str(root), *sum((["--out", c] for c in cuts), [])),
            "edit_import_edl_s": timed(*cli, "edit", "import", cuts[1], "--root", str(root)),
            "commands": ["machinima edit export --scene 2 --out cut.otio --out cut.edl --out cut.xml", "machinima edit import cut.edl"],
        }
    out["machine"]["load_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()

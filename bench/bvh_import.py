"""BVH import and export, disk to disk, with Blender's own importer as the baseline and the truth.

    .venv/bin/python bench/bvh_import.py [--file tests/data/mocap/pymo_walk_meredith.bvh]

Prints one JSON object: the whole ``machinima takes import`` and ``takes export`` commands
(subprocess, file to take folder to file), the parse + retarget step alone, Blender's
``bpy.ops.import_anim.bvh`` on the same file; and the accuracy: the largest distance (file
units) between a mapped joint and where Blender puts it, over the first, middle and last
frames, for this import and for the trivial method (the file's local rotations copied onto the
canonical skeleton's proportions, what the import did before), plus the machine's load.
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "core"))


def _timed(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode:
        raise SystemExit(r.stderr)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--file", type=Path, default=ROOT / "tests" / "data" / "mocap" / "pymo_walk_meredith.bvh")
    args = ap.parse_args()
    try:
        import diffusers  # noqa: F401  (before bpy, as in the tests)
    except ImportError:
        pass
    import numpy as np
    from bvh_helpers import blender_truth, three_frames

    from machinima.bvhimport import load_bvh_performer
    from machinima.skeleton import REST_OFFSETS, forward_kinematics

    load = os.getloadavg()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "takes"
        imp = _timed([sys.executable, "-m", "machinima", "takes", "import", str(args.file), "--performer", "ada", "--root", str(root)], env)
        take = next(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        exp = _timed([sys.executable, "-m", "machinima", "takes", "export", take.name, "--root", str(root), "--out", str(Path(tmp) / "out.bvh"),
                      "--performer", "ada"], env)
    t0 = time.perf_counter()
    result = load_bvh_performer(args.file)
    step = time.perf_counter() - t0
    n = result.motion.frames
    frames = three_frames(n)
    t0 = time.perf_counter()
    truth, _ = blender_truth(args.file, frames)
    blender = time.perf_counter() - t0

    def worst(poses: np.ndarray) -> float:
        pos, _ = forward_kinematics(poses.astype(np.float64))
        return max(float(np.abs(pos[f, c] / result.scale - truth[f][result.motion.names[j]]).max())
                   for f in frames for c, j in result.resolved.mapping.items())

    trivial = result.poses.copy()  # local rotations and the root as they are, canonical proportions
    trivial[:, 1:, :3] = REST_OFFSETS[1:]
    print(json.dumps({
        "bench": "bvh_import", "file": args.file.name, "frames": n, "joints": len(result.motion.names),
        "bone_map": result.resolved.spec.name, "units": result.units,
        "takes_import_command_s": round(imp, 3), "takes_export_command_s": round(exp, 3),
        "parse_and_retarget_s": round(step, 4), "blender_import_anim_bvh_s": round(blender, 3),
        "max_distance_from_blender_file_units": {"this_import": float(f"{worst(result.poses):.3g}"), "trivial_rotations_on_canonical_skeleton": round(worst(trivial), 2)},
        "loadavg_1_5_15": [round(x, 2) for x in load],
    }))


if __name__ == "__main__":
    main()

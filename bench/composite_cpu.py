"""Benchmark: one whole composite run's wall time and CPU time (user + sys, every thread).

    PYTHONPATH=$CHECKOUT .venv/bin/python bench/composite_cpu.py [--root DIR] [--frames 24]

On a shared machine the wall time moves with the neighbours' load; the CPU seconds the step
spends move much less, so A/B comparisons (two checkouts via PYTHONPATH, an environment variable
such as ``OPENBLAS_NUM_THREADS=1``) are read from ``cpu_ms_per_frame``. The run is
``bench/post_io.py``'s ``new`` variant (QOI frames out, write-behind, one sequence manifest) on
the composite demo at 1080p with a PNG plate. ``--root``: a folder holding a demo made by an
earlier run (``DIR/comp-new``; made there when missing). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", type=Path, default=None)
    ap.add_argument("--frames", type=int, default=24)
    args = ap.parse_args()
    root = args.root or Path(tempfile.mkdtemp(prefix="composite-cpu-"))
    root.mkdir(parents=True, exist_ok=True)
    (root / "machinima.toml").write_text('production = "bench"\n')
    os.chdir(root)
    import machinima.poststep as ps
    from composite.demo_scene import START, make_demo
    from composite.pipeline import CompositeSettings, run_composite
    from composite.placement import PlacementSettings

    ps.DEFAULT_INTERMEDIATE, ps.WRITE_BEHIND = "qoi", True
    demo = root / "comp-new"
    if not (demo / "takes").is_dir():
        make_demo(demo, width=1920, height=1080, frames=args.frames, plate_as="png")
    take = next((demo / "takes").iterdir())
    sid = f"cpu-{os.getpid()}"
    s = CompositeSettings(plate=demo / "plate", matte="green", placement=PlacementSettings(position=tuple(float(v) for v in START)),
                          video=False, step_id=sid)
    t0, c0 = time.perf_counter(), os.times()
    res = run_composite(take, s, progress=False)
    c1, wall = os.times(), time.perf_counter() - t0
    cpu = (c1.user - c0.user) + (c1.system - c0.system)
    n = len(res.report.done)
    shutil.rmtree(take / "post" / sid, ignore_errors=True)
    print(json.dumps({"bench": "composite_cpu", "frames": n, "wall_s": round(wall, 2), "fps": round(n / wall, 2), "cpu_s": round(cpu, 2),
                      "cpu_ms_per_frame": round(cpu / n * 1000, 1), "setup": res.setup, "loop_s": round(res.report.seconds, 2),
                      "openblas_num_threads": os.environ.get("OPENBLAS_NUM_THREADS"), "load_avg_1min": round(os.getloadavg()[0], 2)}))


if __name__ == "__main__":
    main()

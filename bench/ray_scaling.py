"""Benchmark: a post step on Ray with 1 and 2 workers vs the same step in-process.

The step is CPU-bound like a real post step on this machine: OpenCV's painted-look
``stylization`` (the weight-free engine the demo uses) on 320x180 frames. Figures: frames/s
in-process, on Ray with 1 and 2 CPUs, the scaling from 1 to 2, and the overhead Ray adds per
task (chunk). Outputs are checked identical to the in-process run.

    .venv/bin/python bench/ray_scaling.py [--frames 48 --chunk 4]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from machinima.poststep import PostStep  # noqa: E402


def make_step(out: str) -> PostStep:
    return PostStep(Path(out), "bench-stylize", {"sigma_s": 60, "sigma_r": 0.45})


def make_process():
    import cv2

    def process(batch):
        out = []
        for f in batch:
            rng = np.random.default_rng(f)
            img = cv2.GaussianBlur(rng.integers(0, 255, (180, 320, 3), dtype=np.uint8), (9, 9), 3)
            out.append({"frames": cv2.stylization(img, sigma_s=60, sigma_r=0.45)})
        return out

    return process


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--chunk", type=int, default=4)
    a = ap.parse_args()
    os.environ["RAY_AUTH_MODE"] = "disabled"
    import ray

    from machinima.distributed import run_on_ray

    tmp = Path(tempfile.mkdtemp(prefix="ray_bench_"))
    frames = list(range(a.frames))
    try:
        t0 = time.perf_counter()
        make_step(str(tmp / "local")).run(frames, make_process(), progress=False)
        local_s = time.perf_counter() - t0
        results = {}
        for cpus in (1, 2):
            ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
            ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
            # warm the workers (process start, imports) so the figure is the steady state
            run_on_ray(functools.partial(make_step, str(tmp / f"warm{cpus}")), make_process, range(cpus * 2), address="local", chunk_size=1, progress=False)
            t0 = time.perf_counter()
            run_on_ray(functools.partial(make_step, str(tmp / f"ray{cpus}")), make_process, frames, address="local", chunk_size=a.chunk, progress=False)
            results[cpus] = time.perf_counter() - t0
            ray.shutdown()
        from machinima.imageseq import read_image

        identical = all(
            np.array_equal(read_image(tmp / "local" / "frames" / f"{f:06d}.png"), read_image(tmp / "ray2" / "frames" / f"{f:06d}.png"))
            for f in frames
        )
        tasks = (a.frames + a.chunk - 1) // a.chunk
        out = {
            "benchmark": "ray_scaling",
            "frames": a.frames,
            "chunk_size": a.chunk,
            "cpu_count": os.cpu_count(),
            "in_process_fps": round(a.frames / local_s, 2),
            "ray_1_worker_fps": round(a.frames / results[1], 2),
            "ray_2_workers_fps": round(a.frames / results[2], 2),
            "scaling_1_to_2": round(results[1] / results[2], 2),
            "overhead_per_task_ms": round((results[1] - local_s) / tasks * 1000, 1),
            "outputs_identical": identical,
        }
        print(json.dumps(out, indent=2))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

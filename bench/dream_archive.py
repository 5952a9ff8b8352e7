"""Benchmark: dream schedules and warps, and the archive look, at 1080p on this CPU.

- Schedule evaluation: our AST evaluator, vectorised over all frames of a shot, against the
  naive baseline (Python ``eval`` of each keyframe expression per frame, what quick Deforum
  ports do; unsafe, measured only as a baseline).
- Warps: 2D affine and 3D depth warps at 1080p (frames/s).

Each preset renders 1080p source frames into its format frame (SD sizes) with every effect,
including the real MPEG-2 re-encode for dv-2003. The baseline in the same run does the same
work the straightforward way: each frame made on its own, every effect recomputed from the
source (a codec's whole group of pictures re-encoded for every frame in it, the previous frame
re-aged for interlace), as a per-frame worker without our window reuse would; its frames are
checked identical to ours. ``fit_only_fps`` (fit + resize, no effect) is the floor any aging
costs, not a baseline.

    .venv/bin/python bench/dream_archive.py [--frames 24]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stylize.archive import ArchiveLook, fit, list_presets, load_preset  # noqa: E402


def source_1080p():
    import cv2

    rng = np.random.default_rng(0)
    base = cv2.resize(rng.integers(0, 255, (68, 120, 3), dtype=np.uint8), (1920, 1080), interpolation=cv2.INTER_CUBIC)
    return lambda f: np.roll(base, 8 * f, axis=1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=24)
    a = ap.parse_args()
    src = source_1080p()
    frames = [src(f) for f in range(a.frames)]
    read = lambda f: frames[f]  # noqa: E731
    out = {"benchmark": "dream_archive", "input": "1920x1080", "frames": a.frames, "cpu_count": os.cpu_count()}
    out["schedules"] = bench_schedules()
    out["warps_1080p"] = bench_warps(frames[0])
    presets = {}
    for name in list_presets():
        pre = load_preset(name)
        t0 = time.perf_counter()
        for f in range(a.frames):
            fit(read(f), pre.size)
        fit_s = time.perf_counter() - t0
        ArchiveLook(pre, read, seed=1, source_fps=24, last_frame=a.frames - 1).render(0)  # warm-up (codecs, caches)
        look = ArchiveLook(pre, read, seed=1, source_fps=24, last_frame=a.frames - 1)
        t0 = time.perf_counter()
        ours = [look.render(f) for f in range(a.frames)]
        s = time.perf_counter() - t0
        t0 = time.perf_counter()
        base = [ArchiveLook(pre, read, seed=1, source_fps=24, last_frame=a.frames - 1).render(f) for f in range(a.frames)]
        base_s = time.perf_counter() - t0
        assert all(np.array_equal(x, y) for x, y in zip(ours, base)), name
        presets[name] = {"fps": round(a.frames / s, 1), "baseline_per_frame_fps": round(a.frames / base_s, 1),
                         "speedup": round(base_s / s, 1), "fit_only_fps": round(a.frames / fit_s, 1),
                         "format": f"{pre.size[0]}x{pre.size[1]}"}
    out["archive"] = presets
    out["load_avg_1min_end"] = round(os.getloadavg()[0], 2)
    print(json.dumps(out, indent=2))


def bench_schedules(n_frames: int = 10_000) -> dict:
    import math

    from stylize.dream_schedule import parse_schedule

    text = "0:(1.0), 30:(1.02+0.01*sin(t/4)), 300:(1.0 + 0.002*t), 900:(clamp(cos(t/30), 0.5, 1.5))"
    frames = np.arange(n_frames)
    t0 = time.perf_counter()
    sched = parse_schedule(text)
    ours = sched(frames)
    ours_s = time.perf_counter() - t0
    keys = [(0, "1.0"), (30, "1.02+0.01*math.sin(t/4)"), (300, "1.0 + 0.002*t"), (900, "min(max(math.cos(t/30), 0.5), 1.5)")]
    t0 = time.perf_counter()
    naive = []
    for f in frames:  # per frame: evaluate the two neighbouring keys with eval, interpolate
        i = max(k for k in range(len(keys)) if keys[k][0] <= f)
        j = min(i + 1, len(keys) - 1)
        a = eval(keys[i][1], {"math": math, "t": f})  # noqa: S307 (the unsafe baseline)
        b = eval(keys[j][1], {"math": math, "t": f})  # noqa: S307
        w = 0.0 if j == i else (f - keys[i][0]) / (keys[j][0] - keys[i][0])
        naive.append(a + (b - a) * min(max(w, 0.0), 1.0))
    naive_s = time.perf_counter() - t0
    assert np.allclose(ours, naive)
    return {"frames": n_frames, "ours_us_per_frame": round(ours_s / n_frames * 1e6, 3),
            "naive_eval_us_per_frame": round(naive_s / n_frames * 1e6, 2), "speedup": round(naive_s / ours_s, 1)}


def bench_warps(img: np.ndarray, n: int = 12) -> dict:
    from stylize.dream_warp import affine_2d, intrinsics_from_fov, rotation_matrix, warp_3d

    h, w = img.shape[:2]
    t0 = time.perf_counter()
    for i in range(n):
        affine_2d(img, zoom=1.01, angle=0.5 * i, tx=2.0, ty=-1.0)
    fps2 = n / (time.perf_counter() - t0)
    depth = np.linspace(2.0, 12.0, h * w, dtype=np.float32).reshape(h, w)
    K = intrinsics_from_fov(w, h, 40)
    t0 = time.perf_counter()
    for i in range(n):
        warp_3d(img, depth, K, rotation_matrix(0, 0.3 * i, 0), np.array([0.01, 0.0, 0.05]))
    fps3 = n / (time.perf_counter() - t0)
    return {"affine_2d_fps": round(fps2, 1), "depth_3d_fps": round(fps3, 1)}


if __name__ == "__main__":
    main()

"""Benchmark: the face-swap merge's Poisson blend, OpenCV's seamlessClone against faceswap.seamless.

    .venv/bin/python bench/seamless_clone.py [--reps 5]

One core (cv2.setNumThreads(1)); face boxes of the sizes a 1080p merge sees, with sides whose
DFT lengths OpenCV handles well and badly. Prints one JSON object: per size the minimum ms of
``reps`` runs of each, and the largest and mean difference of their pixels (levels).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from faceswap.seamless import seamless_clone  # noqa: E402

SIZES = [(128, 128), (211, 199), (257, 311), (300, 300), (400, 400)]


def _case(h: int, w: int, rng: np.random.Generator):
    yy, xx = np.mgrid[0:h, 0:w]
    src = np.clip(np.stack([xx * 255 / w, yy * 255 / h, (xx + yy) % 256], -1) + rng.normal(0, 5, (h, w, 3)), 0, 255).astype(np.uint8)
    dst = np.clip(np.stack([200 - yy * 100 / h, 50 + xx * 100 / w, 128 + 0 * xx], -1) + rng.normal(0, 5, (h, w, 3)), 0, 255).astype(np.uint8)
    mask = np.zeros((h, w), np.uint8)
    cv2.ellipse(mask, (w // 2, h // 2), (w // 3, h // 2 - h // 8), 0, 0, 360, 255, -1)
    ys, xs = np.nonzero(mask)
    return src, dst, mask, (int((xs.min() + xs.max() + 1) // 2), int((ys.min() + ys.max() + 1) // 2))


def _min_ms(fn, reps: int):
    best, out = float("inf"), None
    for _ in range(reps):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return round(best * 1000, 2), out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    cv2.setNumThreads(1)
    rng = np.random.default_rng(0)
    rows = {}
    for h, w in SIZES:
        src, dst, mask, center = _case(h, w, rng)
        t_cv, a = _min_ms(lambda: cv2.seamlessClone(src, dst, mask.copy(), center, cv2.NORMAL_CLONE), args.reps)  # OpenCV erodes its mask
        t_ours, b = _min_ms(lambda: seamless_clone(src, dst, mask, center), args.reps)
        d = np.abs(a.astype(int) - b)
        rows[f"{w}x{h}"] = {"opencv_ms": t_cv, "seamless_ms": t_ours, "speedup": round(t_cv / t_ours, 1),
                            "max_diff": int(d.max()), "mean_diff": round(float(d.mean()), 5)}
    print(json.dumps({"bench": "seamless_clone", "threads": 1, "reps": args.reps, "load_avg_1min": round(os.getloadavg()[0], 2), "sizes": rows}))


if __name__ == "__main__":
    main()

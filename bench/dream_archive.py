"""Benchmark: the archive look at 1080p input, per preset (frames/s on this CPU).

Each preset renders 1080p source frames into its format frame (SD sizes) with every effect,
including the real MPEG-2 re-encode for dv-2003. The baseline in the same run is the cheapest
possible "look": fit + resize only (what any aging pipeline must do at least), so the figure
``cost_x_fit`` says what the effects cost on top.

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
    presets = {}
    for name in list_presets():
        pre = load_preset(name)
        t0 = time.perf_counter()
        for f in range(a.frames):
            fit(read(f), pre.size)
        fit_s = time.perf_counter() - t0
        look = ArchiveLook(pre, read, seed=1, source_fps=24, last_frame=a.frames - 1)
        t0 = time.perf_counter()
        for f in range(a.frames):
            look.render(f)
        s = time.perf_counter() - t0
        presets[name] = {"fps": round(a.frames / s, 1), "baseline_fit_only_fps": round(a.frames / fit_s, 1),
                         "cost_x_fit": round(s / fit_s, 1), "format": f"{pre.size[0]}x{pre.size[1]}"}
    print(json.dumps({"benchmark": "dream_archive", "input": "1920x1080", "frames": a.frames, "cpu_count": os.cpu_count(),
                      "archive": presets}, indent=2))


if __name__ == "__main__":
    main()

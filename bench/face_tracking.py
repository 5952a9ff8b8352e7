"""Face-swap tracking truth: scikit-image's astronaut moved over a 1080p plate along known paths
(faceswap.truth: a still shot with sub-pixel shake, steady motion at 5/10/20 px/frame, a sudden
start and stop at 15 px/frame), tracked as merge tracks; every smoothing's figures beside no
smoothing's, from the same detections; then the whole merge, disk to disk, with its default
smoothing and a network that returns the plate face at rest, and the merged face found again by
a fresh detection on every frame.

    .venv/bin/python bench/face_tracking.py [--quick] [--tune]

Prints one JSON object. ``--tune`` also grid-searches the live One-Euro filter (least jitter
with lag < 0.5 frame at 5 and 20 px/frame and overshoot < 2 px): how its defaults were chosen.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def one_euro_eye_distances(seq: np.ndarray, fps: float = 24.0) -> np.ndarray:
    """The merge default before the fix, for reference: One-Euro (min_cutoff 1 Hz, beta 0.05,
    d_cutoff 1 Hz) with its speed per coordinate in eye distances per second."""
    from faceswap.landmarks import eye_distance

    def alpha(cutoff):
        return 1.0 / (1.0 + fps / (2 * math.pi * np.asarray(cutoff)))

    x = dx = None
    out = []
    for lm in np.asarray(seq, np.float64):
        if x is None:
            x, dx = lm.copy(), np.zeros_like(lm)
        else:
            dx = alpha(1.0) * (lm - x) * fps / eye_distance(lm) + (1 - alpha(1.0)) * dx
            a = alpha(1.0 + 0.05 * np.abs(dx))
            x = a * lm + (1 - a) * x
        out.append(x.copy())
    return np.stack(out)


def paths(quick: bool):
    from faceswap import truth as T

    n = 24 if quick else 48
    speeds = (5.0, 20.0) if quick else (5.0, 10.0, 20.0)
    return [T.still_shake(n)] + [T.steady(v, n - n // 4) for v in speeds] + [T.start_stop(15.0, still=n // 4, moving=n // 3)]


def smoothers():
    from faceswap.smoothing import smooth_sequence

    return {
        "none": lambda s: smooth_sequence(s, "none"),
        "zero-lag (merge default)": lambda s: smooth_sequence(s, "zero-lag"),
        "one-euro (live default, px/s)": lambda s: smooth_sequence(s, "one-euro"),
        "savgol 9": lambda s: smooth_sequence(s, "savgol"),
        "one-euro in eye distances (before the fix)": one_euro_eye_distances,
    }


def table(runs, ref, fns) -> dict:
    from faceswap import truth as T

    out = {}
    for name, fn in fns.items():
        fn(runs[0][2][:5])  # warm-up: imports (scipy) are not the filter's cost
        row = {}
        for path, _, raw in runs:
            t0 = time.perf_counter()
            est = fn(raw)
            dt = time.perf_counter() - t0
            row[path.name] = {k: round(v, 3) for k, v in T.figures(est, T.truth(ref, path), path).items()}
            row[path.name]["ms_per_frame"] = round(1000 * dt / len(path), 3)
        out[name] = row
    return out


def tune(runs, ref) -> list:
    from faceswap import truth as T
    from faceswap.smoothing import OneEuro

    rows = []
    for mc, beta, dc in itertools.product((1.0, 2.0, 3.0, 4.0), (0.05, 0.1, 0.2, 0.4), (2.0, 4.0, 8.0)):
        figs = {}
        for path, _, raw in runs:
            f = OneEuro(24.0, mc, beta, dc)
            figs[path.name] = T.figures(np.stack([f(x) for x in raw]), T.truth(ref, path), path)
        lags = [v["lag_frames"] for v in figs.values() if "lag_frames" in v]
        over = max(v["overshoot_px"] for v in figs.values() if "overshoot_px" in v)
        if max(lags) < 0.5 and over < 2.0:
            rows.append({"min_cutoff": mc, "beta": beta, "d_cutoff": dc, "jitter_px": round(figs["still"]["jitter_px"], 3),
                         "max_lag_frames": round(max(lags), 3), "overshoot_px": round(over, 3)})
    return sorted(rows, key=lambda r: (r["jitter_px"], r["max_lag_frames"]))[:5]


def merged_check(tmp: Path, runs, ref, smooth: str) -> dict:
    """The whole merge, disk to disk (PNG in, PNG out), with ``smooth``, the plate face as the
    'network'; the merged face re-detected on every frame, against the truth."""
    from faceswap import truth as T
    from faceswap.backends import get_backend
    from faceswap.merge import MergeOptions, merge
    from machinima.imageseq import list_frames, read_image, write_image

    still, still_frames, _ = runs[0]
    swap = T.FixedFace(still_frames[0], T.truth(ref, still)[0], "whole", 256)
    be = get_backend("mediapipe")
    out = {}
    for path, frames, _ in runs:
        src = tmp / path.name
        if not src.exists():
            for i, f in enumerate(frames):
                write_image(src / f"{i:06d}.png", f)
        t0, c0 = time.perf_counter(), time.process_time()
        r = merge(src, None, out=tmp / f"out-{smooth}-{path.name}", options=MergeOptions(smooth=smooth, blend="alpha", color="none", res=256,
                                                                      face_type="whole"),
                  swapper=swap, override="bench", production="bench", rights_store=tmp / "rights", video=False, progress=False)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        merged = [read_image(p) for _, p in sorted(list_frames(tmp / f"out-{smooth}-{path.name}" / "rgb").items())]
        found = np.stack([be.detect(m)[0].landmarks for m in merged])
        per_frame = np.sqrt(((found - T.truth(ref, path)) ** 2).sum(-1).mean(-1))
        out[path.name] = {"worst_px": round(float(per_frame.max()), 3), "mean_px": round(float(per_frame.mean()), 3),
                          "merge_fps_disk_to_disk": round(r.done / wall, 2), "merge_cpu_fps": round(r.done / max(cpu, 1e-9), 2)}
    be.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--tune", action="store_true", help="grid-search the live One-Euro filter on the same paths")
    args = ap.parse_args()
    from faceswap import truth as T

    pic, bg = T.portrait(), T.background()
    out: dict = {"bench": "face_tracking", "machine": f"{platform.machine()} {os.cpu_count()} cpu", "quick": args.quick,
                 "plate": f"{T.PLATE[0]}x{T.PLATE[1]}, astronaut at scale {T.SCALE} (a ~210 px face)",
                 "load_avg_1min_start": round(os.getloadavg()[0], 2)}
    runs = []
    t0 = time.perf_counter()
    for path in paths(args.quick):
        frames = [T.render(pic, bg, o) for o in path.offsets]
        runs.append((path, frames, T.track(frames)))
    out["tracking_ms_per_frame"] = round(1000 * (time.perf_counter() - t0) / sum(len(p) for p, _, _ in runs), 1)
    ref = T.reference(runs[0][2], runs[0][0].offsets)
    out["figures"] = table(runs, ref, smoothers())
    out["goals"] = "zero-lag: jitter < 0.3 px (still), |lag| < 0.5 frame (steady), overshoot < 2 px (start-stop), worst frame < 2 px"
    if args.tune:
        out["one_euro_tuning_best5"] = tune(runs, ref)
    with tempfile.TemporaryDirectory() as td:
        out["merged_face_redetected"] = {s: merged_check(Path(td), runs, ref, s) for s in ("zero-lag", "none")}
    out["load_avg_1min_end"] = round(os.getloadavg()[0], 2)
    print(json.dumps(out))


if __name__ == "__main__":
    main()

"""Benchmark: dream schedules and warps, and the archive look, at 1080p on this CPU.

- Schedule evaluation, per frame as the dream loop asks for it (``Dream.value(name, frame)``
  for every schedule of the shipped drift dream), against the naive baseline (Python ``eval``
  of each keyframe expression per frame, what quick Deforum ports do; unsafe, measured only
  as a baseline).
- Warps: 2D affine and 3D depth warps at 1080p (frames/s).
- The dream loop itself, disk to disk: ``machinima dream still.png --dream drift`` (2d and 3d,
  the painted look) at 1080p, seconds a frame, beside the same frames only read and written
  (the PNG I/O any loop pays) and the per-frame kernels (move, stylize, colour coherence).

Each preset renders 1080p source frames into its format frame (SD sizes) with every effect,
including the real MPEG-2 re-encode for dv-2003. The baseline in the same run does the same
work the straightforward way: each frame made on its own, every effect recomputed from the
source (a codec's whole group of pictures re-encoded for every frame in it, the previous frame
re-aged for interlace), as a per-frame worker without our window reuse would; its frames are
checked identical to ours. ``fit_only_fps`` (fit + resize, no effect) is the floor any aging
costs, not a baseline.

    .venv/bin/python bench/dream_archive.py [--frames 24] [--dream-frames 8] [--dream-only]
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
    ap.add_argument("--dream-frames", type=int, default=8, help="frames of each dream-loop run (disk to disk)")
    ap.add_argument("--dream-only", action="store_true", help="skip the archive presets")
    a = ap.parse_args()
    src = source_1080p()
    frames = [src(f) for f in range(a.frames)]
    read = lambda f: frames[f]  # noqa: E731
    out = {"benchmark": "dream_archive", "input": "1920x1080", "frames": a.frames, "cpu_count": os.cpu_count()}
    out["loadavg"] = [round(x, 2) for x in os.getloadavg()]
    out["schedules"] = bench_schedules()
    out["warps_1080p"] = bench_warps(frames[0])
    out["dream_loop_1080p"] = bench_dream_loop(frames[0], a.dream_frames)
    presets = {}
    for name in ([] if a.dream_only else list_presets()):
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


def bench_schedules(n_frames: int = 2000) -> dict:
    """Per frame, every schedule of the drift dream, the way ``DreamRun.frame`` asks for them."""
    import math

    from stylize.dream import load_dream

    d = load_dream("drift")
    d.frames = n_frames
    names = sorted(d.schedules)
    t0 = time.perf_counter()  # the loop's path: the first frame builds each schedule's table, the rest read it
    ours = [[d.value(name, f) for name in names] for f in range(n_frames)]
    ours_s = time.perf_counter() - t0
    t0 = time.perf_counter()  # each frame evaluated on its own (what value() did before the table)
    single = [[d.schedules[name].at(f) for name in names] for f in range(n_frames)]
    single_s = time.perf_counter() - t0
    assert np.allclose(ours, single)
    # the naive port: each schedule's keys as Python expressions, eval'd per frame, interpolated
    py = {name: [(k, _python_expr(d.schedules[name], i)) for i, (k, _) in enumerate(d.schedules[name].keys)] for name in names}
    t0 = time.perf_counter()
    naive = []
    for f in range(n_frames):
        row = []
        for name in names:
            keys = py[name]
            i = max((j for j in range(len(keys)) if keys[j][0] <= f), default=0)
            j = min(i + 1, len(keys) - 1)
            a = eval(keys[i][1], {"math": math, "t": f})  # noqa: S307 (the unsafe baseline)
            b = eval(keys[j][1], {"math": math, "t": f})  # noqa: S307
            w = 0.0 if j == i else min(max((f - keys[i][0]) / (keys[j][0] - keys[i][0]), 0.0), 1.0)
            row.append(a + (b - a) * w)
        naive.append(row)
    naive_s = time.perf_counter() - t0
    assert np.allclose(ours, naive)
    return {"frames": n_frames, "schedules": len(names), "path": "Dream.value(name, frame) per frame (the dream loop's)",
            "ours_us_per_frame": round(ours_s / n_frames * 1e6, 1), "naive_eval_us_per_frame": round(naive_s / n_frames * 1e6, 1),
            "ratio_naive_over_ours": round(naive_s / ours_s, 2), "one_frame_at_a_time_us_per_frame": round(single_s / n_frames * 1e6, 1)}


def _python_expr(schedule, i: int) -> str:
    """Key ``i`` of a drift schedule as the Python text a naive port would eval."""
    text = schedule.text.split("),")[i].split(":", 1)[1].strip()
    text = text[1:] if text.startswith("(") else text
    text = text[:-1] if text.endswith(")") and text.count("(") < text.count(")") else text
    return text.replace("sin(", "math.sin(").replace("cos(", "math.cos(")


def bench_dream_loop(picture: np.ndarray, n: int) -> dict:
    """``machinima dream still.png --dream drift`` (2d and 3d) disk to disk, beside PNG I/O alone."""
    import contextlib
    import io
    import tempfile

    from machinima.imageseq import read_image, write_image
    from stylize.dream import DreamRun, load_dream, resolve_look_path
    from stylize.dream_cli import dream
    from stylize.engines import build_engine
    from stylize.look import load_look

    out: dict = {"frames": n, "look": "painted (classical)", "cadence": 2}
    with tempfile.TemporaryDirectory() as td:
        tdp = Path(td)
        still = write_image(tdp / "still.png", picture)
        t0 = time.perf_counter()  # baseline: the loop's PNG I/O alone (read the previous frame, write this one)
        prev = still
        for f in range(n):
            prev = write_image(tdp / "io" / f"{f:06d}.png", read_image(prev))
        out["png_io_only_s_per_frame"] = round((time.perf_counter() - t0) / n, 4)
        for mode in ("2d", "3d"):
            src = (Path(__file__).resolve().parents[1] / "stylize" / "dreams" / "drift.toml").read_text()
            (tdp / f"drift-{mode}.toml").write_text(src.replace('mode = "2d"', f'mode = "{mode}"'))
            t0 = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):  # its progress bar and messages: stdout holds the JSON only
                dream(str(still), dream_file=str(tdp / f"drift-{mode}.toml"), frames=n, out=tdp, step_id=f"run-{mode}", mp4=False)
            out[f"disk_to_disk_{mode}_s_per_frame"] = round((time.perf_counter() - t0) / n, 4)
        # the kernels of one frame, in memory
        d = load_dream("drift")
        engine = build_engine(load_look(resolve_look_path(d)))
        run = DreamRun(d, engine, picture, previous=lambda f: picture, diffused=lambda f: picture)
        reps = 3
        t0 = time.perf_counter()
        for _ in range(reps):
            run._stylize(picture, 2)
        out["stylize_s"] = round((time.perf_counter() - t0) / reps, 4)
        t0 = time.perf_counter()
        for _ in range(reps):
            run.frame(1)  # not diffused (cadence 2): the move alone
        out["move_2d_s"] = round((time.perf_counter() - t0) / reps, 4)
    return out


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

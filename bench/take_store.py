"""Benchmark: the take store under a full stage load, against a naive JSON-lines baseline.

Load: P performers x 55 bones x R Hz for M minutes (default 10 x 120 Hz x 60 min = 4.32 M
frames, 6.65 GB of raw float32), appended the way the stage recorder does it: every 100 ms one
chunk per performer, one transaction. Motion is smooth (sums of sinusoids plus sensor-level
noise), as real mocap is, so compression figures are representative.

Figures: write MB/s (of raw pose data), write real-time factor, read-back seconds for the whole
take, file size per hour, random 1-second seek in ms. Baseline in the same run: one JSON line
per frame (what a quick script would write), measured on ``--baseline-minutes`` and scaled.

    .venv/bin/python bench/take_store.py            # full hour (a few minutes on 2 cores)
    .venv/bin/python bench/take_store.py --quick    # 3 minutes of stage time
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

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from machinima.skeleton import REST_OFFSETS  # noqa: E402
from machinima.store import StreamStore  # noqa: E402

BONES = 55
FRAME_BYTES = BONES * 7 * 4


class Motion:
    """Deterministic smooth motion for one performer: rotations from sums of sinusoids."""

    def __init__(self, seed: int, hz: int) -> None:
        rng = np.random.default_rng(seed)
        self.hz = hz
        self.freq = rng.uniform(0.1, 2.0, (3, BONES, 3))
        self.amp = rng.uniform(0.05, 0.5, (3, BONES, 3))
        self.phase = rng.uniform(0, 2 * np.pi, (3, BONES, 3))
        self.rng = rng

    def frames(self, start: int, n: int) -> np.ndarray:
        t = (start + np.arange(n))[:, None, None, None] / self.hz
        ang = (self.amp * np.sin(2 * np.pi * self.freq * t + self.phase)).sum(axis=1)  # (n, B, 3)
        ang += self.rng.normal(scale=1e-4, size=ang.shape)
        half = ang / 2
        # small-angle composition is enough for a benchmark: axis-angle -> quaternion
        theta = np.linalg.norm(half, axis=-1, keepdims=True)
        q = np.concatenate([np.sin(theta) * half / np.maximum(theta, 1e-12), np.cos(theta)], axis=-1)
        pos = np.broadcast_to(REST_OFFSETS, (n, BONES, 3)).copy()
        pos[:, 0] += np.sin(t[:, 0, 0, 0] * 0.3)[:, None] * [1.0, 0.02, 1.0]
        return np.concatenate([pos, q], axis=-1).astype(np.float32)


def bench_store(folder: Path, performers: int, hz: int, minutes: float, flush_ms: int) -> dict:
    path = folder / "streams.sqlite"
    store = StreamStore(path, writable=True, fps=24, origin_ns=0, flush_interval=3600, max_buffered_samples=10**9)
    motions = [Motion(i, hz) for i in range(performers)]
    for p in range(performers):
        store.add_mocap_stream(f"p{p}")
    total_frames = int(minutes * 60 * hz)
    per_flush = max(1, hz * flush_ms // 1000)
    gen_s = 0.0
    t0 = time.perf_counter()
    for start in range(0, total_frames, per_flush):
        n = min(per_flush, total_frames - start)
        stamps = ((start + np.arange(n)) * 1_000_000_000 // hz).astype(np.int64)
        for p, m in enumerate(motions):
            g0 = time.perf_counter()
            frames = m.frames(start, n)
            gen_s += time.perf_counter() - g0
            store.append(f"mocap/p{p}", stamps, frames)
        store.flush()
    store.close()
    write_s = time.perf_counter() - t0 - gen_s
    raw_bytes = total_frames * performers * FRAME_BYTES
    size = path.stat().st_size
    ro = StreamStore(path)
    t0 = time.perf_counter()
    n_read = sum(len(ro.read_mocap(f"p{p}")) for p in range(performers))
    read_s = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    seeks = []
    dur_ns = total_frames * 1_000_000_000 // hz
    for _ in range(200):
        at = int(rng.integers(0, max(1, dur_ns - 1_000_000_000)))
        s0 = time.perf_counter()
        tr = ro.read_mocap(f"p{int(rng.integers(performers))}", at, at + 1_000_000_000)
        seeks.append((time.perf_counter() - s0) * 1000)
        assert len(tr) >= hz - 1
    assert n_read == total_frames * performers
    hours = minutes / 60
    return {
        "stage_minutes": minutes,
        "frames": total_frames * performers,
        "raw_MB": round(raw_bytes / 1e6, 1),
        "write_s": round(write_s, 2),
        "write_MB_per_s": round(raw_bytes / 1e6 / write_s, 1),
        "write_realtime_factor": round(minutes * 60 / write_s, 1),
        "read_all_s": round(read_s, 2),
        "read_MB_per_s": round(raw_bytes / 1e6 / read_s, 1),
        "file_MB": round(size / 1e6, 1),
        "file_GB_per_hour": round(size / 1e9 / hours, 2),
        "compression_ratio": round(raw_bytes / size, 2),
        "seek_1s_ms_p50": round(float(np.percentile(seeks, 50)), 2),
        "seek_1s_ms_p99": round(float(np.percentile(seeks, 99)), 2),
    }


def bench_jsonl(folder: Path, performers: int, hz: int, minutes: float) -> dict:
    """The naive baseline: one JSON line per frame, flushed with the same cadence."""
    path = folder / "frames.jsonl"
    motions = [Motion(i, hz) for i in range(performers)]
    total_frames = int(minutes * 60 * hz)
    per_flush = max(1, hz // 10)
    gen_s = 0.0
    t0 = time.perf_counter()
    with open(path, "w") as fh:
        for start in range(0, total_frames, per_flush):
            n = min(per_flush, total_frames - start)
            for p, m in enumerate(motions):
                g0 = time.perf_counter()
                frames = m.frames(start, n)
                gen_s += time.perf_counter() - g0
                for i in range(n):
                    fh.write(json.dumps({"p": p, "t": (start + i) * 1_000_000_000 // hz, "pose": frames[i].tolist()}) + "\n")
            fh.flush()
    write_s = time.perf_counter() - t0 - gen_s
    size = path.stat().st_size
    t0 = time.perf_counter()
    per = {}
    with open(path) as fh:
        for line in fh:
            d = json.loads(line)
            per.setdefault(d["p"], []).append(d["pose"])
    arrays = {p: np.asarray(v, np.float32) for p, v in per.items()}
    read_s = time.perf_counter() - t0
    raw_bytes = total_frames * performers * FRAME_BYTES
    hours = minutes / 60
    assert sum(len(a) for a in arrays.values()) == total_frames * performers
    return {
        "stage_minutes": minutes,
        "write_MB_per_s": round(raw_bytes / 1e6 / write_s, 1),
        "write_realtime_factor": round(minutes * 60 / write_s, 2),
        "read_all_s_per_hour": round(read_s / hours, 1),
        "file_GB_per_hour": round(size / 1e9 / hours, 2),
        "seek": "full scan (no index)",
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--performers", type=int, default=10)
    ap.add_argument("--hz", type=int, default=120)
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--baseline-minutes", type=float, default=1.0)
    ap.add_argument("--flush-ms", type=int, default=100)
    ap.add_argument("--quick", action="store_true", help="3 stage minutes, 0.5 baseline minute")
    ap.add_argument("--dir", type=Path, default=None, help="where to write (default: a temp folder, removed after)")
    a = ap.parse_args()
    if a.quick:
        a.minutes, a.baseline_minutes = 3.0, 0.5
    folder = Path(a.dir or tempfile.mkdtemp(prefix="take_store_bench_"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        ours = bench_store(folder, a.performers, a.hz, a.minutes, a.flush_ms)
        base = bench_jsonl(folder, a.performers, a.hz, a.baseline_minutes)
    finally:
        if a.dir is None:
            shutil.rmtree(folder, ignore_errors=True)
    ours_read_per_hour = ours["read_all_s"] / (a.minutes / 60)
    out = {
        "benchmark": "take_store",
        "load": f"{a.performers} performers x 55 bones x {a.hz} Hz, {a.flush_ms} ms flushes",
        "cpu_count": os.cpu_count(),
        "ours": ours,
        "baseline_jsonl": base,
        "ratios": {
            "write_speed_x": round(ours["write_MB_per_s"] / base["write_MB_per_s"], 1),
            "read_speed_x": round(base["read_all_s_per_hour"] / ours_read_per_hour, 1),
            "size_x_smaller": round(base["file_GB_per_hour"] / ours["file_GB_per_hour"], 1),
        },
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

"""Benchmark: mocap ingest.

1. Parsing, one core, the same recorded bytes (10 performers x 55-bone VMC bundles):
   - fast path: ``machinima.vmc.VMCDecoder`` (template path), bone messages/s
   - general path: the same decoder with the fast path off
   - full source: ``mocap.sources.VMCSource.feed`` (decode + canonical pose per performer)
   - baseline: python-osc ``Dispatcher.call_handlers_for_packet`` with a handler that only
     stores the bone arguments (what "python-osc parses and dispatches" means)
2. End to end over real loopback sockets: 10 synthetic performers at 120 Hz sent by
   ``mocap.sender`` in another process, received by ``mocap.listener.serve`` here; latency from
   the sender's monotonic stamp just before ``sendto`` to the normalised frame out of the
   ingest pipeline (same host, so CLOCK_MONOTONIC is shared); loss %.

Run: .venv/bin/python bench/mocap_ingest.py [--quick]   (prints one JSON object)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from machinima import vmc  # noqa: E402
from mocap.listener import Ingest, serve  # noqa: E402
from mocap.sources import VMCSource  # noqa: E402
from mocap.synthetic import synthetic_poses  # noqa: E402

PERFORMERS = 10
FPS = 120


def recorded_bytes(frames: int) -> list[tuple[int, bytes]]:
    t = np.arange(frames) / FPS
    out = []
    for i in range(PERFORMERS):
        poses = synthetic_poses(t, motion="mix", seed=i, index=i)
        for k in range(frames):
            out.append((i, vmc.encode_frame(poses[k], time_s=float(t[k]), root_name=f"p{i}")))
    out.sort(key=lambda x: x[1][-4:])  # interleave performers (deterministic shuffle)
    return out


def timed(fn, packets, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn(packets)
        best = min(best, time.perf_counter() - t0)
    return best


def parse_figures(frames: int, repeat: int) -> dict:
    packets = recorded_bytes(frames)
    n_bones = 55 * len(packets)

    decs = {i: vmc.VMCDecoder() for i in range(PERFORMERS)}
    for i, d in packets[:PERFORMERS * 2]:
        decs[i].decode(d)

    def fast(pk):
        for i, d in pk:
            decs[i].decode(d)

    gen = {i: vmc.VMCDecoder(fast=False) for i in range(PERFORMERS)}

    def general(pk):
        for i, d in pk:
            gen[i].decode(d)

    src = VMCSource("vmc")
    addrs = {i: ("127.0.0.1", 50000 + i) for i in range(PERFORMERS)}

    def source(pk):
        for i, d in pk:
            src.feed(d, addrs[i], 0)

    from pythonosc.dispatcher import Dispatcher

    store: dict = {}

    def on_bone(address, *args):
        store[args[0]] = args[1:]

    disp = Dispatcher()
    disp.map(vmc.ADDR_BONE, on_bone)

    def pyosc(pk):
        for i, d in pk:
            disp.call_handlers_for_packet(d, addrs[i])

    small = packets[: max(len(packets) // 8, 200)]
    t_fast = timed(fast, packets, repeat)
    t_src = timed(source, packets, repeat)
    t_gen = timed(general, small, max(1, repeat // 2))
    t_py = timed(pyosc, small, max(1, repeat // 2))
    fast_rate = n_bones / t_fast
    py_rate = 55 * len(small) / t_py
    hits = sum(d.fast_hits for d in decs.values())
    return {
        "bundles": len(packets),
        "bone_messages": n_bones,
        "fast_path_bone_msgs_per_s": round(fast_rate),
        "source_feed_bone_msgs_per_s": round(n_bones / t_src),
        "general_path_bone_msgs_per_s": round(55 * len(small) / t_gen),
        "python_osc_dispatch_bone_msgs_per_s": round(py_rate),
        "fast_vs_python_osc": round(fast_rate / py_rate, 1),
        "fast_path_hit_ratio": round(hits / (len(packets) * repeat + PERFORMERS * 2), 3),
        "fast_path_us_per_bundle": round(t_fast / len(packets) * 1e6, 2),
    }


SENDER = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
from mocap import sender
from mocap.synthetic import SyntheticPerformer
n, fps, secs, port = int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
perfs = []
for i in range(n):
    sp = SyntheticPerformer(motion="mix", seed=i, index=i, fps=fps, seconds=secs)
    perfs.append(sender.Performer(f"synth-{i + 1}", sp.pose_at))
st = sender.send(perfs, ("127.0.0.1", port), fps=fps, seconds=secs, record_send_times=True)
print(json.dumps({"frames": st.frames, "late_ticks": st.late_ticks, "send": [[i, k, t] for (i, k), t in st.send_ns.items()]}))
"""


def loopback_figures(seconds: float) -> dict:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    arrivals: dict[tuple[int, int], int] = {}

    def on_frame(f):
        i = int(f.performer.rsplit("-", 1)[1]) - 1
        arrivals[(i, int(round(f.sender_time_s * FPS)))] = time.monotonic_ns()

    ingest = Ingest(on_frame=on_frame)
    ingest.add_source(VMCSource("vmc"))

    async def run():
        ready = asyncio.Event()
        stop = asyncio.Event()
        task = asyncio.create_task(serve(ingest, [("vmc", "127.0.0.1", port)], stop=stop, ready=ready))
        await ready.wait()
        proc = await asyncio.create_subprocess_exec(sys.executable, "-c", SENDER, str(ROOT), str(PERFORMERS), str(FPS), str(seconds), str(port), stdout=asyncio.subprocess.PIPE)
        out, _ = await proc.communicate()
        await asyncio.sleep(0.5)
        stop.set()
        summary = await task
        return json.loads(out), summary

    sent, summary = asyncio.run(run())
    lat = []
    for i, k, t in sent["send"]:
        a = arrivals.get((i, k))
        if a is not None:
            lat.append((a - t) / 1e6)
    lat = np.array(lat)
    n_sent = len(sent["send"])
    return {
        "performers": PERFORMERS,
        "fps": FPS,
        "seconds": seconds,
        "frames_sent": n_sent,
        "frames_received": int(len(lat)),
        "loss_pct": round(100.0 * (n_sent - len(lat)) / n_sent, 3) if n_sent else None,
        "latency_ms_p50": round(float(np.percentile(lat, 50)), 3) if len(lat) else None,
        "latency_ms_p99": round(float(np.percentile(lat, 99)), 3) if len(lat) else None,
        "latency_ms_max": round(float(lat.max()), 3) if len(lat) else None,
        "sender_late_ticks": sent["late_ticks"],
        "rejected": summary[0]["rejects"],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    frames = 60 if args.quick else 240
    parse = parse_figures(frames, 3 if args.quick else 5)
    loop = loopback_figures(2.0 if args.quick else 10.0)
    print(json.dumps({
        "benchmark": "mocap_ingest",
        "machine": {"cpus": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2)},
        "parse_one_core": parse,
        "loopback_end_to_end": loop,
        "goals": {"fast_vs_python_osc_min": 20, "fast_path_bone_msgs_per_s_min": 2_300_000, "p99_ms_max": 2.0, "loss_pct": 0.0},
    }))


if __name__ == "__main__":
    main()

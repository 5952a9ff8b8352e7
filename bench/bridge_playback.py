"""Benchmark: engine-bridge playback schedule at 60/120/240 Hz for 10 performers.

A take of 10 performers recorded at 60 fps plays into 10 VMC receivers (one UDP port per
avatar, as VMC carries one avatar per port) at each engine rate (poses interpolated between
take frames). Receivers run in a separate process and stamp each datagram with the kernel's
receive time (SO_TIMESTAMPNS). Figures per rate and scheduler:

- ``wake_p50_ms`` / ``wake_p99_ms``: when the tick started vs its deadline (the scheduler's own
  jitter; for the naive loop measured against the ideal grid, so drift shows);
- ``arrival_p50_ms`` / ``arrival_p99_ms``: receiver-side deviation of one avatar's packets from
  the best-aligned grid of the rate, each packet against its nearest grid slot (end-to-end
  jitter, kernel stamps; capped at half a period by construction, see ``drift_ms`` for drift);
- ``drift_ms``: lateness of the last tick minus the first (against the ideal grid);
- ``messages_per_s`` (OSC messages), ``packets_per_s``, ``cpu_percent`` of the bridge process.

Schedulers: ``absolute`` (the bridge: absolute deadlines, sleep + 1 ms spin, SCHED_FIFO when
permitted), ``absolute_no_rt`` (same without the real-time policy) and the baseline ``naive``
(``work(); sleep(1/rate)``), all in the same run on the same take.

    .venv/bin/python bench/bridge_playback.py [--quick]     -> one JSON object on stdout
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import selectors
import socket
import struct
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from machinima import quat  # noqa: E402
from machinima.skeleton import BONE_INDEX, rest_pose  # noqa: E402
from machinima.take import Take  # noqa: E402
from machinima.timecode import NS_PER_S  # noqa: E402

from engine_bridge.mapping import AvatarMap, EngineMap, Mapping  # noqa: E402
from engine_bridge.player import Player  # noqa: E402
from engine_bridge.scheduler import JitterStats, Ticker  # noqa: E402

PERFORMERS = 10
TAKE_FPS = 60
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)


def make_take(root: Path, seconds: float) -> Path:
    n = int(seconds * TAKE_FPS) + 1
    take = Take.create(root, production="bench", scene="1", shot="A", fps=TAKE_FPS)
    stamps = take.store.origin_ns + (np.arange(n, dtype=np.int64) * NS_PER_S) // TAKE_FPS
    t = np.arange(n) / TAKE_FPS
    for i in range(PERFORMERS):
        name = f"p{i}"
        take.add_performer(name)
        poses = np.broadcast_to(rest_pose(), (n, *rest_pose().shape)).copy()
        poses[:, 0, 0] = np.sin(t + i)
        for b in ("RightUpperArm", "LeftUpperArm", "LeftLowerLeg", "Spine", "Head"):
            poses[:, BONE_INDEX[b], 3:7] = quat.from_axis_angle(np.array([0, 0, 1.0]), 0.5 * np.sin(2 * np.pi * t + i))
        take.store.append(f"mocap/{name}", stamps, poses)
    take.finalize()
    return take.path


def receiver(conn, n_ports: int) -> None:
    sel = selectors.DefaultSelector()
    socks = []
    for _ in range(n_ports):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        s.bind(("127.0.0.1", 0))
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, len(socks))
        socks.append(s)
    conn.send([s.getsockname()[1] for s in socks])
    stamps: list[int] = []
    counts = [0] * n_ports
    while True:
        if conn.poll():
            cmd = conn.recv()
            if cmd == "report":
                drain(socks, stamps, counts)
                conn.send((stamps, counts))
                stamps, counts = [], [0] * n_ports
            elif cmd == "stop":
                return
        ready = [key.fileobj for key, _ in sel.select(timeout=0.01)]
        if ready:
            drain(socks, stamps, counts)


def drain(socks, stamps, counts) -> None:
    """Read every queued datagram (kernel receive stamps of the first avatar's port)."""
    for idx, s in enumerate(socks):
        while True:
            try:
                _, anc, _, _ = s.recvmsg(65536, 256)
            except BlockingIOError:
                break
            counts[idx] += 1
            if idx == 0:
                for level, kind, raw in anc:
                    if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                        sec, nsec = struct.unpack("qq", raw[:16])
                        stamps.append(sec * NS_PER_S + nsec)


class NaiveTicker(Ticker):
    """The baseline: do the work, then sleep one period (no deadlines); lateness is measured
    against the ideal grid, so the drift it accumulates shows."""

    def _run(self, tick, max_ticks, start_ns):
        clock = self.clock
        start = clock() if start_ns is None else int(start_ns)
        period = NS_PER_S / float(self.rate)
        k = 0
        while not self._stop.is_set() and (max_ticks is None or self.stats.ticks < max_ticks):
            now = clock()
            self.stats.add(int(now - (start + k * period)))
            keep = tick(k, now)
            self.stats.busy_ns += clock() - now
            if keep is False:
                break
            time.sleep(period / NS_PER_S)
            k += 1
        return self.stats


def arrival_jitter(stamps: list[int], rate: float) -> dict[str, float]:
    t = np.asarray(stamps, dtype=np.float64)
    if t.size < 3:
        return {"arrival_p50_ms": None, "arrival_p99_ms": None}
    period = NS_PER_S / rate
    # each packet against its own grid slot (skipped ticks leave slots empty, they do not shift
    # the later packets; deviations beyond half a period wrap, so p99 is capped at period/2)
    slots = np.round((t - t[0]) / period)
    resid = (t - t[0]) - slots * period
    dev = np.abs(resid - np.median(resid)) / 1e6
    return {"arrival_p50_ms": round(float(np.percentile(dev, 50)), 4), "arrival_p99_ms": round(float(np.percentile(dev, 99)), 4)}


def run_one(take: Path, ports: list[int], rate: int, seconds: float, kind: str, conn) -> dict:
    avatars = [AvatarMap(f"p{i}", f"p{i}", port=ports[i]) for i in range(PERFORMERS)]
    mapping = Mapping([EngineMap("vmc", "vmc", "127.0.0.1", ports[0], float(rate), avatars)])
    player = Player(take, mapping, to_tc=None)
    if kind == "naive":
        player.ticker = NaiveTicker(rate, realtime=False)
    elif kind == "absolute_no_rt":
        player.ticker = Ticker(rate, realtime=False)
    else:
        player.ticker = Ticker(rate)
    player.ticker.stats = JitterStats()
    player.open_targets()
    n = int(seconds * rate)
    conn.send("report")  # clear
    conn.recv()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    rep = player.run(max_ticks=n)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    time.sleep(0.2)
    conn.send("report")
    stamps, counts = conn.recv()
    late = np.asarray(player.ticker.stats.late_ns, dtype=np.float64) / 1e6
    st = rep.targets["vmc"]
    out = {
        "ticks": rep.jitter["ticks"],
        "realtime": rep.jitter["realtime"],
        "skipped": rep.jitter["skipped"],
        "wake_mean_ms": rep.jitter["mean_ms"],
        "wake_p50_ms": rep.jitter["p50_ms"],
        "wake_p99_ms": rep.jitter["p99_ms"],
        "wake_max_ms": rep.jitter["max_ms"],
        "drift_ms": round(float(late[-1] - late[0]), 3) if late.size else None,
        **arrival_jitter(stamps, rate),
        "tick_work_ms": round(player.ticker.stats.busy_ns / max(1, rep.jitter["ticks"]) / 1e6, 4),
        "messages_per_s": round(st["messages"] / wall),
        "packets_per_s": round(st["packets"] / wall),
        "packets_received": int(sum(counts)),
        "errors": st["errors"],
        "cpu_percent": round(100 * cpu / wall, 1),
    }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1 s per case instead of 5 s")
    args = ap.parse_args()
    seconds = 1.0 if args.quick else 5.0
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=receiver, args=(child, PERFORMERS), daemon=True)
    proc.start()
    ports = parent.recv()
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        take = make_take(Path(tmp), 3 * seconds + 1)  # the naive loop runs slow: never let the take end first
        for rate in (60, 120, 240):
            for kind in ("absolute", "absolute_no_rt", "naive"):
                results.setdefault(f"{rate}hz", {})[kind] = run_one(take, ports, rate, seconds, kind, parent)
    parent.send("stop")
    proc.join(5)
    r120 = results["120hz"]["absolute"]
    print(json.dumps({
        "benchmark": "bridge_playback",
        "performers": PERFORMERS,
        "take_fps": TAKE_FPS,
        "seconds_per_case": seconds,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_avg_1m": round(os.getloadavg()[0], 2)},
        "results": results,
        "goal": {"p99_wake_under_1ms_at_120hz": r120["wake_p99_ms"] < 1.0, "p99_arrival_under_1ms_at_120hz": (r120["arrival_p99_ms"] or 99) < 1.0},
        "baseline": "naive = work(); sleep(1/rate), measured against the same ideal grid in the same run",
    }, indent=1))


if __name__ == "__main__":
    main()

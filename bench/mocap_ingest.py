"""Benchmark: mocap ingest, from UDP to recorded frames (prints one JSON object).

Datagrams are built with python-osc (the shapes real senders use), 10 performers x 55 bones:
``bundles`` (one frame per bundle, T last), ``split_bundles`` (each frame in 2 bundles),
``single_messages`` (one message per datagram, 57 per frame).

1. ``parse_one_core``: the VMC decoder alone on the same bytes against python-osc's
   ``Dispatcher.call_handlers_for_packet`` (a handler that only stores the bone arguments),
   the general path and the whole VMC source (decode + frame assembly).
2. ``throughput_one_core``, per shape: the physical ceiling and the pipeline on the SAME
   datagrams taken off a loopback socket, one core. Chunks of datagrams are sent into the
   socket (untimed), then drained (timed, in CPU seconds of the draining thread: the one-core
   figure on a shared machine; wall-clock figures beside) by (a) a bare ``recv_into`` loop,
   (b) the listener's path: ``machinima.udpbatch.BatchReceiver`` (recvmmsg, kernel stamps) ->
   ``Ingest.batch`` (decode, assemble, time, frame: a sender's steady state replayed in
   blocks) -> ``TakeWriter`` (a real take), commits on the idle-priority ``CommitTimer``
   thread as ``mocap listen`` runs them. The receive path's figure is the draining thread's CPU
   less the commits it ran itself (it does when the idle timer is starved: a loaded machine);
   ``with_commit_cpu`` adds every commit of the timed frames, whichever thread ran it (chunk
   codec, zlib, SQLite). The first frames of each sender are drained untimed
   (a listener learns a sender's layout once). Frames out must equal frames sent (0 loss).
   ``bundles_fallback``: bundles through the ``recvmsg_into`` fallback (platforms without
   recvmmsg).
3. ``loopback_10x120``: 10 performers at 120 Hz sent by ``mocap.sender`` in another process,
   received by ``mocap.listener.serve`` recording into a take; latency from the sender's
   monotonic stamp just before ``sendto`` to the frame out of the pipeline (same host, one
   CLOCK_MONOTONIC); loss.
4. ``flood_disk_to_disk``: a sender process floods split and whole bundles (T = its real
   clock) as fast as it can; first a bare receiver process counts what it takes off the socket,
   then ``machinima mocap listen --record`` (the whole command) takes the same flood; frames on
   disk, what the listener reported (late frames, transit, how far behind it read), backward
   jumps of recorded stamps.
5. ``profile``: cProfile of the pipeline drain (bundles, single messages): where the time goes.

Run: nice -n 10 .venv/bin/python bench/mocap_ingest.py [--quick] [--parts throughput,loopback,...]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from machinima import vmc  # noqa: E402
from machinima.take import Take  # noqa: E402
from machinima.takewriter import TakeWriter  # noqa: E402
from machinima.committimer import CommitTimer  # noqa: E402
from machinima.udpbatch import BatchReceiver, have_recvmmsg  # noqa: E402
from machinima.udprecv import open_udp  # noqa: E402
from mocap.ingest import Ingest  # noqa: E402
from mocap.listener import serve  # noqa: E402
from mocap.sources import VMCSource  # noqa: E402
from mocap.synthetic import synthetic_poses  # noqa: E402

PERFORMERS = 10
FPS = 120
SHAPES = ("bundles", "split_bundles", "single_messages")


def load() -> float:
    return round(os.getloadavg()[0], 2)


# --- datagrams, built with python-osc -----------------------------------------------------------
def _messages(pose: np.ndarray, name: str, t: float) -> list:
    from pythonosc.osc_message_builder import OscMessageBuilder

    from machinima.skeleton import BONES, canonical_to_unity

    def msg(addr, *args):
        b = OscMessageBuilder(address=addr)
        for a in args:
            b.add_arg(a)
        return b.build()

    out = [msg(vmc.ADDR_ROOT, name, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0)]
    p, q = canonical_to_unity(pose[:, :3], pose[:, 3:7])
    for j, b in enumerate(BONES):
        out.append(msg(vmc.ADDR_BONE, b, *(float(v) for v in p[j]), *(float(v) for v in q[j])))
    out += [msg(vmc.ADDR_OK, 1), msg(vmc.ADDR_TIME, float(t))]
    return out


def _bundle(msgs) -> bytes:
    from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder

    b = OscBundleBuilder(IMMEDIATELY)
    for m in msgs:
        b.add_content(m)
    return b.build().dgram


def shape_datagrams(shape: str, frames: int) -> list[tuple[int, bytes]]:
    """(performer, datagram) in sending order: frame by frame, performers interleaved."""
    t = np.arange(frames) / FPS
    poses = [synthetic_poses(t, motion="mix", seed=i, index=i) for i in range(PERFORMERS)]
    out = []
    for k in range(frames):
        for i in range(PERFORMERS):
            msgs = _messages(poses[i][k], f"p{i}", float(t[k]))
            if shape == "bundles":
                out.append((i, _bundle(msgs)))
            elif shape == "split_bundles":
                out += [(i, _bundle(msgs[:28])), (i, _bundle(msgs[28:]))]
            else:
                out += [(i, m.dgram) for m in msgs]
    return out


# --- 1. parser alone -------------------------------------------------------------------------------
def timed(fn, packets, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn(packets)
        best = min(best, time.perf_counter() - t0)
    return best


def parse_figures(packets: list[tuple[int, bytes]], repeat: int) -> dict:
    from pythonosc.dispatcher import Dispatcher

    n_bones = 55 * len(packets)
    decs = {i: vmc.VMCDecoder() for i in range(PERFORMERS)}
    for i, d in packets[:PERFORMERS * 2]:
        decs[i].decode(d)
    gen = {i: vmc.VMCDecoder(fast=False) for i in range(PERFORMERS)}
    src = VMCSource("vmc")
    addrs = {i: ("127.0.0.1", 50000 + i) for i in range(PERFORMERS)}
    store: dict = {}
    disp = Dispatcher()
    disp.map(vmc.ADDR_BONE, lambda address, *args: store.__setitem__(args[0], args[1:]))
    small = packets[: max(len(packets) // 8, 200)]
    t_fast = timed(lambda pk: [decs[i].decode(d) for i, d in pk], packets, repeat)
    t_src = timed(lambda pk: [src.feed(d, addrs[i], 0) for i, d in pk], packets, repeat)
    t_gen = timed(lambda pk: [gen[i].decode(d) for i, d in pk], small, max(1, repeat // 2))
    t_py = timed(lambda pk: [disp.call_handlers_for_packet(d, addrs[i]) for i, d in pk], small, max(1, repeat // 2))
    fast_rate, py_rate = n_bones / t_fast, 55 * len(small) / t_py
    return {
        "bundles": len(packets), "load_avg_1m": load(),
        "fast_path_bone_msgs_per_s": round(fast_rate),
        "fast_path_bundles_per_s": round(len(packets) / t_fast),
        "source_feed_bundles_per_s": round(len(packets) / t_src),
        "general_path_bone_msgs_per_s": round(55 * len(small) / t_gen),
        "python_osc_dispatch_bone_msgs_per_s": round(py_rate),
        "fast_vs_python_osc": round(fast_rate / py_rate, 1),
    }


# --- 2. fill and drain: bare loop vs the listener's path ---------------------------------------
class _Harness:
    """A loopback socket fed in chunks by one socket per performer; only draining is timed."""

    def __init__(self, datagrams: list[tuple[int, bytes]]) -> None:
        self.datagrams = datagrams
        self.rx = open_udp("127.0.0.1", 0, rcvbuf=8 << 20)
        self.addr = self.rx.getsockname()
        self.tx = []
        for _ in range(PERFORMERS):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
            s.bind(("127.0.0.1", 0))
            self.tx.append(s)
        size = max(len(d) for _, d in datagrams)
        self.chunk = max(50, min(2000, (3 << 20) // (size + 1200)))  # well inside the receive buffer

    def run(self, drain, warm: int = 0, on_timed=None) -> tuple[float, float, float, int]:
        """(wall seconds, CPU seconds of this process, CPU seconds of this thread, datagrams)
        spent draining, the first
        ``warm`` datagrams untimed (a listener learns each sender's layout once: the steady
        state is what a take of any length sees). On a shared machine the CPU time is the
        one-core figure: other processes' turns are not in it."""
        wall, cpu, tcpu, got = 0.0, 0.0, 0.0, 0
        for at in range(0, warm, self.chunk):
            part = self.datagrams[at:min(at + self.chunk, warm)]
            for i, d in part:
                self.tx[i].sendto(d, self.addr)
            drain()
        if on_timed is not None:
            on_timed()
        for at in range(warm, len(self.datagrams), self.chunk):
            part = self.datagrams[at:at + self.chunk]
            for i, d in part:
                self.tx[i].sendto(d, self.addr)
            t0, c0, h0 = time.perf_counter(), time.process_time(), time.thread_time()
            n = drain()
            wall += time.perf_counter() - t0
            cpu += time.process_time() - c0
            tcpu += time.thread_time() - h0
            got += n
            if n != len(part):
                raise RuntimeError(f"the socket dropped {len(part) - n} datagrams: lower the chunk size")
        return wall, cpu, tcpu, got

    def close(self) -> None:
        self.rx.close()
        for s in self.tx:
            s.close()


def _bare_drain(sock: socket.socket):
    buf = bytearray(65536)
    recv_into = sock.recv_into

    def drain() -> int:
        n = 0
        try:
            while True:
                recv_into(buf)
                n += 1
        except BlockingIOError:
            return n
    return drain


def _pipeline(sock: socket.socket, tmp: Path, batched: bool | None = None):
    """The listener's path: ``BatchReceiver`` (recvmmsg, or the recvmsg_into fallback with
    ``batched=False``) -> ``Ingest.batch`` -> ``TakeWriter``, commits on the idle-priority
    ``CommitTimer`` thread as ``mocap listen`` runs them."""
    take = Take.create(tmp, production="bench", scene="1", shot="a", fps=FPS)
    writer = TakeWriter(take)
    ingest = Ingest(writer=writer)
    ingest.add_source(VMCSource("vmc", max_packets_per_s=1e9))
    rx = BatchReceiver(sock, lambda b: ingest.batch("vmc", b), batched=batched)  # the listener's defaults
    # A listener that has run a while has had the pages of its ring faulted in (the ring is
    # calloc'd: a row's pages are touched when a datagram first fills it); so has the bare
    # loop's one buffer. Touch them here so a short run (--quick, a warm-up shorter than a
    # chunk) measures the steady state, not the first page faults.
    rx.data[:, :4096 * 2] = 0
    # commit CPU, by thread: the receive thread commits itself when the idle timer is starved
    # (a loaded machine); the figures take it out of the receive path and count it apart
    cost = {"receive_thread": 0.0, "all": 0.0}
    me = threading.get_ident()
    orig_commit = writer.commit

    def commit() -> int:
        c0 = time.thread_time()
        try:
            return orig_commit()
        finally:
            dt = time.thread_time() - c0
            cost["all"] += dt
            if threading.get_ident() == me:
                cost["receive_thread"] += dt
    writer.commit = commit  # type: ignore[method-assign]
    timer = CommitTimer(writer).start()

    def drain() -> int:
        n = rx.drain()
        while rx.backlog:
            n += rx.drain()
        ingest.tick(commit=timer.due())  # the listener's loop: commits only when the timer is starved
        return n
    drain.timer = timer  # type: ignore[attr-defined]
    drain.commit_cpu = cost  # type: ignore[attr-defined]
    return drain, ingest, take


def throughput_figures(shape: str, datagrams: list[tuple[int, bytes]], frames: int, warm_frames: int, batched: bool | None = None) -> dict:
    h = _Harness(datagrams)
    warm = len(datagrams) * warm_frames // frames
    try:
        bare_t, bare_c, _, bare_n = h.run(_bare_drain(h.rx), warm)
        with tempfile.TemporaryDirectory() as tmp:
            drain, ingest, take = _pipeline(h.rx, Path(tmp), batched)
            cost = drain.commit_cpu
            pipe_t, pipe_c, pipe_thread, pipe_n = h.run(drain, warm, on_timed=lambda: cost.update(receive_thread=0.0, all=0.0))
            drain.timer.stop()
            commits = drain.timer.commits
            in_receive = cost["receive_thread"]
            ingest.finish()  # the last commit: frames of the timed part
            recorded = ingest.recorded
            late = sum(st.counts.get("late", 0) for st in ingest.timing["vmc"].values())
            ingest.end_take()
    finally:
        h.close()
    receive_only = pipe_thread - in_receive
    with_commit = receive_only + cost["all"]
    bare_rate, thread_rate, commit_rate = bare_n / bare_c, pipe_n / receive_only, pipe_n / with_commit
    return {
        "shape": shape, "receive": "recvmmsg" if (batched is None and have_recvmmsg()) or batched else "recvmsg_into fallback",
        "datagrams": len(datagrams), "datagram_bytes": len(datagrams[0][1]), "frames_sent": frames * PERFORMERS,
        "load_avg_1m": load(),
        "bare_recv_into_datagrams_per_s": round(bare_rate),
        "pipeline_datagrams_per_s": round(thread_rate),
        "pipeline_frames_per_s": round((recorded - warm_frames * PERFORMERS) / receive_only),
        "pipeline_vs_bare_pct": round(100 * thread_rate / bare_rate, 1),
        "commit_cpu_s": round(cost["all"], 4), "commit_cpu_in_receive_thread_s": round(in_receive, 4), "timer_commits": commits,
        "with_commit_cpu": {"pipeline_datagrams_per_s": round(commit_rate), "pipeline_vs_bare_pct": round(100 * commit_rate / bare_rate, 1),
                            "note": "the receive path plus every commit of the timed frames (chunk codec, zlib, SQLite), whichever thread ran it"},
        "process_cpu": {"pipeline_datagrams_per_s": round(pipe_n / pipe_c), "note": "all threads' CPU while draining (the timer thread's share of commits that ran meanwhile)"},
        "timed_datagrams": pipe_n, "warm_up_frames_untimed": warm_frames,
        "by_wall_clock": {"bare_datagrams_per_s": round(bare_n / bare_t), "pipeline_datagrams_per_s": round(pipe_n / pipe_t),
                          "pipeline_vs_bare_pct": round(100 * (pipe_n / pipe_t) / (bare_n / bare_t), 1)},
        "frames_recorded": recorded, "loss": frames * PERFORMERS - recorded, "late": late,
        "goal_pipeline_vs_bare_pct_min": 20,
    }


# --- 3. 10 performers x 120 Hz over loopback -----------------------------------------------------
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


def _free_port() -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def loopback_figures(seconds: float, idle_commits: bool = True) -> dict:
    port = _free_port()
    arrivals: dict[tuple[int, int], int] = {}

    def on_frame(f):
        i = int(f.performer.rsplit("-", 1)[1]) - 1
        arrivals[(i, int(round(f.sender_time_s * FPS)))] = time.monotonic_ns()

    with tempfile.TemporaryDirectory() as tmp:
        take = Take.create(tmp, production="bench", scene="1", shot="a", fps=FPS)
        ingest = Ingest(on_frame=on_frame, writer=TakeWriter(take))
        ingest.add_source(VMCSource("vmc"))

        async def run():
            ready, stop = asyncio.Event(), asyncio.Event()
            task = asyncio.create_task(serve(ingest, [("vmc", "127.0.0.1", port)], stop=stop, ready=ready, idle_commits=idle_commits))
            await ready.wait()
            proc = await asyncio.create_subprocess_exec(sys.executable, "-c", SENDER, str(ROOT), str(PERFORMERS), str(FPS), str(seconds), str(port), stdout=asyncio.subprocess.PIPE)
            out, _ = await proc.communicate()
            await asyncio.sleep(0.5)
            stop.set()
            return json.loads(out), await task

        sent, summary = asyncio.run(run())
        ingest.end_take(summary=summary)
        recorded = sum(len(Take.open(take.path).store.read_mocap(p)) for p in Take.open(take.path).store.performers())
    lat = np.array([(arrivals[(i, k)] - t) / 1e6 for i, k, t in sent["send"] if (i, k) in arrivals])
    n_sent = len(sent["send"])
    return {
        "performers": PERFORMERS, "fps": FPS, "seconds": seconds, "load_avg_1m": load(), "commit_thread": "idle priority" if idle_commits else "normal priority",
        "frames_sent": n_sent, "frames_live": int(len(lat)), "frames_recorded": recorded,
        "loss_pct": round(100.0 * (n_sent - recorded) / n_sent, 3) if n_sent else None,
        "latency_ms_p50": round(float(np.percentile(lat, 50)), 3) if len(lat) else None,
        "latency_ms_p99": round(float(np.percentile(lat, 99)), 3) if len(lat) else None,
        "latency_ms_max": round(float(lat.max()), 3) if len(lat) else None,
        "sender_late_ticks": sent["late_ticks"],
        "listener_reported": {k: summary[0][k] for k in ("loss_pct", "transit_ms_p50", "transit_ms_p99", "behind_ms_p99")},
        "goals": {"latency_ms_p99_max": 2.0, "loss_pct": 0.0},
    }


# --- 4. flood, disk to disk ---------------------------------------------------------------------
FLOODER = r"""
import json, socket, struct, sys, time
port, secs, path = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
data = json.load(open(path))
socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(max(i for i, _, _ in data) + 1)]
grams = [(socks[i], bytearray(bytes.fromhex(d)), off) for i, d, off in data]
t0 = time.monotonic(); end = t0 + secs; n = 0
pack = struct.Struct(">f").pack_into
mono = time.monotonic
while mono() < end:
    for s, g, off in grams:
        if off >= 0:
            pack(g, off, mono() - t0)  # T is the sender's real clock when each frame leaves
        try:
            s.sendto(g, ("127.0.0.1", port))
        except OSError:
            pass
        n += 1
print(json.dumps({"datagrams": n, "seconds": time.monotonic() - t0}))
"""

BARE = r"""
import json, socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.settimeout(60)
print("ready", flush=True)
buf = bytearray(65536); n = 0; t0 = None; last = None
try:
    while True:
        s.recv_into(buf); n += 1; last = time.monotonic()
        if t0 is None:
            t0 = last
            s.settimeout(0.5)  # the flood has started: half a second of silence ends it
except socket.timeout:
    pass
print(json.dumps({"datagrams": n, "seconds": (last - t0) if t0 else 0}))
"""


def flood_figures(seconds: float) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    grams = []
    for i, d in shape_datagrams("split_bundles", 4):
        grams.append([i, d.hex(), d.rfind(b"/VMC/Ext/T\x00\x00,f\x00\x00") + 16 if b"/VMC/Ext/T\x00" in d else -1])
    out: dict = {"seconds": seconds, "shape": "2 bundles a frame (T last), 10 performers"}
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "grams.json"
        spec.write_text(json.dumps(grams))
        # (a) a bare recv_into loop in its own process takes what it can of the flood
        port = _free_port()
        bare = subprocess.Popen([sys.executable, "-c", BARE, str(port)], stdout=subprocess.PIPE, text=True)
        bare.stdout.readline()
        flood = subprocess.run([sys.executable, "-c", FLOODER, str(port), str(seconds), str(spec)], capture_output=True, text=True, check=True)
        sent = json.loads(flood.stdout)
        got = json.loads(bare.communicate(timeout=30)[0])
        out["bare_process"] = {"sent_datagrams_per_s": round(sent["datagrams"] / sent["seconds"]), "received_datagrams_per_s": round(got["datagrams"] / max(got["seconds"], 1e-9)),
                               "received_pct": round(100 * got["datagrams"] / sent["datagrams"], 1), "load_avg_1m": load()}
        # (b) the whole command, disk to disk
        port = _free_port()
        takes = Path(tmp) / "takes"
        lis = subprocess.Popen([sys.executable, "-m", "machinima", "mocap", "listen", "--vmc", str(port), "--host", "127.0.0.1", "--record", str(takes),
                                "--seconds", str(seconds + 3), "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        lis.stderr.readline()  # "recording into ..."
        time.sleep(0.5)
        flood = subprocess.run([sys.executable, "-c", FLOODER, str(port), str(seconds), str(spec)], capture_output=True, text=True, check=True)
        sent = json.loads(flood.stdout)
        res = json.loads(lis.communicate(timeout=120)[0])
        take = Take.open(takes / res["take"])
        frames, backwards = 0, 0
        for p in take.store.performers():
            stamps = _stamps_as_written(take, "mocap/" + p)
            frames += len(stamps)
            backwards += int(np.sum(np.diff(stamps) <= 0))
        src = res["sources"][0]
        out["listen_record"] = {
            "sent_datagrams_per_s": round(sent["datagrams"] / sent["seconds"]), "frames_sent": sent["datagrams"] // 2,
            "frames_on_disk": frames, "frames_on_disk_per_s": round(frames / sent["seconds"]),
            "frames_on_disk_pct": round(100 * frames / (sent["datagrams"] // 2), 1),
            "reported_late": src["timing"].get("late", 0), "reported_loss_pct": src["loss_pct"],
            "reported_transit_ms_p50": src["transit_ms_p50"], "reported_transit_ms_p99": src["transit_ms_p99"],
            "reported_behind_ms_p99": src["behind_ms_p99"], "recorded_backward_jumps": backwards, "load_avg_1m": load(),
        }
    return out


def _stamps_as_written(take: Take, stream: str) -> np.ndarray:
    """A stream's stamps in the order they were written (reading sorts them)."""
    from machinima.store import decode_chunk

    rows = take.store._db.execute("SELECT n, codec, t_ns FROM chunks WHERE stream=? ORDER BY id", (stream,)).fetchall()
    parts = [decode_chunk(tb, n, np.int64, (), codec) for n, codec, tb in rows]
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


# --- 5. where the time goes ----------------------------------------------------------------------
def profile_figures(shape: str, datagrams: list[tuple[int, bytes]], warm: int) -> list[dict]:
    h = _Harness(datagrams)
    prof = cProfile.Profile()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            drain, ingest, _ = _pipeline(h.rx, Path(tmp))

            seen = [0]

            def profiled() -> int:  # the steady state only, as in the throughput figures
                if seen[0] < warm:
                    n = drain()
                else:
                    prof.enable()
                    try:
                        n = drain()
                    finally:
                        prof.disable()
                seen[0] += n
                return n
            h.run(profiled, warm)  # the warm-up in chunks of its own: the profiled part is never empty
            ingest.finish()
            ingest.end_take()
    finally:
        h.close()
    st = pstats.Stats(prof)
    total = sum(v[2] for v in st.stats.values())  # type: ignore[attr-defined]
    rows = sorted(st.stats.items(), key=lambda kv: -kv[1][2])[:10]  # type: ignore[attr-defined]
    return [{"function": f"{Path(f).name}:{line} {fn}", "tottime_pct": round(100 * v[2] / total, 1), "calls": v[1]} for (f, line, fn), v in rows]


PARTS = ("parse", "throughput", "fallback", "loopback", "flood", "profile")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--parts", default=",".join(PARTS),
                    help=f"comma-separated sections to run (default all: {','.join(PARTS)}); e.g. throughput,loopback for a short same-machine comparison")
    args = ap.parse_args()
    parts = [p for p in args.parts.split(",") if p]
    bad = sorted(set(parts) - set(PARTS))
    if bad:
        ap.error(f"unknown part(s) {', '.join(bad)}: pick from {', '.join(PARTS)}")
    frames, warm = (40, 10) if args.quick else (300, 60)
    started = load()
    data = {s: shape_datagrams(s, frames) for s in SHAPES}
    command = "nice -n 10 .venv/bin/python bench/mocap_ingest.py" + (" --quick" if args.quick else "")
    if args.parts != ",".join(PARTS):
        command += f" --parts {args.parts}"
    result: dict = {"benchmark": "mocap_ingest", "command": command, "machine": {"cpus": os.cpu_count(), "load_avg_1m_at_start": started}}
    if "parse" in parts:
        result["parse_one_core"] = parse_figures(data["bundles"], 3 if args.quick else 5)
    if "throughput" in parts:
        result["throughput_one_core"] = [throughput_figures(s, data[s], frames, warm) for s in SHAPES]
    if "fallback" in parts:
        result["bundles_fallback"] = throughput_figures("bundles", data["bundles"], frames, warm, batched=False)
    if "loopback" in parts:
        result["loopback_10x120"] = loopback_figures(2.0 if args.quick else 10.0)
    if "flood" in parts:
        result["flood_disk_to_disk"] = flood_figures(2.0 if args.quick else 5.0)
    if "profile" in parts:
        result["profile"] = {s: profile_figures(s, data[s], len(data[s]) * warm // frames) for s in ("bundles", "single_messages")}
    result["machine"]["load_avg_1m_at_end"] = load()
    print(json.dumps(result))


if __name__ == "__main__":
    main()

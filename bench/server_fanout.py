"""Stage fan-out benchmark: N performers + M viewers on loopback, 60 Hz, while recording.

    .venv/bin/python bench/server_fanout.py [--quick] [--performers 10] [--viewers 200,1000]

For each viewer count it runs, in separate processes: the server, one process of performers
(canonical float32 poses at 60 Hz) and several viewer processes (raw, minimal WebSocket
clients, the same code for both servers), then prints ONE JSON object:

- ``stage``: ``machinima server`` (``server.stage.StageServer``) while a take records:
  per-tick bundles of float16 poses, encoded once and written to every viewer, latest-wins.
- ``naive``: a plain websockets server that broadcasts a float32 bundle of every performer's
  latest pose with ``websockets.broadcast`` at a fixed 60 Hz (the baseline), no recording.

Figures per run: ``delivery_ms`` p50/p99 (server send stamp in the bundle -> viewer receive,
the measure of the reference figures), ``end_to_end_ms`` p50/p99 (performer capture stamp ->
viewer receive, for the stage), ``bundles_per_viewer_s``, ``bytes_per_bundle``, server CPU %
(100 = one core) and machine CPU %, and for the stage ``frames_sent`` / ``frames_recorded``
(the recorder must lose 0) and ``skipped`` (stale live frames dropped for slow viewers).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

RATE = 60.0


# --- a minimal WebSocket viewer (same for both servers) ---------------------------------------
def _client_frame(payload: bytes, opcode: int = 1) -> bytes:
    key = os.urandom(4)
    n = len(payload)
    head = bytes([0x80 | opcode]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + n.to_bytes(2, "big"))
    arr = np.frombuffer(payload, np.uint8) ^ np.frombuffer((key * (n // 4 + 1))[:n], np.uint8)
    return head + key + arr.tobytes()


class Viewer(asyncio.Protocol):
    def __init__(self, host: str, path: str, first: list[bytes], stats: "ViewerStats") -> None:
        self.host, self.path, self.first, self.stats = host, path, first, stats
        self.buf = bytearray()
        self.open = False
        self.ready = asyncio.get_running_loop().create_future()

    def connection_made(self, transport) -> None:
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write(f"GET {self.path} HTTP/1.1\r\nHost: {self.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())

    def data_received(self, data: bytes) -> None:
        now = time.time_ns()
        self.buf += data
        if not self.open:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            if not self.buf.startswith(b"HTTP/1.1 101"):
                self.ready.set_exception(RuntimeError(bytes(self.buf[:80]).decode(errors="replace")))
                return
            del self.buf[:end + 4]
            self.open = True
            for f in self.first:
                self.transport.write(_client_frame(f))
            self.ready.set_result(True)
        buf = self.buf
        while len(buf) >= 2:
            op = buf[0] & 0x0F
            n = buf[1] & 0x7F
            off = 2
            if n == 126:
                if len(buf) < 4:
                    return
                n = int.from_bytes(buf[2:4], "big")
                off = 4
            elif n == 127:
                if len(buf) < 10:
                    return
                n = int.from_bytes(buf[2:10], "big")
                off = 10
            if len(buf) < off + n:
                return
            if op == 2:
                self.stats.on_bundle(buf, off, n, now)
            elif op == 9:
                self.transport.write(_client_frame(bytes(buf[off:off + n]), 0xA))
            del buf[:off + n]

    def connection_lost(self, exc) -> None:
        self.stats.lost += 1


class ViewerStats:
    def __init__(self) -> None:
        self.t0 = self.t1 = 0
        self.delivery: list[int] = []
        self.e2e: list[int] = []
        self.bundles = 0
        self.bytes = 0
        self.lost = 0

    def on_bundle(self, buf: bytearray, off: int, n: int, now: int) -> None:
        if not (self.t0 <= now <= self.t1):
            return
        (t_bundle,) = struct.unpack_from("<q", buf, off + 12)
        count = buf[off + 6] | (buf[off + 7] << 8)
        p = off + 20
        oldest = t_bundle
        for _ in range(count):
            (ln,) = struct.unpack_from("<I", buf, p)
            (t,) = struct.unpack_from("<q", buf, p + 4 + 12)
            oldest = min(oldest, t)
            p += 4 + ln
        self.delivery.append(now - t_bundle)
        self.e2e.append(now - oldest)
        self.bundles += 1
        self.bytes += n


async def _viewer_proc(url: str, tokens: list[str], out: str, stage: bool, interest: int = 0) -> None:
    from machinima import protocol as P

    host_port = url.split("//", 1)[1].split("/", 1)[0]
    host, port = host_port.rsplit(":", 1)
    path = "/" + url.split("//", 1)[1].split("/", 1)[1]
    stats = ViewerStats()
    loop = asyncio.get_running_loop()
    viewers = []
    for i in range(0, len(tokens), 50):
        batch = []
        for j, tok in enumerate(tokens[i:i + 50]):
            perf = [f"perf{(i + j) % interest:02d}"] if interest else None  # one performer each
            first = [P.encode_control("hello", token=tok).encode(), P.encode_control("subscribe", id="s", frames=True, performers=perf, encoding="f16", events=False).encode()] if stage else []
            tr, proto = await loop.create_connection(lambda f=first: Viewer(host_port, path, f, stats), host, int(port))
            batch.append(proto)
        await asyncio.gather(*(p.ready for p in batch))
        viewers += batch
    print("ready", flush=True)
    line = await loop.run_in_executor(None, sys.stdin.readline)
    t0, t1 = (float(x) for x in line.split())
    stats.t0, stats.t1 = int(t0 * 1e9), int(t1 * 1e9)
    await asyncio.sleep(max(0.0, t1 - time.time()) + 0.3)
    np.savez(out, delivery=np.array(stats.delivery, np.int64), e2e=np.array(stats.e2e, np.int64), bundles=stats.bundles, bytes=stats.bytes, lost=stats.lost)
    for v in viewers:
        v.transport.abort()


# --- performers --------------------------------------------------------------------------------
async def _performer_proc(url: str, tokens: list[str], names: list[str], stage: bool) -> None:
    from websockets.asyncio.client import connect

    from machinima import protocol as P
    from machinima.skeleton import rest_pose

    conns = []
    for tok, name in zip(tokens, names):
        ws = await connect(url, compression=None, proxy=None, max_size=None)
        if stage:
            await ws.send(P.encode_control("hello", token=tok))
            await ws.recv()
        conns.append(ws)
    print("ready", flush=True)
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    t_end = float(line.split()[1])
    sent = 0
    base = rest_pose()
    i = 0
    start = time.perf_counter()
    while time.time() < t_end:
        for k, (ws, name) in enumerate(zip(conns, names)):
            pose = base.copy()
            pose[0, 0] = 0.3 * np.sin(i / RATE + k)
            await ws.send(P.encode_pose(name, pose, seq=i))
            sent += 1
        i += 1
        await asyncio.sleep(max(0.0, start + i / RATE - time.perf_counter()))
    await asyncio.sleep(0.3)
    print(json.dumps({"sent": sent}), flush=True)
    for ws in conns:
        await ws.close()


# --- the naive baseline server ---------------------------------------------------------------
async def _naive_server() -> None:
    from websockets.asyncio.server import broadcast, serve

    from machinima import protocol as P

    latest: dict[str, bytes] = {}
    viewers = set()

    async def handler(ws):
        if ws.request.path.startswith("/view"):
            viewers.add(ws)
            try:
                await ws.wait_closed()
            finally:
                viewers.discard(ws)
            return
        async for msg in ws:
            if isinstance(msg, bytes):
                f = P.decode_frame(msg)
                latest[f.name] = msg

    async with serve(handler, "127.0.0.1", 0, compression=None, max_size=None) as srv:
        print(f"listening on ws://127.0.0.1:{srv.sockets[0].getsockname()[1]}/", flush=True)
        seq = 0
        nxt = time.perf_counter()
        while True:
            nxt += 1 / RATE
            await asyncio.sleep(max(0.0, nxt - time.perf_counter()))
            if latest and viewers:
                seq += 1
                broadcast(viewers, P.encode_bundle(list(latest.values()), seq=seq))


# --- orchestration -----------------------------------------------------------------------------
def _spawn(*args: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env, cwd=str(REPO))


def _pct(a: np.ndarray, q: float) -> float | None:
    return round(float(np.percentile(a, q)) / 1e6, 2) if a.size else None


def run_one(kind: str, performers: int, viewers: int, duration: float, procs: int, tmp: Path, workers: int = 0, interest: str = "all") -> dict:
    import psutil

    from machinima.client import SyncStageClient
    from machinima import protocol as P

    root = tmp / f"{kind}-{viewers}-{workers}-{interest}"
    stage = kind == "stage"
    if stage:
        from server.auth import load_secret

        secret = load_secret(root)
        prof = ["-m", "cProfile", "-o", os.environ["BENCH_PROFILE"]] if os.environ.get("BENCH_PROFILE") else []
        srv = _spawn(*prof, "-m", "server", "--root", str(root), "--port", "0", "--log-level", "error", "--max-rate", "1000", "--workers", str(workers))
    else:
        srv = _spawn(__file__, "--naive-server")
    line = srv.stdout.readline()
    url = line.split()[-1]
    base = url.rsplit("/", 1)[0]
    view_url = url if stage else base + "/view"
    if stage and workers:
        view_url = srv.stdout.readline().split()[3]
    names = [f"perf{i:02d}" for i in range(performers)]
    tok = (lambda role, name: P.make_token(secret, role, name)) if stage else (lambda role, name: "")
    per = [viewers // procs + (1 if i < viewers % procs else 0) for i in range(procs)]
    vprocs, outs = [], []
    k = 0
    for i, n in enumerate(per):
        out = tmp / f"{kind}-{viewers}-{workers}-{interest}-v{i}.npz"
        args = [__file__, "--viewer-proc", "--url", view_url, "--out", str(out)]
        if stage:
            tf = tmp / f"{kind}-{viewers}-v{i}.tokens"
            tf.write_text("\n".join(tok("observer", f"viewer{k + j}") for j in range(n)))
            args += ["--tokens-file", str(tf)] + (["--interest", str(performers)] if interest == "one" else [])
        else:
            args += ["--count", str(n)]
        k += n
        vprocs.append(_spawn(*args))
        outs.append(out)
    for p in vprocs:
        assert p.stdout.readline().strip() == "ready", "a viewer process failed to connect"
    director = None
    if stage:
        director = SyncStageClient(url, tok("director", "bench"))
        director.record(slate={"production": "bench", "scene": "fanout", "shot": str(viewers)})
    ptf = tmp / f"{kind}-{viewers}-p.tokens"
    ptf.write_text("\n".join(tok("performer", n) for n in names))
    pp = _spawn(__file__, "--performer-proc", "--url", url if stage else base + "/perf", "--tokens-file", str(ptf), "--performers", str(performers), *(["--stage"] if stage else []))
    assert pp.stdout.readline().strip() == "ready"
    t0 = time.time() + 1.5
    t1 = t0 + duration
    for p in vprocs + [pp]:
        p.stdin.write(f"{t0} {t1}\n")
        p.stdin.flush()
    ps = [psutil.Process(srv.pid)] + psutil.Process(srv.pid).children()
    vs = [psutil.Process(p.pid) for p in vprocs]
    time.sleep(max(0.0, t0 - time.time()))
    for q in ps + vs:
        q.cpu_percent(None)
    psutil.cpu_percent(None)
    time.sleep(max(0.0, t1 - time.time()))
    cpu_srv = sum(q.cpu_percent(None) for q in ps)
    cpu_viewers = sum(q.cpu_percent(None) for q in vs)
    cpu_all = psutil.cpu_percent(None)
    sent = json.loads(pp.stdout.readline())["sent"]
    for p in vprocs:
        p.wait(60)
    result = {}
    if stage:
        time.sleep(0.3)
        stop = director.stop()
        import urllib.request

        health = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{url.rsplit(':', 1)[1].split('/')[0]}/health", timeout=10).read())
        director.close()
        result.update(frames_sent=sent, frames_recorded=stop["samples"], recorder_lost=sent - stop["samples"], skipped=health["stats"]["skipped"])
    pp.wait(30)
    srv.terminate()
    srv.wait(30)
    d = [np.load(o) for o in outs]
    delivery = np.concatenate([x["delivery"] for x in d])
    e2e = np.concatenate([x["e2e"] for x in d])
    bundles = sum(int(x["bundles"]) for x in d)
    result.update(
        viewers=viewers, performers=performers, workers=workers,
        delivery_ms={"p50": _pct(delivery, 50), "p99": _pct(delivery, 99)},
        end_to_end_ms={"p50": _pct(e2e, 50), "p99": _pct(e2e, 99)},
        bundles_per_viewer_s=round(bundles / viewers / duration, 1),
        bytes_per_bundle=int(sum(int(x["bytes"]) for x in d) / max(bundles, 1)),
        viewers_lost=sum(int(x["lost"]) for x in d),
        server_cpu_pct=round(cpu_srv, 1), viewers_cpu_pct=round(cpu_viewers, 1), machine_cpu_pct=round(cpu_all, 1),
    )
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--performers", type=int, default=10)
    ap.add_argument("--viewers", default=None, help="comma-separated viewer counts (default 200,1000; quick 200)")
    ap.add_argument("--duration", type=float, default=None)
    ap.add_argument("--viewer-procs", type=int, default=4)
    ap.add_argument("--workers", type=int, default=2, help="live fan-out workers for the stage's second run (0: skip it)")
    # internal roles
    ap.add_argument("--naive-server", action="store_true")
    ap.add_argument("--viewer-proc", action="store_true")
    ap.add_argument("--performer-proc", action="store_true")
    ap.add_argument("--stage", action="store_true")
    ap.add_argument("--url")
    ap.add_argument("--out")
    ap.add_argument("--tokens-file")
    ap.add_argument("--count", type=int, default=0)
    ap.add_argument("--interest", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--one-performer-run", action="store_true", help="add a stage run where each viewer watches one performer")
    a = ap.parse_args()
    if a.naive_server:
        return asyncio.run(_naive_server())
    if a.viewer_proc:
        tokens = Path(a.tokens_file).read_text().split("\n") if a.tokens_file else [""] * a.count
        return asyncio.run(_viewer_proc(a.url, tokens, a.out, bool(a.tokens_file), a.interest))
    if a.performer_proc:
        tokens = Path(a.tokens_file).read_text().split("\n")
        return asyncio.run(_performer_proc(a.url, tokens, [f"perf{i:02d}" for i in range(a.performers)], a.stage))
    counts = [int(x) for x in (a.viewers or ("200" if a.quick else "200,1000")).split(",")]
    duration = a.duration or (3.0 if a.quick else 8.0)
    import psutil

    out = {"benchmark": "server_fanout", "rate_hz": RATE, "duration_s": duration, "cpus": os.cpu_count(),
           "load_avg_before": [round(x, 2) for x in os.getloadavg()], "runs": []}
    with tempfile.TemporaryDirectory() as td:
        kinds = [("naive", 0, "all"), ("stage", 0, "all")] + ([("stage", a.workers, "all")] if a.workers else [])
        kinds += [("stage", 0, "one")] if a.one_performer_run else []
        for n in counts:
            for kind, w, interest in kinds:
                r = run_one(kind, a.performers, n, duration, a.viewer_procs, Path(td), w, interest)
                r["server"] = (kind if not w else f"stage+{w}workers") + ("-one-performer-each" if interest == "one" else "")
                out["runs"].append(r)
                print(json.dumps(r), file=sys.stderr, flush=True)
    by = {(r["server"], r["viewers"]): r for r in out["runs"]}
    top = max(counts)
    nv = by[("naive", top)]
    out["summary"] = {"viewers": top, "naive_delivery_p99_ms": nv["delivery_ms"]["p99"]}
    for name in [k for k, _ in sorted(by) if k != "naive"]:
        s = by.get((name, top))
        if s:
            out["summary"][name] = {
                "delivery_p99_ms": s["delivery_ms"]["p99"], "end_to_end_p99_ms": s["end_to_end_ms"]["p99"],
                "goal_p99_under_20ms": bool(s["delivery_ms"]["p99"] is not None and s["delivery_ms"]["p99"] < 20),
                "beats_naive": bool(s["delivery_ms"]["p99"] < nv["delivery_ms"]["p99"]), "recorder_lost": s["recorder_lost"],
            }
    print(json.dumps(out))


if __name__ == "__main__":
    main()

"""Live fan-out workers: read-only viewers served by extra processes (``--workers K``).

One process writes every viewer's socket itself, and on a small machine one ``send`` per viewer
per tick is the limit (each costs tens of microseconds in the kernel). With ``--workers K`` the
stage also listens on a *live port* (``--live-port``, ``ws://HOST:LIVE/live``) whose
connections are accepted by K worker processes sharing one listening socket. After each fan-out
the stage sends the frames that changed to every worker once (a length-prefixed BUNDLE over a
socket pair); each worker bundles them per interest and writes its own viewers, with the same
queue limits (latest wins, ``dropped`` notices, close after ``slow_close_s``).

On the live port any valid token may watch (``subscribe``, ``ping``); everything else is
refused with ``forbidden`` and a pointer to ``/stage``. A worker exits when the stage goes
away (its pipe closes), so ``kill -9`` of the stage leaves no orphans behind for long.

Worker command line (started by the stage, not by people)::

    python -m server.live --listen-fd N --pipe-fd M --root TAKES [--tick 60] [limits...]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import socket
import struct
import subprocess
import sys
from typing import Any

from machinima import protocol as P

from .stage import Limits, Source, StageServer

log = logging.getLogger("machinima.server")
_LEN = struct.Struct("<I")


class _Reports(asyncio.Protocol):
    """Once a second each worker reports its counts back (one JSON line)."""

    def __init__(self, owner: "LiveWorkers", index: int) -> None:
        self.owner, self.index, self.buf = owner, index, b""

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while b"\n" in self.buf:
            line, self.buf = self.buf.split(b"\n", 1)
            try:
                self.owner.reports[self.index] = json.loads(line)
            except ValueError:
                pass


class LiveWorkers:
    """The stage's side: start the workers, publish changed frames to them."""

    def __init__(self, stage: StageServer, count: int, port: int = 0) -> None:
        self.stage = stage
        self.count = count
        self.port = port
        self.procs: list[subprocess.Popen] = []
        self.pipes: list[Any] = []
        self.sock: socket.socket | None = None
        self.reports: dict[int, dict[str, Any]] = {}

    async def start(self) -> None:
        st = self.stage
        self.sock = socket.create_server((st.host, self.port), backlog=4096)
        self.port = self.sock.getsockname()[1]
        lim = st.limits
        loop = asyncio.get_running_loop()
        for i in range(self.count):
            a, b = socket.socketpair()
            cmd = [sys.executable, "-m", "server.live", "--listen-fd", str(self.sock.fileno()), "--pipe-fd", str(b.fileno()),
                   "--root", str(st.root), "--tick", str(st.tick), "--viewer-buffer", str(lim.viewer_buffer),
                   "--slow-close", str(lim.slow_close_s), "--max-size", str(lim.max_size or 0),
                   "--ping-interval", str(lim.ping_interval or 0), "--ping-timeout", str(lim.ping_timeout or 0)]
            self.procs.append(subprocess.Popen(cmd, pass_fds=(self.sock.fileno(), b.fileno()), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL))
            b.close()
            tr, _ = await loop.create_unix_connection(lambda i=i: _Reports(self, i), sock=a)
            self.pipes.append(tr)
        log.info("%d live worker(s) on ws://%s:%d/live", self.count, st.host, self.port)

    def publish(self, dirty: list[Source], seq: int) -> None:
        data = P.encode_bundle([s.f32 for s in dirty], seq=seq)
        msg = _LEN.pack(len(data)) + data
        for tr in self.pipes:
            if not tr.is_closing() and tr.get_write_buffer_size() < 64 * 2**20:
                tr.write(msg)

    def summary(self) -> dict[str, Any]:
        reps = list(self.reports.values())
        return {"workers": self.count, "port": self.port, "viewers": sum(r.get("viewers", 0) for r in reps),
                "bundles_out": sum(r.get("bundles_out", 0) for r in reps), "skipped": sum(r.get("skipped", 0) for r in reps)}

    async def stop(self) -> None:
        for tr in self.pipes:
            tr.close()
        if self.sock is not None:
            self.sock.close()
        for p in self.procs:
            try:
                await asyncio.wait_for(asyncio.get_running_loop().run_in_executor(None, p.wait), 5)
            except asyncio.TimeoutError:
                p.kill()


class LiveServer(StageServer):
    """A worker: a read-only stage whose sources come from the stage over a pipe."""

    read_only = True
    allowed_types = frozenset({"hello", "subscribe", "ping"})
    endpoint = "/live"

    def __init__(self, root: str, listen_fd: int, pipe_fd: int, **kwargs: Any) -> None:
        from .auth import load_secret

        super().__init__(root, secret=load_secret(root, create=False), **kwargs)
        self.listen_fd = listen_fd
        self.pipe_fd = pipe_fd

    async def start(self) -> "LiveServer":
        from websockets.asyncio.server import serve

        lim = self.limits
        sock = socket.socket(fileno=self.listen_fd)
        self._server = await serve(
            self._handler, sock=sock, process_request=self._http, compression=None, max_size=lim.max_size,
            max_queue=16, ping_interval=lim.ping_interval, ping_timeout=lim.ping_timeout, close_timeout=2,
        )
        self._tasks = [asyncio.ensure_future(self._tick_loop()), asyncio.ensure_future(self._read_pipe())]
        return self

    async def _read_pipe(self) -> None:
        reader, writer = await asyncio.open_unix_connection(sock=socket.socket(fileno=self.pipe_fd))

        async def report() -> None:
            while True:
                await asyncio.sleep(1.0)
                doc = {"viewers": len(self.conns), "bundles_out": self.stats["bundles_out"], "skipped": self.stats["skipped"]}
                writer.write(json.dumps(doc).encode() + b"\n")

        self._tasks.append(asyncio.ensure_future(report()))
        try:
            while True:
                head = await reader.readexactly(4)
                data = await reader.readexactly(_LEN.unpack(head)[0])
                self._take_bundle(data)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:  # the stage went away: so do we
            await self.stop()

    def _take_bundle(self, data: bytes) -> None:
        pos = P.HEADER.size
        count = struct.unpack_from("<H", data, 6)[0]
        for _ in range(count):
            (n,) = _LEN.unpack_from(data, pos)
            frame = data[pos + 4:pos + 4 + n]
            pos += 4 + n
            kind = frame[3]
            nlen = frame[5]
            name = frame[P.HEADER.size:P.HEADER.size + nlen].decode("utf-8", "replace")
            key = P.source_key(kind, name)
            src = self.sources.get(key)
            if src is None:
                src = self.sources[key] = Source(name, kind)
            src.f32 = frame
            src._f16 = None
            src.dirty = True
        self._new_frames.set()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m server.live")
    ap.add_argument("--listen-fd", type=int, required=True)
    ap.add_argument("--pipe-fd", type=int, required=True)
    ap.add_argument("--root", required=True)
    ap.add_argument("--tick", type=float, default=60.0)
    ap.add_argument("--viewer-buffer", type=int, default=256 * 1024)
    ap.add_argument("--slow-close", type=float, default=10.0)
    ap.add_argument("--max-size", type=int, default=256 * 1024)
    ap.add_argument("--ping-interval", type=float, default=20.0)
    ap.add_argument("--ping-timeout", type=float, default=20.0)
    a = ap.parse_args(argv)
    logging.basicConfig(level="WARNING", format="%(asctime)s live[%(process)d] %(levelname)s %(message)s", stream=sys.stderr)
    limits = Limits(viewer_buffer=a.viewer_buffer, slow_close_s=a.slow_close, max_size=a.max_size or None,
                    ping_interval=a.ping_interval or None, ping_timeout=a.ping_timeout or None)

    async def run() -> None:
        srv = LiveServer(a.root, a.listen_fd, a.pipe_fd, tick=a.tick, limits=limits)
        await srv.start()
        await srv.serve_forever()

    asyncio.run(run())


if __name__ == "__main__":
    main()

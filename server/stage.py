"""The stage server: connections, roles, limits, commands, fan-out and recording.

It only drives the sans-I/O protocol (``machinima.protocol``) and the recorder:

1. A client connects to ``/stage`` and sends ``hello`` with a token within ``hello_timeout``;
   a bad or expired token closes the connection with 4001 / 4002 and a reason in words, and a
   connection lives no longer than its token (4002 when it expires; a publisher whose frames
   go into the running take is closed when that take stops, so a take never loses a performer
   to a clock).
2. Each message is rate-limited (token bucket: ``max_rate`` a second, ``burst``); a client that
   stays over the limit for ``flood_close_s`` is closed with 4008. Messages over ``max_size``
   close the connection with 1009 (the websockets library enforces it).
3. Text messages are validated once (``parse_control``: JSON depth, Unicode text, control
   characters, lengths, finite numbers) and checked against the role; commands with an id are
   answered once and the answer is kept, so a re-sent id returns the same answer.
4. Binary frames (POSE from performers, CAMERA from engines) are validated, recorded at once
   when a take runs (the recorder never drops) and kept as the latest frame of their source;
   one connection publishes at most ``max_streams`` performers and cameras.
5. As soon as every live performer has a new frame (or 4 ms after the first new one; at most
   1.25 x ``tick`` times a second), the latest frames that changed are bundled per interest
   (performer set + encoding), each bundle is encoded once as a WebSocket frame and written to
   every open viewer whose send buffer is below ``viewer_buffer``; a viewer above it skips the
   tick (latest wins; it is told how many it missed once a second). A viewer that has not
   drained what was sent ``slow_close_s`` ago (ping/pong behind the frames, ``server.conn``)
   is closed with 4009; a dead or closing socket is skipped, never raised to the loop.
6. Once a second: performer health (rate, loss, latency), the stage ``state`` to subscribers,
   slow viewers and expired tokens.

Step 3's handlers live in ``server.commands`` (``StageCommands``), steps 5-6 in ``server.tick``
(``StageTick``), both mixins of ``StageServer``; a source's health in ``server.source``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import mimetypes
import socket
import time
import uuid
from collections import OrderedDict
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from machinima import __version__
from machinima import protocol as P
from machinima.errors import DiskFullError, MachinimaError
from machinima.take import recover_all

from .auth import load_secret
from .commands import StageCommands
from .conn import Conn, Limits, close_reason, ws_frame as _ws_frame
from .errors import StageError
from .recorder import Recorder
from .source import Source
from .tick import StageTick

__all__ = ["Source", "StageServer"]

log = logging.getLogger("machinima.server")


class StageServer(StageCommands, StageTick):
    """``StageServer(root).start()`` then ``serve_forever()``; ``stop()`` ends it cleanly."""

    def __init__(
        self,
        root: str | Path,
        *,
        host: str = "127.0.0.1",
        port: int = 8765,
        tick: float = 60.0,
        fps: str = "24",
        production: str = "untitled",
        secret: bytes | None = None,
        limits: Limits | None = None,
        ssl: Any = None,
        flush_interval: float = 0.08,
        workers: int = 0,
        live_port: int = 0,
    ) -> None:
        if tick <= 0 or tick > 1000:
            raise StageError(f"tick rate {tick} Hz is out of range", hint="use 1..1000 (60 is the default)")
        self.root = Path(root)
        self.host = host
        self.port = port
        self.tick = float(tick)
        self.limits = limits or Limits()
        self.ssl = ssl
        self.secret = secret if secret is not None else load_secret(self.root)
        self.recorder = Recorder(self.root, fps=fps, flush_interval=flush_interval)
        self.slate = {"production": production, "scene": "1", "shot": "A"}
        self.conns: dict[str, Conn] = {}
        self.sources: dict[str, Source] = {}
        self.sessions: dict[str, str] = {}
        self._answers: OrderedDict[tuple[str, str], str] = OrderedDict()
        self.recovered: list[str] = []
        self.last_take: str | None = None
        self.tick_seq = 0
        self.stats = {"frames_in": 0, "bundles_out": 0, "skipped": 0, "rejected": 0}
        self._server: Any = None
        self._tasks: list[asyncio.Task] = []
        self._state_dirty = True
        self._stopped = asyncio.Event()
        self._new_frames = asyncio.Event()
        self._udp: list[Any] = []
        self.udp_inputs: list[dict[str, Any]] = []  # {kind, host, port}: in /health, so senders can tell they would feed us
        self._loss_at_start: dict[str, int] = {}
        self._groups_cache: dict[tuple[Any, int], list[Conn]] | None = None
        self.workers = int(workers)
        self.live_port = live_port
        self._live: Any = None

    # Which control messages and frames this server takes (the live workers narrow them).
    read_only = False
    allowed_types: frozenset[str] | None = None
    endpoint = "/stage"

    # --- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> "StageServer":
        from websockets.asyncio.server import serve

        self.root.mkdir(parents=True, exist_ok=True)
        self.recovered = recover_all(self.root)
        for tid in self.recovered:
            log.warning("recovered take %s left recording by a crash", tid)
        lim = self.limits
        try:
            self._server = await serve(
                self._handler, self.host, self.port,
                process_request=self._http, compression=None, max_size=lim.max_size,
                max_queue=64, ping_interval=lim.ping_interval, ping_timeout=lim.ping_timeout,
                close_timeout=2, ssl=self.ssl, server_header=f"machinima/{__version__}",
                select_subprotocol=lambda conn, offered: P.SUBPROTOCOL if P.SUBPROTOCOL in offered else None,
            )
        except OSError as exc:
            raise StageError(f"cannot listen on {self.host}:{self.port}: {exc.strerror or exc}", hint="is another server running? pick another --port") from None
        self.port = self._server.sockets[0].getsockname()[1]
        self._tasks = [asyncio.ensure_future(self._tick_loop())]
        if self.workers > 0:
            from .live import LiveWorkers

            self._live = LiveWorkers(self, self.workers, self.live_port)
            await self._live.start()
            self.live_port = self._live.port
        log.debug("stage listening on %s://%s:%d/stage (console at %s://%s:%d/)", "wss" if self.ssl else "ws", self.host, self.port, "https" if self.ssl else "http", self.host, self.port)
        return self

    async def serve_forever(self) -> None:
        await self._stopped.wait()

    async def stop(self) -> None:
        for t in self._tasks:
            if t is not asyncio.current_task():
                t.cancel()
        for tr in self._udp:
            tr.close()
        try:
            if self.recorder.recording:
                try:
                    self.recorder.stop()
                except Exception as exc:  # whatever it is, the server still stops
                    log.error("could not finish the take on shutdown: %s", exc)
                    self.recorder.fail(exc)
            if self._live is not None:
                await self._live.stop()
            if self._server is not None:
                self._server.close(close_connections=True)
                await self._server.wait_closed()
        finally:
            self._stopped.set()

    # --- HTTP: the console and a health probe --------------------------------------------------
    def _http(self, connection: Any, request: Any) -> Any:
        path = request.path.split("?", 1)[0]
        if path.rstrip("/") == self.endpoint:
            if len(self.conns) >= self.limits.max_clients:
                return connection.respond(503, f"the stage is full ({self.limits.max_clients} clients)\n")
            return None
        if path == "/health":  # unauthenticated: counts only, no names
            st = self.state()
            doc = {"ok": True, "recording": st["recording"], "clients": len(self.conns), "performers": sum(1 for p in st["performers"] if p["connected"]),
                   "stats": st["stats"], "udp": self.udp_inputs}
            return self._respond(connection, 200, json.dumps(doc).encode(), "application/json")
        if path == "/skeleton.json":
            from machinima.skeleton import BONES, ORDER, PARENTS

            doc = {"bones": list(BONES), "parents": [int(p) for p in PARENTS], "order": list(ORDER)}
            return self._respond(connection, 200, json.dumps(doc).encode(), "application/json")
        name = "console.html" if path in ("/", "/index.html") else path.lstrip("/")
        if "/" in name or name.startswith("."):
            return connection.respond(404, "not found\n")
        try:
            body = resources.files("server").joinpath("static", name).read_bytes()
        except (FileNotFoundError, IsADirectoryError, OSError):
            return connection.respond(404, "not found\n")
        ctype = mimetypes.guess_type(name)[0] or "application/octet-stream"
        return self._respond(connection, 200, body, ctype)

    @staticmethod
    def _respond(connection: Any, status: int, body: bytes, ctype: str) -> Any:
        resp = connection.respond(status, "")
        del resp.headers["Content-Type"]
        del resp.headers["Content-Length"]
        resp.headers["Content-Type"] = ctype + ("; charset=utf-8" if ctype.startswith("text/") or ctype.endswith("json") or ctype.endswith("javascript") else "")
        resp.headers["Content-Length"] = str(len(body))
        resp.headers["Cache-Control"] = "no-store"
        resp.body = body
        return resp

    # --- connections ----------------------------------------------------------------------------
    async def _handler(self, ws: Any) -> None:
        if self.limits.send_buffer:
            sock = ws.transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.limits.send_buffer)
        conn = await self._hello(ws)
        if conn is None:
            return
        try:
            async for raw in ws:
                if not self._admit(conn):
                    continue
                if isinstance(raw, bytes):
                    self._on_frame(conn, raw)
                else:
                    await self._on_text(conn, raw)
        except Exception as exc:  # a bug must cost one connection, never the stage
            from websockets.exceptions import ConnectionClosed

            if not isinstance(exc, ConnectionClosed):
                log.exception("connection %s failed", conn.name)
        finally:
            self._bye(conn, ws)

    async def _hello(self, ws: Any) -> Conn | None:
        from websockets.exceptions import ConnectionClosed

        try:
            raw = await asyncio.wait_for(ws.recv(), self.limits.hello_timeout)
        except asyncio.TimeoutError:
            await ws.close(P.CLOSE_NO_HELLO, "no hello: send {\"type\":\"hello\",\"token\":...} first")
            return None
        except ConnectionClosed:
            return None
        try:
            if isinstance(raw, bytes):
                raise P.ProtocolError("bad_message", "the first message must be a hello (text), not a binary frame")
            msg = P.parse_control(raw)
            if msg["type"] != "hello":
                raise P.ProtocolError("bad_message", f"the first message must be a hello, not {msg['type']}")
            claims = P.verify_token(self.secret, msg["token"])
        except P.ProtocolError as exc:
            code = {"expired_token": P.CLOSE_EXPIRED}.get(exc.code, P.CLOSE_BAD_TOKEN)
            reason = {"expired_token": "expired token", "bad_token": "bad token"}.get(exc.code, "bad hello")
            log.warning("refused a client: %s", exc)
            try:
                await ws.send(P.error_message(exc))
            except ConnectionClosed:
                pass
            await ws.close(code, close_reason(f"{reason}: {exc}"))
            return None
        old = self.conns.get(claims.name)
        session = msg.get("resume") if msg.get("resume") and self.sessions.get(msg["resume"]) == claims.name else uuid.uuid4().hex
        if old is not None:
            old.closing = True
            self._detach(old, "replaced by a reconnect")
            asyncio.ensure_future(old.ws.close(P.CLOSE_REPLACED, "replaced: the same name connected again"))
        now = time.monotonic()
        conn = Conn(ws, claims.role, claims.name, session, client=msg.get("client", ""), tokens=self.limits.burst, refill_t=now,
                    expires=claims.expires)
        conn.events = claims.role in ("director", "observer")
        self.conns[claims.name] = conn
        self._groups_cache = None
        self.sessions[session] = claims.name
        try:
            await ws.send(P.encode_control(
                "welcome", role=conn.role, name=conn.name, session=session, resumed=session == msg.get("resume"),
                tick=self.tick, protocol=P.PROTOCOL_VERSION, server=f"machinima {__version__}", frames=P.FRAME_VERSIONS, stage=self.state(),
            ))
        except ConnectionClosed:
            self._detach(conn, "left during hello")
            return None
        log.info("%s joined as %s (%s)", conn.name, conn.role, conn.client or "client")
        self._state_dirty = True
        return conn

    def _detach(self, conn: Conn, reason: str) -> None:
        self._groups_cache = None
        conn.stop_probe()
        if self.conns.get(conn.name) is conn:
            del self.conns[conn.name]
        for name in conn.published:
            src = self.sources.get(name)
            if src is not None and src.conn is conn:
                src.conn = None
                if self.recorder.recording and src.kind == P.KIND_POSE:
                    self._guard(lambda: self.recorder.gap_open(name, reason))
        conn.published.clear()
        self._state_dirty = True

    def _bye(self, conn: Conn, ws: Any) -> None:
        code = ws.close_code
        reason = ws.close_reason or ""
        self._detach(conn, f"disconnected ({code} {reason})".strip())
        log.info("%s left (%s %s)", conn.name, code, reason)

    def _close(self, conn: Conn, code: int, reason: str) -> None:
        if conn.closing:
            return
        conn.closing = True
        self._groups_cache = None
        log.warning("closing %s: %s (%d)", conn.name, reason, code)
        asyncio.ensure_future(conn.ws.close(code, close_reason(reason)))

    def _admit(self, conn: Conn) -> bool:
        """Token-bucket rate limit: False drops the message; a long flood closes the client."""
        if conn.closing:
            return False
        now = time.monotonic()
        lim = self.limits
        conn.tokens = min(lim.burst, conn.tokens + (now - conn.refill_t) * lim.max_rate)
        conn.refill_t = now
        if conn.tokens >= 1.0:
            conn.tokens -= 1.0
            if conn.over_since is not None and now - conn.last_reject > 1.0:
                conn.over_since = None  # calm for a second: the flood is over
            return True
        self.stats["rejected"] += 1
        conn.last_reject = now
        if conn.over_since is None:
            conn.over_since = now
        elif now - conn.over_since > lim.flood_close_s:
            self._close(conn, P.CLOSE_RATE, f"rate limit: more than {lim.max_rate:g} messages/s for {lim.flood_close_s:g} s")
            return False
        self._tell_error(conn, P.ProtocolError("rate_limited", f"more than {lim.max_rate:g} messages/s: messages are being dropped"))
        return False

    def _tell_error(self, conn: Conn, exc: P.ProtocolError, *, throttle: bool = True) -> None:
        """An error reply written without waiting; uncorrelated ones at most once a second."""
        now = time.monotonic()
        if throttle and exc.id is None and now - conn.last_error_t < 1.0:
            return
        conn.last_error_t = now
        conn.write(_ws_frame(P.error_message(exc).encode(), 0x1))

    # --- binary frames ---------------------------------------------------------------------------
    def _on_frame(self, conn: Conn, raw: bytes) -> None:
        try:
            kind, enc, count, seq, t_ns = P.peek_header(raw)
            if self.read_only:
                raise P.ProtocolError("forbidden", f"{self.endpoint} is for watching: publish frames to /stage on the main port")
            if kind not in P.FRAME_PERMISSIONS[conn.role]:
                raise P.ProtocolError("forbidden", f"a {conn.role} may not publish {P.KIND_NAMES.get(kind, str(kind))} frames")
            frame = P.decode_frame(raw)
            P.check_name(frame.name, "camera" if kind == P.KIND_CAMERA else "performer")
        except P.ProtocolError as exc:
            self._tell_error(conn, exc)
            return
        if kind == P.KIND_BLEND:
            self._accept_blend(conn, frame.name, frame.blendshapes, raw)
            return
        raw32 = raw if enc == P.ENC_F32 else None
        self._accept(conn, kind, frame.name, frame.seq, frame.t_ns, frame.values, raw32)

    def _source(self, conn: Conn, kind: int, name: str) -> Source | None:
        """The source ``conn`` publishes as ``name`` (created on first use); None (and an error
        to ``conn``) when another client publishes it."""
        key = P.source_key(kind, name)
        src = self.sources.get(key)
        if src is None or src.conn is not conn:
            if key not in conn.published and len(conn.published) >= self.limits.max_streams:
                self._tell_error(conn, P.ProtocolError("forbidden", f"one connection may publish at most {self.limits.max_streams} performers and cameras; {name!r} was refused"))
                return None
            if src is None:
                src = self.sources[key] = Source(name, kind)
                self._state_dirty = True
            owner = src.conn or (self.sources[name].conn if kind == P.KIND_BLEND and name in self.sources else None)
            if owner is not None and owner.name != conn.name:
                self._tell_error(conn, P.ProtocolError("forbidden", f"{name!r} is published by {owner.name}"))
                return None
            src.conn = conn
            src.last_seq = None
            conn.published.add(key)
            self._state_dirty = True
        return src

    def _accept_blend(self, conn: Conn, name: str, weights: dict[str, float], raw: bytes) -> None:
        """A performer's blendshape frame: the latest goes to viewers beside the pose, every one
        into the running take (``blend/<name>``)."""
        now_ns = time.monotonic_ns()
        src = self._source(conn, P.KIND_BLEND, name)
        if src is None:
            return
        src.frames += 1
        src.last_arrival = time.monotonic()
        src.f32 = raw
        src.dirty = True
        self._new_frames.set()
        self.stats["frames_in"] += 1
        if self.recorder.recording:
            self._guard(lambda: self.recorder.blend(name, now_ns, weights))

    def _accept(self, conn: Conn, kind: int, name: str, seq: int, t_ns: int, values: np.ndarray, raw32: bytes | None) -> None:
        """A valid pose or camera sample from ``conn``: health, latest frame, recording."""
        now_ns = time.monotonic_ns()
        src = self._source(conn, kind, name)
        if src is None:
            return
        if src.last_seq is not None:
            gap = (seq - src.last_seq - 1) & 0xFFFFFFFF
            if 0 < gap < 1_000_000:
                src.loss += gap
        src.last_seq = seq
        src.frames += 1
        src.window_count += 1
        src.last_arrival = time.monotonic()
        lat = (time.time_ns() - t_ns) / 1e6
        src.latency_ms = lat if src.frames == 1 else 0.9 * src.latency_ms + 0.1 * lat
        if raw32 is None:
            raw32 = P.encode_pose(name, values, seq=seq, t_ns=t_ns) if kind == P.KIND_POSE else P.encode_camera(name, values, seq=seq, t_ns=t_ns)
        src.f32 = raw32
        src._f16 = None
        src.dirty = True
        self._new_frames.set()
        self.stats["frames_in"] += 1
        if self.recorder.recording:
            if kind == P.KIND_POSE:
                self._guard(lambda: (self.recorder.gap_close(name), self.recorder.pose(name, now_ns, values)))
            else:
                self._guard(lambda: self.recorder.camera(name, now_ns, values))

    # --- local UDP mocap sources -------------------------------------------------------------
    async def attach_udp(self, spec: str) -> tuple[str, int]:
        """Listen for a local mocap source (``vmc:39539``); returns the bound (host, port)."""
        from .udp import SourceProtocol, load_source, parse_spec

        kind, host, port = parse_spec(spec)
        source = load_source(kind)
        conn = Conn(None, "performer", f"udp-{kind}-{port}", "", client=f"udp {kind}")
        seqs: dict[str, int] = {}

        def on_frame(f: Any) -> None:
            """A frame of a local source joins the stage like frames of a remote performer."""
            performer = f.performer
            wall = time.time_ns() - (time.monotonic_ns() - f.t_recv_ns)
            try:
                P.check_name(performer, "performer")
                if getattr(f, "pose", None) is not None:
                    seq = seqs[performer] = seqs.get(performer, -1) + 1
                    raw = P.encode_pose(performer, f.pose, seq=seq, t_ns=wall)
                    self._accept(conn, P.KIND_POSE, performer, seq, wall, np.asarray(f.pose, np.float32), raw)
                if getattr(f, "blendshapes", None):
                    self._accept_blend(conn, performer, dict(f.blendshapes), P.encode_blend(performer, f.blendshapes, t_ns=wall))
            except P.ProtocolError as exc:
                self.stats["rejected"] += 1
                log.debug("udp %s: %s", kind, exc)

        try:
            proto = await SourceProtocol(source, on_frame).start(host, port)
        except OSError as exc:
            raise StageError(f"cannot listen for {kind} on UDP {host}:{port}: {exc.strerror or exc}", hint="is another listener on that port?") from None
        self._udp.append(proto)
        bound = proto.sockname
        self.udp_inputs.append({"kind": kind, "host": bound[0], "port": bound[1]})
        log.debug("listening for %s mocap on udp %s:%d", kind, bound[0], bound[1])
        return bound[0], bound[1]

    def _guard(self, fn: Any) -> bool:
        """Run a recorder call; a full disk stops the take and tells the directors."""
        try:
            fn()
            return True
        except DiskFullError as exc:
            self._recording_failed(exc)
        except MachinimaError as exc:
            log.error("recording error: %s", exc)
            self._recording_failed(exc)
        return False

    def _recording_failed(self, exc: BaseException) -> None:
        """Tell the directors first, then close the take as failed: whatever closing it on a
        full disk does, the warning has left."""
        take_id = self.recorder.take.id if self.recorder.take is not None else None
        code = "disk_full" if isinstance(exc, DiskFullError) else "server_error"
        text = P.encode_control("warning", code=code, message=f"recording stopped: {exc}", take=take_id)
        frame = _ws_frame(text.encode(), 0x1)
        for c in list(self.conns.values()):
            if c.role in ("director", "observer"):
                c.write(frame)
        try:
            self.recorder.fail(exc)  # marks the take failed and releases its lock
        except Exception:
            log.exception("closing take %s after %s failed", take_id, exc)
        self.last_take = take_id or self.last_take
        self._state_dirty = True

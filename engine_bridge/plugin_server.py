"""The websocket server for engine plugins; it only drives ``protocol.PluginConnection``.

Runs its own asyncio loop on a daemon thread so the real-time ticker never waits for it:
``broadcast_frame`` (called from the ticker thread) only hands the frame to the loop; JSON is
encoded there, once per distinct subscription. Each client has a small frame queue where the
newest frame wins (a slow plugin skips frames, counted in ``dropped``, and never stalls the
others); control replies are never dropped.

Plugins may steer playback (``controller.command``) and publish cameras and events
(``sink.camera`` / ``sink.event``), which are time-stamped on arrival with the monotonic clock
of the take.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import threading
import time
from typing import Any

from .errors import BridgeError, TargetError
from .protocol import CameraSample, EngineEvent, Hello, PlaybackCommand, PluginConnection, Subscribe, frame_camera, frame_performer

log = logging.getLogger("machinima.bridge")


class _Client:
    def __init__(self, ws: Any, conn: PluginConnection, max_queue: int) -> None:
        self.ws = ws
        self.conn = conn
        self.frames: collections.deque[str] = collections.deque(maxlen=max_queue)
        self.wake = asyncio.Event()
        self.dropped = 0


class PluginServer:
    """``PluginServer(host, port, avatars={performer: avatar}, controller=, sink=, info=)``.

    ``port=0`` picks a free port (read ``.port`` after ``start()``). Limits: ``max_clients``,
    ``max_queue`` (frames waiting per client), ``max_message_bytes``, ``max_errors`` per client.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 8770,
        *,
        avatars: dict[str, str] | None = None,
        controller: Any = None,
        sink: Any = None,
        info: dict[str, Any] | None = None,
        max_clients: int = 16,
        max_queue: int = 4,
        max_message_bytes: int = 64 * 1024,
        max_errors: int = 32,
    ) -> None:
        self.host, self.port = host, port
        self.avatars = dict(avatars or {})
        self.controller = controller
        self.sink = sink
        self.info = dict(info or {})
        self.max_clients = max_clients
        self.max_queue = max_queue
        self.max_message_bytes = max_message_bytes
        self.max_errors = max_errors
        self.errors = 0  # protocol errors of all clients together
        self.received = {"camera": 0, "event": 0}
        self.clients: list[_Client] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._start_error: BaseException | None = None
        self._stop: asyncio.Future | None = None
        self._playback_version = -1
        self._last_playback: dict[str, Any] | None = None

    # --- lifecycle ----------------------------------------------------------------------------
    def start(self, timeout: float = 10.0) -> "PluginServer":
        self._thread = threading.Thread(target=self._run, name=f"plugin-server:{self.port}", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TargetError(f"plugin server on {self.host}:{self.port} did not start within {timeout} s")
        if self._start_error is not None:
            raise TargetError(f"plugin server cannot listen on {self.host}:{self.port}: {self._start_error}", hint="is another bridge running there? pick another port") from None
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        finally:
            loop.close()

    async def _main(self) -> None:
        from websockets.asyncio.server import serve

        self._stop = asyncio.get_running_loop().create_future()
        try:
            server = await serve(self._handler, self.host, self.port, max_size=self.max_message_bytes, compression=None, ping_interval=20)
        except OSError as exc:
            self._start_error = exc
            self._ready.set()
            return
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        async with server:
            await self._stop
            for c in list(self.clients):
                await c.ws.close(1001, "bridge stopping")

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            try:
                self._loop.call_soon_threadsafe(lambda: self._stop.done() or self._stop.set_result(None))
            except RuntimeError:
                pass
        if self._thread is not None:
            self._thread.join(5)

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    # --- per connection -----------------------------------------------------------------------
    async def _handler(self, ws: Any) -> None:
        from websockets.exceptions import ConnectionClosed

        if len(self.clients) >= self.max_clients:
            await ws.close(1013, f"too many plugin clients (max {self.max_clients})")
            return
        info = {"server": "machinima-bridge", "performers": [{"performer": p, "avatar": a} for p, a in self.avatars.items()], **self.info}
        client = _Client(ws, PluginConnection(max_message_bytes=self.max_message_bytes, max_errors=self.max_errors, server_info=info), self.max_queue)
        self.clients.append(client)
        writer = asyncio.ensure_future(self._writer(client))
        try:
            async for raw in ws:
                before = client.conn.errors
                for ev in client.conn.receive(raw):
                    self._handle(client, ev)
                self.errors += client.conn.errors - before
                client.wake.set()
                if client.conn.should_close:
                    await asyncio.sleep(0.05)  # let the error reply go out first
                    await ws.close(1008, "too many protocol errors" if client.conn.errors >= self.max_errors else "unsupported protocol version")
                    break
        except ConnectionClosed:
            pass
        finally:
            self.clients.remove(client)
            writer.cancel()

    def _handle(self, client: _Client, ev: Any) -> None:
        conn = client.conn
        if isinstance(ev, Hello):
            log.info("plugin %s connected", ev.client)
            if self._last_playback:
                conn.send({"type": "playback", **self._last_playback})
        elif isinstance(ev, Subscribe):
            unknown = [p for p in (ev.performers or []) if self.avatars and p not in self.avatars]
            if unknown:
                conn.error("unknown_performer", f"no performer {unknown[0]!r} here; performers: {sorted(self.avatars)}")
                conn.subscription = None
                return
            conn.send({"type": "subscribed", "performers": ev.performers or sorted(self.avatars), "space": ev.space})
        elif isinstance(ev, PlaybackCommand):
            if self.controller is None:
                conn.error("not_playback", "this bridge relays the live stage: there is no playback to steer")
                return
            try:
                state = self.controller.command(ev)
            except BridgeError as exc:
                conn.error("bad_command", str(exc))
                return
            conn.send({"type": "playback", **state})
        elif isinstance(ev, (CameraSample, EngineEvent)):
            if self.sink is None:
                conn.error("not_recording", "nothing records here: start the bridge with --record-into or --server")
                return
            t_ns = time.monotonic_ns()
            try:
                if isinstance(ev, CameraSample):
                    self.sink.camera(ev.name, t_ns, ev.values)
                    self.received["camera"] += 1
                else:
                    self.sink.event(ev.name, t_ns, ev.payload, source=conn.hello.client if conn.hello else "plugin")
                    self.received["event"] += 1
            except BridgeError as exc:
                conn.error("not_recorded", str(exc))
                return
            if ev.id is not None:
                conn.send({"type": "ack", "id": ev.id})

    async def _writer(self, client: _Client) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            while True:
                await client.wake.wait()
                client.wake.clear()
                for text in client.conn.data_to_send():
                    await client.ws.send(text)
                while client.frames:
                    await client.ws.send(client.frames.popleft())
        except (ConnectionClosed, asyncio.CancelledError):
            pass

    # --- fan-out (called from the ticker thread) ----------------------------------------------
    def broadcast_frame(self, frame: Any) -> int:
        """Queue ``frame`` for every subscribed client; returns how many get it."""
        n = sum(1 for c in self.clients if c.conn.subscription is not None)
        playback = getattr(frame, "playback", None)
        version = getattr(frame, "playback_version", -1)
        if (n or self.clients) and self._loop is not None:
            changed = playback is not None and version != self._playback_version
            if changed:
                self._playback_version = version
            try:
                self._loop.call_soon_threadsafe(self._fanout, frame, playback if changed else None)
            except RuntimeError:  # loop closed while stopping
                return 0
        return n

    def _fanout(self, frame: Any, playback: dict[str, Any] | None) -> None:
        if playback is not None:
            self._last_playback = playback
            text = json.dumps({"type": "playback", **playback}, separators=(",", ":"))
            for c in self.clients:
                if c.conn.hello is not None:
                    c.conn.send_text(text)
                    c.wake.set()
        cache: dict[tuple, str] = {}
        for c in self.clients:
            sub = c.conn.subscription
            if sub is None:
                continue
            key = (tuple(sub.performers) if sub.performers else None, sub.space, tuple(sub.bones) if sub.bones else None)
            text = cache.get(key)
            if text is None:
                perf = {}
                for p, pose in frame.poses.items():
                    if sub.performers is None or p in sub.performers:
                        perf[p] = frame_performer(pose, avatar=self.avatars.get(p, p), space=sub.space, bones=sub.bones, blend=frame.blend.get(p))
                msg = {"type": "frame", "seq": frame.seq, "t": round(frame.t_s, 6), "timecode": frame.timecode, "state": frame.state, "performers": perf}
                if frame.cameras:
                    msg["cameras"] = {n: frame_camera(v, space=sub.space) for n, v in frame.cameras.items()}
                text = json.dumps(msg, separators=(",", ":"))
                cache[key] = text
            if len(c.frames) == c.frames.maxlen:
                c.dropped += 1
            c.frames.append(text)
            c.wake.set()

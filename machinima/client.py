"""``StageClient``: the asyncio client of the stage server (``machinima server``).

Used by the CLI, the tests, the engine bridge, the mocap relay and scripts. It only drives the
sans-I/O protocol in ``machinima.protocol`` over a ``websockets`` connection.

    from machinima.client import StageClient

    async with StageClient("ws://127.0.0.1:8765/stage", token) as stage:   # sends hello
        print(stage.role, stage.name, stage.stage)         # welcome info, latest stage state
        take = await stage.record(slate={"production": "film", "scene": "1", "shot": "A"})
        await stage.send_pose(pose)                        # performer: (55, 7) canonical array
        await stage.send_blend({"Blink_L": 0.4})           # performer: blendshape weights
        await stage.send_camera("cam1", values12)          # engine: 12 CAMERA_CHANNELS
        await stage.event("door_open", {"door": 2})        # engine/director: a recorded event
        await stage.marker("good bit")                     # director
        await stage.stop()                                 # director: {"take": id, "status": ..}
        await stage.subscribe(frames=True, performers=None, encoding="f16")
        frame = await stage.next_frame(timeout=1)          # protocol.Frame (POSE or BLEND), latest-wins queue
        msg = await stage.next_message({"state"}, timeout=1)

API
- ``StageClient(url, token, *, client="python", reconnect=False, max_frames=64, ssl=None,
  open_timeout=10, max_size=2**20)``; ``await open()`` / ``await close()`` or ``async with``.
- ``welcome``, ``role``, ``name``, ``session``, ``stage`` (latest ``state``), ``dropped``
  (frames this client skipped because it read too slowly, plus what the server reported).
- ``await command(type, *, id=None, timeout=10, **fields) -> result``: sends a control message
  with an id (generated when not given) and waits for its ``ack``; an ``error`` reply raises
  ``ProtocolError`` with the server's code. Re-sending the same id is idempotent on the server.
  Shorthands: ``slate``, ``record``, ``stop``, ``cut``, ``marker``, ``note``, ``kick``,
  ``takes``, ``event``, ``ping``.
- ``await send_pose(pose, *, performer=None, t_ns=None)``, ``await send_blend(weights, *,
  performer=None, t_ns=None)``, ``await send_camera(name, values)``, ``await send_frame(bytes)``
  (pre-encoded).
- ``await subscribe(...)``, ``await next_frame(timeout)``, ``frames()`` (async iterator),
  ``await next_message(types, timeout)``.
- ``reconnect=True``: after a dropped connection the client reconnects with its token (backoff
  0.1 s .. 2 s), resumes its session and subscription, and re-sends commands still waiting for
  an answer (same ids, so nothing runs twice). Frames sent while down are counted in
  ``lost_while_down``, not queued.
- ``SyncStageClient``: the same calls, blocking, on a private event loop thread (for scripts and
  Blender).

Every failure is a ``ProtocolError``: code ``closed`` when the connection is gone (``close_code``
and ``close_reason`` tell why, e.g. 4001 "bad token"), ``timeout`` when no answer came.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import threading
import time
import uuid
from typing import Any, AsyncIterator, Iterable, Mapping

import numpy as np

from . import protocol as P
from .protocol import ProtocolError

__all__ = ["StageClient", "SyncStageClient", "ProtocolError"]


class StageClient:
    def __init__(
        self,
        url: str,
        token: str,
        *,
        client: str = "python",
        reconnect: bool = False,
        max_frames: int = 64,
        max_messages: int = 1024,
        ssl: Any = None,
        open_timeout: float = 10.0,
        max_size: int = 2**20,
        ping_interval: float | None = 20.0,
    ) -> None:
        self.url = url
        self.token = token
        self.client = client
        self.reconnect = reconnect
        self.ssl = ssl
        self.open_timeout = open_timeout
        self.max_size = max_size
        self.ping_interval = ping_interval
        self.welcome: dict[str, Any] = {}
        self.stage: dict[str, Any] = {}
        self.session: str | None = None
        self.dropped = 0
        self.lost_while_down = 0
        self.close_code: int | None = None
        self.close_reason: str = ""
        self._ws: Any = None
        self._reader: asyncio.Task | None = None
        self._frames: collections.deque[P.Frame] = collections.deque(maxlen=max_frames)
        self._frame_event = asyncio.Event()
        self._messages: collections.deque[dict[str, Any]] = collections.deque(maxlen=max_messages)
        self._message_event = asyncio.Event()
        self._pending: dict[str, tuple[asyncio.Future, str]] = {}
        self._subscription: dict[str, Any] | None = None
        # one sequence per stream (performer or camera): the stage counts loss per stream
        self._seq: dict[str, itertools.count] = collections.defaultdict(itertools.count)
        self._closing = False
        self._connected = asyncio.Event()

    # --- connection -------------------------------------------------------------------------
    @property
    def role(self) -> str | None:
        return self.welcome.get("role")

    @property
    def name(self) -> str | None:
        return self.welcome.get("name")

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def __aenter__(self) -> "StageClient":
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def open(self) -> dict[str, Any]:
        """Connect and say hello; returns the ``welcome`` message."""
        await self._connect_once()
        self._reader = asyncio.ensure_future(self._read_loop())
        return self.welcome

    async def _connect_once(self) -> None:
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed, InvalidHandshake

        try:
            ws = await connect(
                self.url,
                ssl=self.ssl,
                open_timeout=self.open_timeout,
                max_size=self.max_size,
                compression=None,
                ping_interval=self.ping_interval,
                subprotocols=[P.SUBPROTOCOL],
                proxy=None,
            )
        except (OSError, InvalidHandshake, asyncio.TimeoutError) as exc:
            raise ProtocolError("closed", f"cannot connect to {self.url}: {exc}", hint="is `machinima server` running there?") from None
        hello = {"token": self.token, "client": self.client}
        if self.session:
            hello["resume"] = self.session
        try:
            await ws.send(P.encode_control("hello", **hello))
            while True:
                raw = await asyncio.wait_for(ws.recv(), self.open_timeout)
                if isinstance(raw, bytes):
                    continue
                msg = P.parse_server(raw)
                if msg["type"] == "welcome":
                    break
                if msg["type"] == "error":
                    raise ProtocolError(msg.get("code", "server_error"), msg.get("message", "refused"))
        except ConnectionClosed as exc:
            self.close_code = exc.rcvd.code if exc.rcvd else 1006
            self.close_reason = exc.rcvd.reason if exc.rcvd else "connection lost"
            raise ProtocolError("closed", f"the server closed the connection: {self.close_reason} ({self.close_code})") from None
        except asyncio.TimeoutError:
            await ws.close()
            raise ProtocolError("timeout", "no welcome from the server") from None
        self._ws = ws
        self.welcome = msg
        self.session = msg.get("session")
        self.stage = msg.get("stage", {})
        self.close_code = None
        self.close_reason = ""
        self._connected.set()

    async def _read_loop(self) -> None:
        from websockets.exceptions import ConnectionClosed

        while True:
            ws = self._ws
            try:
                async for raw in ws:
                    if isinstance(raw, bytes):
                        self._on_frame(raw)
                    else:
                        self._on_text(raw)
                self.close_code = ws.close_code or 1006
                self.close_reason = ws.close_reason or "connection lost"
            except ConnectionClosed as exc:
                self.close_code = exc.rcvd.code if exc.rcvd else 1006
                self.close_reason = exc.rcvd.reason if exc.rcvd else "connection lost"
            self._connected.clear()
            if self._closing or not self.reconnect or self.close_code in P.FINAL_CLOSE_CODES:
                break
            if not await self._reconnect():
                break
        self._fail_pending()
        self._message_event.set()
        self._frame_event.set()

    async def _reconnect(self) -> bool:
        delay = 0.1
        while not self._closing:
            await asyncio.sleep(delay)
            try:
                await self._connect_once()
            except ProtocolError:
                if self.close_code in P.FINAL_CLOSE_CODES:
                    return False
                delay = min(2.0, delay * 2)
                continue
            if self._subscription is not None:
                await self._ws.send(P.encode_control("subscribe", id=f"sub-{uuid.uuid4().hex[:8]}", **self._subscription))
            for mid, (fut, text) in list(self._pending.items()):
                if not fut.done():
                    await self._ws.send(text)
            return True
        return False

    def _fail_pending(self) -> None:
        for mid, (fut, _) in list(self._pending.items()):
            if not fut.done():
                fut.set_exception(ProtocolError("closed", f"connection closed before an answer to {mid}: {self.close_reason} ({self.close_code})", id=mid))
        self._pending.clear()

    async def close(self) -> None:
        self._closing = True
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            try:
                await asyncio.wait_for(self._reader, 5)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                self._reader.cancel()
        self._connected.clear()

    async def wait_closed(self, timeout: float | None = None) -> None:
        """Wait until the connection is gone for good (kicked, refused, or closed)."""
        if self._reader is not None:
            await asyncio.wait_for(asyncio.shield(self._reader), timeout)

    # --- incoming ---------------------------------------------------------------------------
    def _on_frame(self, raw: bytes) -> None:
        try:
            frame = P.decode_frame(raw)
        except ProtocolError:
            return
        subs = frame.frames if frame.kind == P.KIND_BUNDLE else [frame]
        for f in subs or ():
            if len(self._frames) == self._frames.maxlen:
                self.dropped += 1
            self._frames.append(f)
        self._frame_event.set()

    def _on_text(self, raw: str) -> None:
        try:
            msg = P.parse_server(raw)
        except ProtocolError:
            return
        t = msg["type"]
        if t in ("ack", "error") and msg.get("id") in self._pending:
            fut, _ = self._pending.pop(msg["id"])
            if not fut.done():
                if t == "ack":
                    fut.set_result(msg.get("result", {}))
                else:
                    fut.set_exception(ProtocolError(msg.get("code", "server_error"), msg.get("message", ""), id=msg["id"]))
            return
        if t == "state":
            self.stage = msg.get("stage", {})
        elif t == "dropped":
            self.dropped += int(msg.get("count", 0))
        self._messages.append(msg)
        self._message_event.set()

    async def next_message(self, types: Iterable[str] | None = None, timeout: float | None = 10.0) -> dict[str, Any]:
        """The next control message (of ``types``) that was not an answer to a command."""
        want = set(types) if types else None
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            while self._messages:
                msg = self._messages.popleft()
                if want is None or msg["type"] in want:
                    return msg
            if self._reader is not None and self._reader.done():
                raise ProtocolError("closed", f"connection closed: {self.close_reason} ({self.close_code})")
            self._message_event.clear()
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise ProtocolError("timeout", f"no {'/'.join(sorted(want)) if want else 'message'} within {timeout} s")
            try:
                await asyncio.wait_for(self._message_event.wait(), left)
            except asyncio.TimeoutError:
                pass

    async def next_frame(self, timeout: float | None = 10.0) -> P.Frame:
        """The oldest queued frame (the queue keeps the latest ``max_frames``)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._frames:
            if self._reader is not None and self._reader.done():
                raise ProtocolError("closed", f"connection closed: {self.close_reason} ({self.close_code})")
            self._frame_event.clear()
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise ProtocolError("timeout", f"no frame within {timeout} s")
            try:
                await asyncio.wait_for(self._frame_event.wait(), left)
            except asyncio.TimeoutError:
                pass
        return self._frames.popleft()

    async def frames(self) -> AsyncIterator[P.Frame]:
        while True:
            try:
                yield await self.next_frame(timeout=None)
            except ProtocolError:
                return

    # --- outgoing ---------------------------------------------------------------------------
    async def _send(self, data: str | bytes) -> None:
        from websockets.exceptions import ConnectionClosed

        if not self._connected.is_set():
            raise ProtocolError("closed", f"not connected: {self.close_reason or 'connection lost'} ({self.close_code})")
        try:
            await self._ws.send(data)
        except ConnectionClosed:
            raise ProtocolError("closed", "connection closed while sending") from None

    async def send_raw(self, text: str) -> None:
        """Send a text frame as it is (tests use it to send malformed messages)."""
        await self._send(text)

    async def command(self, mtype: str, *, id: str | None = None, timeout: float = 10.0, **fields: Any) -> dict[str, Any]:
        """Send a command and wait for its answer; re-sending an ``id`` is idempotent."""
        mid = id or f"{mtype}-{uuid.uuid4().hex[:12]}"
        text = P.encode_control(mtype, id=mid, **fields)
        fut = asyncio.get_running_loop().create_future()
        self._pending[mid] = (fut, text)
        try:
            if self._connected.is_set():
                await self._send(text)
            elif not self.reconnect:
                raise ProtocolError("closed", f"not connected: {self.close_reason or 'connection lost'} ({self.close_code})")
            return await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            raise ProtocolError("timeout", f"no answer to {mtype} ({mid}) within {timeout} s", id=mid) from None
        finally:
            self._pending.pop(mid, None)

    async def slate(self, **fields: str) -> dict[str, Any]:
        return await self.command("slate", **fields)

    async def record(self, *, slate: dict[str, str] | None = None, notes: list[str] | None = None, timecode: str | None = None,
                     id: str | None = None) -> dict[str, Any]:
        """Start a take; its timecode in is the stage clock's time of day unless ``timecode``."""
        return await self.command("record", id=id, slate=slate, notes=notes, timecode=timecode)

    async def stop(self, *, id: str | None = None) -> dict[str, Any]:
        return await self.command("stop", id=id)

    async def cut(self, *, id: str | None = None) -> dict[str, Any]:
        return await self.command("cut", id=id)

    async def marker(self, name: str, note: str | None = None, color: str | None = None, *, id: str | None = None) -> dict[str, Any]:
        return await self.command("marker", id=id, name=name, note=note, color=color)

    async def note(self, text: str, take: str | None = None, *, id: str | None = None) -> dict[str, Any]:
        return await self.command("note", id=id, text=text, take=take)

    async def kick(self, name: str, reason: str | None = None) -> dict[str, Any]:
        return await self.command("kick", name=name, reason=reason)

    async def takes(self, limit: int | None = None) -> list[dict[str, Any]]:
        return (await self.command("takes", limit=limit)).get("takes", [])

    async def event(self, name: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        return await self.command("event", name=name, payload=payload or {})

    async def ping(self) -> float:
        """Round-trip time of an application ping, in seconds."""
        t0 = time.perf_counter()
        await self.command("ping", t=time.time())
        return time.perf_counter() - t0

    async def subscribe(self, *, frames: bool = True, performers: list[str] | None = None, encoding: str = "f32", events: bool = True) -> dict[str, Any]:
        """Ask for the fan-out: pose frames of ``performers`` (None = all) and engine events."""
        self._subscription = {"frames": frames, "performers": performers, "encoding": encoding, "events": events}
        return await self.command("subscribe", **self._subscription)

    async def send_frame(self, data: bytes) -> None:
        if not self._connected.is_set():
            self.lost_while_down += 1
            if self.reconnect and not self._closing:
                return
        await self._send(data)

    async def send_pose(self, pose: np.ndarray, *, performer: str | None = None, t_ns: int | None = None) -> None:
        """Publish one pose (55, 7) under this client's name (performer role)."""
        name = performer or self.name or ""
        await self.send_frame(P.encode_pose(name, pose, seq=next(self._seq[f"pose/{name}"]), t_ns=t_ns))

    async def send_blend(self, values: Mapping[str, float], *, performer: str | None = None, t_ns: int | None = None) -> None:
        """Publish one frame of blendshape weights {name: weight} (performer role; recorded
        into the take's ``blend/<performer>`` and relayed to viewers beside the pose)."""
        name = performer or self.name or ""
        await self.send_frame(P.encode_blend(name, values, seq=next(self._seq[f"blend/{name}"]), t_ns=t_ns))

    async def send_camera(self, camera: str, values: np.ndarray, *, t_ns: int | None = None) -> None:
        """Publish one camera sample (12 channels) (engine role)."""
        await self.send_frame(P.encode_camera(camera, values, seq=next(self._seq[f"camera/{camera}"]), t_ns=t_ns))


class SyncStageClient:
    """Blocking wrapper: ``SyncStageClient(url, token).record(...)`` from plain scripts."""

    def __init__(self, url: str, token: str, **kwargs: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="stage-client", daemon=True)
        self._thread.start()
        self._client: StageClient = self._call(self._make(url, token, kwargs))
        self._call(self._client.open())

    async def _make(self, url: str, token: str, kwargs: dict[str, Any]) -> StageClient:
        return StageClient(url, token, **kwargs)

    def _call(self, coro: Any, timeout: float | None = 30.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if asyncio.iscoroutinefunction(attr):
            return lambda *a, **k: self._call(attr(*a, **k))
        return attr

    def close(self) -> None:
        try:
            self._call(self._client.close())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)

    def __enter__(self) -> "SyncStageClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

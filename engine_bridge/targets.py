"""Engine targets, registered by name: ``vmc``, ``vrchat``, ``plugin`` (built in) and any
target another package declares under the entry-point group ``machinima.engine_targets``::

    [project.entry-points."machinima.engine_targets"]
    mytarget = "mypkg.target:MyTarget"     # a subclass of engine_bridge.targets.Target

A target gets one ``BridgeFrame`` per tick (``send``) and must never block for long nor raise
on network trouble: it counts errors in ``stats`` and keeps going, so one unreachable engine
never stops the others. A broken third-party target is skipped with a warning, like a broken
CLI plugin.
"""

from __future__ import annotations

import logging
import socket
import time
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Callable

import numpy as np

from .errors import TargetError
from .mapping import EngineMap

log = logging.getLogger("machinima.bridge")
GROUP = "machinima.engine_targets"


@dataclass
class BridgeFrame:
    """One tick's worth of data for every target."""

    seq: int
    t_s: float  # media time: seconds since the take's first frame (or stage time, live)
    timecode: str
    poses: dict[str, np.ndarray]  # performer -> (55, 7) canonical local pose
    blend: dict[str, dict[str, float]] = field(default_factory=dict)  # performer -> weights
    state: str = "playing"
    playback: dict[str, Any] | None = None  # playback state (state, timecode, speed ...), None live
    playback_version: int = -1  # bumps when the playback state changed (pause, seek, speed)
    cameras: dict[str, np.ndarray] = field(default_factory=dict)  # recorded cameras: name -> 12 channels


@dataclass
class TargetStats:
    frames: int = 0
    packets: int = 0
    messages: int = 0  # OSC messages (or JSON messages) sent
    bytes: int = 0
    errors: int = 0
    last_error: str = ""

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Target:
    """Base of every engine target. Subclasses implement ``open`` / ``send`` / ``close``."""

    kind = "base"

    def __init__(self, engine: EngineMap, **context: Any) -> None:
        self.engine = engine
        self.context = context
        self.stats = TargetStats()

    @property
    def name(self) -> str:
        return self.engine.name

    def open(self) -> None:
        pass

    def send(self, frame: BridgeFrame) -> None:
        """Encode and send one frame now."""
        self.prepare(frame)
        self.flush()

    def prepare(self, frame: BridgeFrame) -> None:
        """Encode ``frame`` ahead of its deadline; ``flush`` sends it. The player prepares the
        next frame right after a tick, so the tick only sends (less jitter on the wire)."""
        self._frame = frame

    def flush(self) -> None:
        frame, self._frame = getattr(self, "_frame", None), None
        if frame is not None:
            self.deliver(frame)

    def deliver(self, frame: BridgeFrame) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def error(self, exc: BaseException | str) -> None:
        self.stats.errors += 1
        text = str(exc) or type(exc).__name__
        if text != self.stats.last_error:
            log.warning("engine %s: %s", self.name, text)
        self.stats.last_error = text


class UDPSender:
    """A connected UDP socket to one engine address, resolved lazily and re-resolved after a
    failure (at most every ``retry_s``); ``send`` returns False and records why on error.

    Connected UDP sockets receive the ICMP "port unreachable" of a closed port as an error on
    a later send, which is how an engine that is not listening is noticed and counted.
    """

    def __init__(self, host: str, port: int, *, retry_s: float = 1.0, sndbuf: int = 1 << 20) -> None:
        self.host, self.port = host, port
        self.retry_s = retry_s
        self.sndbuf = sndbuf
        self.sock: socket.socket | None = None
        self._next_try = 0.0
        self.last_error = ""

    def _connect(self) -> bool:
        now = time.monotonic()
        if now < self._next_try:
            return False
        try:
            infos = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_DGRAM)
            family, _, _, _, addr = infos[0]
            s = socket.socket(family, socket.SOCK_DGRAM)
            try:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.sndbuf)
            except OSError:
                pass
            s.setblocking(False)
            s.connect(addr)
        except OSError as exc:
            self._next_try = now + self.retry_s
            self.last_error = f"cannot reach {self.host}:{self.port}: {exc}"
            return False
        self.sock = s
        return True

    def send(self, data: bytes) -> bool:
        if self.sock is None and not self._connect():
            return False
        try:
            self.sock.send(data)  # type: ignore[union-attr]
            return True
        except (BlockingIOError, InterruptedError):
            self.last_error = f"{self.host}:{self.port}: send buffer full, packet dropped"
            return False
        except OSError as exc:  # ConnectionRefused (nobody listens), unreachable network ...
            self.last_error = f"{self.host}:{self.port}: {exc.strerror or exc}"
            return False

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


class VMCTarget(Target):
    """VMC protocol sender: one OSC bundle per avatar per frame (``machinima.vmc``); a
    performer with blendshapes but no pose (face capture only) gets Blend/Val + Apply alone."""

    kind = "vmc"

    def open(self) -> None:
        from machinima import vmc

        self._vmc = vmc
        self._senders = []
        for a in self.engine.avatars:
            bones = a.bone_indices() if a.bones else None
            n_msgs = 3 + (len(a.bones) if a.bones else 55)  # OK, T, Root + bones
            self._senders.append((a, UDPSender(self.engine.host, a.port or self.engine.port), bones, n_msgs))

    def prepare(self, frame: BridgeFrame) -> None:
        ready = []
        for a, sender, bones, n_msgs in self._senders:
            pose = frame.poses.get(a.performer)
            blend = frame.blend.get(a.performer) if a.blendshapes else None
            if pose is None and not blend:
                continue
            try:
                if pose is None:
                    data = self._vmc.encode_blendshapes(blend)
                    ready.append((sender, data, len(blend) + 1))
                    continue
                data = self._vmc.encode_frame(pose, blendshapes=blend or None, time_s=frame.t_s, bones=bones)
            except Exception as exc:  # a bad pose (NaN) in a take must not stop the bridge
                self.error(f"{a.performer}: {exc}")
                continue
            ready.append((sender, data, n_msgs + (len(blend) + 1 if blend else 0)))
        self._ready = ready

    def flush(self) -> None:
        ready, self._ready = getattr(self, "_ready", None), None
        if ready is None:
            return
        self.stats.frames += 1
        for sender, data, n in ready:
            if sender.send(data):
                self.stats.packets += 1
                self.stats.bytes += len(data)
                self.stats.messages += n
            else:
                self.error(sender.last_error)

    def close(self) -> None:
        for _, s, _, _ in getattr(self, "_senders", []):
            s.close()


class VRChatTarget(Target):
    """VRChat OSC trackers from chosen bones (see ``engine_bridge.vrchat``)."""

    kind = "vrchat"

    def open(self) -> None:
        from .vrchat import TrackerEncoder

        a = self.engine.avatars[0]
        self.performer = a.performer
        self.encoder = TrackerEncoder(a.trackers, calibration=self.engine.calibration, offsets=a.offsets)
        self.sender = UDPSender(self.engine.host, self.engine.port)

    def prepare(self, frame: BridgeFrame) -> None:
        pose = frame.poses.get(self.performer)
        self._ready = []
        if pose is None:
            return
        try:
            self._ready = self.encoder.messages(pose)
        except Exception as exc:
            self.error(f"{self.performer}: {exc}")

    def flush(self) -> None:
        msgs, self._ready = getattr(self, "_ready", None), None
        if msgs is None:
            return
        self.stats.frames += 1
        for m in msgs:
            if self.sender.send(m):
                self.stats.packets += 1
                self.stats.messages += 1
                self.stats.bytes += len(m)
            else:
                self.error(self.sender.last_error)
                break

    def close(self) -> None:
        self.sender.close()


class PluginTarget(Target):
    """The JSON-over-websocket plugin server (``engine_bridge.plugin_server``)."""

    kind = "plugin"

    def open(self) -> None:
        from .plugin_server import PluginServer

        self.server = PluginServer(
            self.engine.host,
            self.engine.port,
            avatars={a.performer: a.avatar for a in self.engine.avatars},
            controller=self.context.get("controller"),
            sink=self.context.get("sink"),
            info=self.context.get("info", {}),
        )
        self.server.start()

    def deliver(self, frame: BridgeFrame) -> None:
        self.stats.frames += 1
        sent = self.server.broadcast_frame(frame)
        self.stats.messages += sent
        self.stats.packets += sent
        self.stats.errors = self.server.errors

    def close(self) -> None:
        self.server.stop()


_BUILTIN: dict[str, type[Target]] = {"vmc": VMCTarget, "vrchat": VRChatTarget, "plugin": PluginTarget}


def known_targets() -> dict[str, Callable[..., Target] | None]:
    """Target names: the built-in ones and those declared by entry points (not imported yet)."""
    out: dict[str, Any] = dict(_BUILTIN)
    for ep in entry_points(group=GROUP):
        out.setdefault(ep.name, ep)
    return out


def create_target(engine: EngineMap, **context: Any) -> Target:
    found = known_targets().get(engine.target)
    if found is None:
        raise TargetError(f"engine {engine.name!r}: unknown target {engine.target!r}", hint=f"targets: {', '.join(sorted(known_targets()))}")
    if not isinstance(found, type):
        try:
            found = found.load()
        except Exception as exc:
            raise TargetError(f"engine {engine.name!r}: target plugin {engine.target!r} failed to load: {exc}") from None
    if not (isinstance(found, type) and issubclass(found, Target)):
        raise TargetError(f"engine {engine.name!r}: target {engine.target!r} is not an engine_bridge Target")
    return found(engine, **context)

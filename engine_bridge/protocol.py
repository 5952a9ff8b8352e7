"""The engine plugin protocol, sans-I/O: JSON text messages in, events out (and back).

Transport: a websocket (``ws://HOST:8770`` by default), one JSON object per text message,
every object has a ``type``. Versioned: the client's ``hello`` names ``protocol`` and
``version``; the server answers ``welcome`` or an ``error`` with code ``unsupported_version``.
The full reference, with examples, is in docs/engine_bridge.md.

Client -> server: hello, subscribe, playback (play/pause/toggle/seek/speed), camera, event, ping.
Server -> client: welcome, frame, playback (state), ack, error, pong.

``PluginConnection`` is one connection's protocol state: ``receive(text)`` validates and returns
events (dataclasses below) and queues replies; ``data_to_send()`` hands the queued text back.
Bad input never escapes as anything but a reply: the connection answers ``error`` (and counts
it); after ``max_errors`` it asks to be closed (``should_close``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from machinima.skeleton import BONE_INDEX, BONES, canonical_to_unity, unity_to_canonical
from machinima.store import CAMERA_CHANNELS

from .errors import PluginProtocolError

PROTOCOL = "machinima.bridge"
VERSION = 1
SUPPORTED_VERSIONS = (1,)
SPACES = ("unity", "canonical")
PLAYBACK_COMMANDS = ("play", "pause", "toggle", "seek", "speed")


# --- events (what a client asked for) ---------------------------------------------------------
@dataclass
class Hello:
    client: str
    version: int


@dataclass
class Subscribe:
    performers: list[str] | None  # None: every performer
    space: str = "unity"
    bones: list[str] | None = None


@dataclass
class PlaybackCommand:
    command: str
    seconds: float | None = None
    timecode: str | None = None
    speed: float | None = None


@dataclass
class CameraSample:
    name: str
    values: np.ndarray  # (12,) canonical, in CAMERA_CHANNELS order
    id: Any = None


@dataclass
class EngineEvent:
    name: str
    payload: dict[str, Any] = field(default_factory=dict)
    id: Any = None


# --- helpers ----------------------------------------------------------------------------------
def _num(v: Any, what: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise PluginProtocolError(f"{what} must be a finite number, got {v!r}")
    return float(v)


def _vec(v: Any, n: int, what: str) -> list[float]:
    if not isinstance(v, list) or len(v) != n:
        raise PluginProtocolError(f"{what} must be a list of {n} numbers")
    return [_num(x, what) for x in v]


def camera_values(msg: dict[str, Any]) -> np.ndarray:
    """The 12 stored camera channels (canonical space) of a ``camera`` message."""
    space = msg.get("space", "unity")
    if space not in SPACES:
        raise PluginProtocolError(f"camera: space {space!r} is not one of {SPACES}")
    pos = np.array(_vec(msg.get("position"), 3, "camera.position"))
    rot = np.array(_vec(msg.get("rotation"), 4, "camera.rotation (x, y, z, w)"))
    norm = float(np.linalg.norm(rot))
    if norm < 1e-6:
        raise PluginProtocolError("camera.rotation is a zero quaternion")
    rot = rot / norm
    if space == "unity":
        pos, rot = unity_to_canonical(pos, rot)
    focal = _num(msg.get("focal_mm", 35.0), "camera.focal_mm")
    sensor = _vec(msg.get("sensor_mm", [36.0, 24.0]), 2, "camera.sensor_mm (width, height)")
    focus = _num(msg.get("focus_m", 0.0), "camera.focus_m")
    if focal <= 0 or sensor[0] <= 0 or sensor[1] <= 0 or focus < 0:
        raise PluginProtocolError("camera: focal_mm and sensor_mm must be positive and focus_m not negative")
    out = np.zeros(len(CAMERA_CHANNELS), dtype=np.float32)
    out[0:3], out[3:7] = pos, rot
    out[7], out[8], out[9], out[10] = focal, sensor[0], sensor[1], focus
    return out


def frame_performer(pose: np.ndarray, *, avatar: str, space: str, bones: list[str] | None, blend: dict[str, float] | None = None) -> dict[str, Any]:
    """One performer's entry of a ``frame`` message: bone -> [px, py, pz, qx, qy, qz, qw]."""
    names = bones or BONES
    idx = [BONE_INDEX[b] for b in names]
    p = np.asarray(pose, dtype=np.float64)[idx]
    pos, rot = p[:, :3], p[:, 3:7]
    if space == "unity":
        pos, rot = canonical_to_unity(pos, rot)
    vals = np.round(np.concatenate([pos, rot], axis=1), 6).tolist()
    entry: dict[str, Any] = {"avatar": avatar, "bones": dict(zip(names, vals))}
    if blend:
        entry["blend"] = {k: round(float(v), 6) for k, v in blend.items()}
    return entry


def frame_camera(values: np.ndarray, *, space: str) -> dict[str, Any]:
    """One recorded camera of a ``frame`` message (12 stored channels -> named fields)."""
    v = np.asarray(values, dtype=np.float64)
    pos, rot = v[0:3], v[3:7]
    if space == "unity":
        pos, rot = canonical_to_unity(pos, rot)
    r = lambda a: [round(float(x), 6) for x in a]  # noqa: E731
    return {"position": r(pos), "rotation": r(rot), "focal_mm": round(float(v[7]), 4), "sensor_mm": r(v[8:10]), "focus_m": round(float(v[10]), 4)}


# --- the connection state ---------------------------------------------------------------------
class PluginConnection:
    """Protocol state of one plugin connection (server side)."""

    def __init__(self, *, max_message_bytes: int = 64 * 1024, max_errors: int = 32, server_info: dict[str, Any] | None = None) -> None:
        self.max_message_bytes = max_message_bytes
        self.max_errors = max_errors
        self.server_info = dict(server_info or {})
        self.hello: Hello | None = None
        self.subscription: Subscribe | None = None
        self.errors = 0
        self.received = 0
        self.should_close = False
        self._out: list[str] = []

    # outgoing
    def send(self, msg: dict[str, Any]) -> None:
        self._out.append(json.dumps(msg, separators=(",", ":")))

    def send_text(self, text: str) -> None:
        self._out.append(text)

    def data_to_send(self) -> list[str]:
        out, self._out = self._out, []
        return out

    def error(self, code: str, message: str) -> None:
        self.errors += 1
        self.send({"type": "error", "code": code, "message": message})
        if self.errors >= self.max_errors:
            self.should_close = True

    # incoming
    def receive(self, data: str | bytes) -> list[Any]:
        """Validate one message; returns the events it carries (zero or one)."""
        self.received += 1
        try:
            return self._receive(data)
        except PluginProtocolError as exc:
            self.error(exc.code, str(exc))
            return []

    def _receive(self, data: str | bytes) -> list[Any]:
        if len(data) > self.max_message_bytes:
            raise PluginProtocolError(f"message of {len(data)} bytes exceeds the limit of {self.max_message_bytes}", code="too_big")
        if isinstance(data, bytes):
            try:
                data = data.decode("utf-8")
            except UnicodeDecodeError:
                raise PluginProtocolError("binary message is not UTF-8 JSON") from None
        try:
            msg = json.loads(data)
        except (json.JSONDecodeError, RecursionError):
            raise PluginProtocolError("message is not valid JSON") from None
        if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
            raise PluginProtocolError("message must be a JSON object with a string 'type'")
        kind = msg["type"]
        if kind == "hello":
            return [self._hello(msg)]
        if self.hello is None:
            raise PluginProtocolError(f"send 'hello' before {kind!r}", code="hello_first")
        if kind == "subscribe":
            return [self._subscribe(msg)]
        if kind == "playback":
            return [self._playback(msg)]
        if kind == "camera":
            name = msg.get("name")
            if not isinstance(name, str) or not name or "/" in name:
                raise PluginProtocolError("camera.name must be a non-empty string without '/'")
            return [CameraSample(name, camera_values(msg), msg.get("id"))]
        if kind == "event":
            name = msg.get("name")
            payload = msg.get("payload", {})
            if not isinstance(name, str) or not name:
                raise PluginProtocolError("event.name must be a non-empty string")
            if not isinstance(payload, dict):
                raise PluginProtocolError("event.payload must be a JSON object")
            return [EngineEvent(name, payload, msg.get("id"))]
        if kind == "ping":
            self.send({"type": "pong", "id": msg.get("id")})
            return []
        raise PluginProtocolError(f"unknown message type {kind!r}", code="unknown_type")

    def _hello(self, msg: dict[str, Any]) -> Hello:
        if msg.get("protocol") != PROTOCOL:
            raise PluginProtocolError(f"hello.protocol must be {PROTOCOL!r}")
        version = msg.get("version")
        if version not in SUPPORTED_VERSIONS:
            self.should_close = True
            raise PluginProtocolError(f"protocol version {version!r} is not supported; this bridge speaks {list(SUPPORTED_VERSIONS)}", code="unsupported_version")
        client = msg.get("client", "plugin")
        self.hello = Hello(str(client), int(version))
        self.send({"type": "welcome", "protocol": PROTOCOL, "version": VERSION, **self.server_info})
        return self.hello

    def _subscribe(self, msg: dict[str, Any]) -> Subscribe:
        perf = msg.get("performers", "*")
        if perf == "*" or perf is None:
            performers = None
        elif isinstance(perf, list) and all(isinstance(p, str) for p in perf):
            performers = list(perf)
        else:
            raise PluginProtocolError("subscribe.performers must be \"*\" or a list of names")
        space = msg.get("space", "unity")
        if space not in SPACES:
            raise PluginProtocolError(f"subscribe.space must be one of {SPACES}")
        bones = msg.get("bones")
        if bones is not None:
            if not isinstance(bones, list) or not bones:
                raise PluginProtocolError("subscribe.bones must be a non-empty list of bone names")
            for b in bones:
                if b not in BONE_INDEX:
                    raise PluginProtocolError(f"subscribe.bones: unknown bone {b!r}", code="unknown_bone")
        self.subscription = Subscribe(performers, space, bones)
        return self.subscription

    def _playback(self, msg: dict[str, Any]) -> PlaybackCommand:
        return parse_playback(msg)


def parse_playback(msg: dict[str, Any]) -> PlaybackCommand:
    """A validated playback command from a ``playback`` message (or a director's
    ``bridge.control`` stage event payload, which has the same fields)."""
    if not isinstance(msg, dict):
        raise PluginProtocolError("a playback command must be a JSON object")
    cmd = msg.get("command")
    if cmd not in PLAYBACK_COMMANDS:
        raise PluginProtocolError(f"playback.command must be one of {PLAYBACK_COMMANDS}")
    out = PlaybackCommand(cmd)
    if cmd == "seek":
        if "timecode" in msg:
            if not isinstance(msg["timecode"], str):
                raise PluginProtocolError("playback.timecode must be a string HH:MM:SS:FF")
            out.timecode = msg["timecode"]
        elif "seconds" in msg:
            out.seconds = _num(msg["seconds"], "playback.seconds")
        else:
            raise PluginProtocolError("seek needs 'timecode' or 'seconds'")
    if cmd == "speed":
        out.speed = _num(msg.get("speed"), "playback.speed")
        if not (0 < out.speed <= 16):
            raise PluginProtocolError("playback.speed must be in (0, 16]")
    return out

"""The stage protocol, sans-I/O: messages in and out as plain values, no sockets.

Version ``PROTOCOL_VERSION`` (1). A connection to the stage server (``server/``) carries two
kinds of WebSocket messages:

* **Control** (text frames): one JSON object each, ``{"v": 1, "type": "<type>", ...}``.
  Commands a client sends may carry an ``"id"`` (string, at most 64 characters); the server
  answers each with ``ack`` or ``error`` carrying the same id. Ids make commands idempotent: a
  director that reconnects and re-sends ``record`` with the same id gets the first answer again
  and no second take. ``parse_control`` validates every field; ``encode_control`` builds one.
* **Frames** (binary frames): compact little-endian records of canonical pose arrays (55, 7)
  (see ``machinima.skeleton``), camera samples (12 channels, ``store.CAMERA_CHANNELS``),
  blendshape weights (named, face capture) and bundles (one tick of the server's fan-out:
  several frames in one message). ``encode_pose`` / ``encode_camera`` / ``encode_blend`` /
  ``encode_bundle`` / ``decode_frame``.

Client -> server control types (``CLIENT_TYPES``; who may send each: ``PERMISSIONS``)::

    hello      token, [client], [resume]        first message of every connection
    subscribe  [frames: bool] [performers: [names] | null] [encoding: "f32"|"f16"] [events: bool]
    slate      [production] [scene] [shot]       director: set the slate of the next take
    record     [slate: {...}] [notes: [..]] [timecode]  director: start a take (take number auto;
                                                 timecode in: the stage clock's time of day, or this)
    stop       -                                 director: end the take (status complete)
    cut        -                                 director: end the take, marked as cut
    marker     name, [note], [color]             director: a marker in the running take
    note       text, [take]                      director: a note on the running (or a named) take
    kick       name, [reason]                    director: disconnect a client
    takes      [limit]                           anyone: list recent takes
    event      name, [payload: {...}]            engine/director: an engine event (recorded)
    ping       [t]                               anyone: application ping (answered with pong)

Server -> client control types (``SERVER_TYPES``)::

    welcome    role, name, session, tick, protocol, server, frames: {pose, camera, blend}, stage: {...}
    ack        id, result: {...}
    error      [id], code, message               never closes the connection by itself
    state      stage: {recording, take, slate, performers: [{name, rate, loss, latency_ms, ..}], clients}
    takes      id, takes: [{id, status, slate, notes, markers, ...}]
    event      name, payload, from, t_ns         an engine event forwarded to subscribers
    dropped    count                             you read too slowly: stale frames were skipped
    pong       t, server_t
    warning    message                           e.g. recording stopped on a full disk

Binary frame header (``HEADER``, 20 bytes, little-endian), then ``name_len`` bytes of UTF-8
name, then the payload::

    magic b"MQ" | version u8 | kind u8 | encoding u8 | name_len u8 | count u16 | seq u32 | t_ns i64

    kind 1 POSE     name = performer, count = 55 bones, payload count*7 values (pos xyz, quat xyzw)
    kind 2 CAMERA   name = camera,    count = 12 channels, payload count values
    kind 3 BUNDLE   name = "",        count = number of frames; payload = those frames, each
                    prefixed by its byte length (u32)
    kind 4 BLEND    name = performer, count = number of blendshapes (1..MAX_BLEND); payload =
                    layout version u8 (BLEND_VERSION = 1), then count names (u8 length + UTF-8,
                    printable, unique), then count float32 weights. Always F32.
    encoding 0 F32 (float32) | 1 F16 (float16, for live viewers)

``FRAME_VERSIONS`` (sent in ``welcome`` as ``frames``) says which frame kinds, at which layout
version, this side speaks; a client checks ``blend`` there before publishing BLEND frames.

``t_ns`` is the sender's wall-clock capture time (``time.time_ns()``); the server forwards it
unchanged so viewers can measure delivery latency.

Tokens (``make_token`` / ``verify_token``): ``base64url(json claims) "." base64url(HMAC-SHA256)``
with claims ``{"v": 1, "role", "name", "exp"}`` (exp: Unix seconds), signed with the server's
secret.

Text is checked once, here, at the edge: every string a client sends must be Unicode text (no
lone surrogates such as ``"\ud800"``, which no file can store as UTF-8) without control
characters (tab and newlines only in free text: notes, reasons, payloads), within its length
(``MAX_LINE`` for names and slates, ``MAX_TEXT`` for free text); JSON nests at most
``MAX_DEPTH`` levels and numbers are finite (``NaN``/``Infinity`` are not JSON).

Errors: every problem is a ``ProtocolError`` with a ``code`` (``ERROR_CODES``) and a message
that says what to do; servers answer it with an ``error`` message or a close reason.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import re
import struct
import time
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import numpy as np

from .errors import MachinimaError

PROTOCOL_VERSION = 1
SUBPROTOCOL = "machinima.stage.v1"
ROLES = ("director", "performer", "engine", "observer")
N_BONES = 55
POSE_WIDTH = 7
CAMERA_WIDTH = 12

ERROR_CODES = {
    "bad_json": "the text frame is not a JSON object",
    "bad_message": "a field is missing or has the wrong type",
    "unknown_type": "the message type is not part of this protocol version",
    "version": "the message is for another protocol version",
    "bad_frame": "a binary frame that cannot be decoded",
    "too_big": "a message larger than the server's max_size",
    "rate_limited": "more messages per second than the server allows",
    "forbidden": "the role of this connection may not do that",
    "bad_token": "the token is malformed or not signed by this server",
    "expired_token": "the token has expired",
    "not_recording": "the command needs a running take",
    "already_recording": "a take is already running",
    "not_found": "no such take or client",
    "disk_full": "the disk filled up; recording stopped, what was written stays",
    "server_error": "the server failed to do it (see its log)",
    "closed": "the connection is closed",
    "timeout": "no answer in time",
}

# WebSocket close codes the server uses (the close reason says more, in words).
CLOSE_NORMAL = 1000
CLOSE_TOO_BIG = 1009  # sent by the websockets library for a message over max_size
CLOSE_BAD_TOKEN = 4001
CLOSE_EXPIRED = 4002
CLOSE_FORBIDDEN = 4003
CLOSE_NO_HELLO = 4004
CLOSE_RATE = 4008
CLOSE_SLOW = 4009
CLOSE_KICKED = 4010
CLOSE_REPLACED = 4011  # the same name connected again (a reconnect replaced this one)
CLOSE_SHUTDOWN = 1001
FINAL_CLOSE_CODES = frozenset({CLOSE_BAD_TOKEN, CLOSE_EXPIRED, CLOSE_FORBIDDEN, CLOSE_KICKED, CLOSE_REPLACED})
"""Close codes after which reconnecting with the same token is pointless."""


class ProtocolError(MachinimaError):
    """A message, frame or token that breaks the stage protocol; ``code`` is in ERROR_CODES."""

    def __init__(self, code: str, message: str, *, hint: str | None = None, id: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.code = code
        self.id = id


# --- control messages ----------------------------------------------------------------------
_ID = (str, 64)
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\- ]{0,62}$")


def _opt(t: Any) -> tuple[Any, bool]:
    return (t, False)


def _req(t: Any) -> tuple[Any, bool]:
    return (t, True)


# field -> (type spec, required). Type specs: a python type / tuple of types, "line" (one line
# of text, at most MAX_LINE characters), "text" (free text, at most MAX_TEXT), "token", "slate"
# (dict of lines), "names" (list of lines or null), "strlist" (list of texts).
CLIENT_TYPES: dict[str, dict[str, tuple[Any, bool]]] = {
    "hello": {"token": _req("token"), "client": _opt("line"), "resume": _opt("line")},
    "subscribe": {"frames": _opt(bool), "performers": _opt("names"), "encoding": _opt(("f32", "f16")), "events": _opt(bool)},
    "slate": {"production": _opt("line"), "scene": _opt("line"), "shot": _opt("line")},
    "record": {"slate": _opt("slate"), "notes": _opt("strlist"), "timecode": _opt("line")},
    "stop": {},
    "cut": {},
    "marker": {"name": _req("line"), "note": _opt("text"), "color": _opt("line")},
    "note": {"text": _req("text"), "take": _opt("line")},
    "kick": {"name": _req("line"), "reason": _opt("text")},
    "takes": {"limit": _opt(int)},
    "event": {"name": _req("line"), "payload": _opt(dict)},
    "ping": {"t": _opt((int, float))},
}

SERVER_TYPES = ("welcome", "ack", "error", "state", "takes", "event", "dropped", "pong", "warning")

PERMISSIONS: dict[str, frozenset[str]] = {
    "director": frozenset({"hello", "subscribe", "slate", "record", "stop", "cut", "marker", "note", "kick", "takes", "event", "ping"}),
    "performer": frozenset({"hello", "subscribe", "takes", "ping"}),
    "engine": frozenset({"hello", "subscribe", "takes", "event", "ping"}),
    "observer": frozenset({"hello", "subscribe", "takes", "ping"}),
}
# Which roles may publish which binary frame kinds.
FRAME_PERMISSIONS: dict[str, frozenset[int]] = {
    "director": frozenset(),
    "performer": frozenset({1, 4}),
    "engine": frozenset({2}),
    "observer": frozenset(),
}

MAX_TEXT = 4096  # longest free text (a note, a reason) accepted in a control message
MAX_LINE = 128  # longest one-line field (a name, a slate field, a marker name)
MAX_LIST = 1000  # most items in a list field (performers, notes)
MAX_TOKEN = 1024  # longest token
MAX_DEPTH = 32  # deepest JSON nesting accepted (an event payload is the only nested field)
_SURROGATE = re.compile("[\ud800-\udfff]")
_CONTROL_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")  # tab, LF and CR are text
_CONTROL_LINE = re.compile("[\x00-\x1f\x7f-\x9f]")


def _text(where: str, value: Any, *, line: bool, limit: int) -> None:
    """One string field: Unicode text, no control characters (newlines only in free text)."""
    if not isinstance(value, str):
        raise ProtocolError("bad_message", f"{where} must be a string, got {type(value).__name__}")
    if len(value) > limit:
        raise ProtocolError("bad_message", f"{where} is longer than {limit} characters ({len(value)})")
    if (_CONTROL_LINE if line else _CONTROL_TEXT).search(value):
        raise ProtocolError("bad_message", f"{where} holds control characters{'' if line else ' (only tab and newlines are text)'}")


def _check_tree(doc: dict[str, Any], mtype: str) -> None:
    """The whole message, once: nesting depth, Unicode strings (keys too), finite numbers.
    Iterative, so no depth of nesting can exhaust the stack."""
    stack: list[tuple[Any, int, str]] = [(v, 2, k) for k, v in doc.items()]
    for k in doc:
        if _SURROGATE.search(k):
            raise ProtocolError("bad_message", f"{mtype}: a field name is not Unicode text (a lone surrogate)")
    while stack:
        value, depth, top = stack.pop()
        if depth > MAX_DEPTH:
            raise ProtocolError("bad_json", f"{mtype}.{top} nests JSON deeper than {MAX_DEPTH} levels")
        if isinstance(value, str):
            if _SURROGATE.search(value):
                raise ProtocolError("bad_message", f"{mtype}.{top} is not Unicode text (a lone surrogate such as \\ud800)")
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise ProtocolError("bad_json", f"{mtype}.{top} is a number out of range")
        elif isinstance(value, dict):
            for k, v in value.items():
                if _SURROGATE.search(k):
                    raise ProtocolError("bad_message", f"{mtype}.{top} has a key that is not Unicode text (a lone surrogate)")
                stack.append((v, depth + 1, top))
        elif isinstance(value, list):
            stack.extend((v, depth + 1, top) for v in value)


def _payload_text(where: str, value: Any) -> None:
    """Strings inside a free-form payload follow the free-text rule."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            _text(where, v, line=False, limit=MAX_TEXT)
        elif isinstance(v, dict):
            for k, x in v.items():
                _text(where, k, line=True, limit=MAX_LINE)
                stack.append(x)
        elif isinstance(v, list):
            stack.extend(v)


def _check_field(mtype: str, key: str, value: Any, spec: Any) -> None:
    where = f"{mtype}.{key}"
    if spec == "line":
        _text(where, value, line=True, limit=MAX_LINE)
        return
    if spec == "text":
        _text(where, value, line=False, limit=MAX_TEXT)
        return
    if spec == "token":  # any string: verify_token judges it (and answers "bad token")
        if not isinstance(value, str):
            raise ProtocolError("bad_message", f"{where} must be a string, got {type(value).__name__}")
        return
    if spec == "names":
        if value is None:
            return
        if not isinstance(value, list) or len(value) > MAX_LIST:
            raise ProtocolError("bad_message", f"{where} must be a list of names or null")
        for v in value:
            _text(where, v, line=True, limit=MAX_LINE)
        return
    if spec == "strlist":
        if not isinstance(value, list) or len(value) > MAX_LIST:
            raise ProtocolError("bad_message", f"{where} must be a list of strings")
        for v in value:
            _text(where, v, line=False, limit=MAX_TEXT)
        return
    if spec == "slate":
        if not isinstance(value, dict):
            raise ProtocolError("bad_message", f"{where} must be an object with production, scene, shot")
        for k, v in value.items():
            if k not in ("production", "scene", "shot"):
                raise ProtocolError("bad_message", f"{where}.{k} is not a slate field (production, scene, shot)")
            _text(f"{where}.{k}", v, line=True, limit=MAX_LINE)
            if not v.strip():
                raise ProtocolError("bad_message", f"{where}.{k} must be a non-empty string")
        return
    if isinstance(spec, tuple) and spec and all(isinstance(s, str) for s in spec):
        if value not in spec:
            raise ProtocolError("bad_message", f"{where} must be one of {', '.join(spec)}")
        return
    if spec is int and isinstance(value, bool) or (spec == (int, float) and isinstance(value, bool)):
        raise ProtocolError("bad_message", f"{where} must be a number")
    if not isinstance(value, spec):
        tname = spec.__name__ if isinstance(spec, type) else "/".join(t.__name__ for t in spec)
        raise ProtocolError("bad_message", f"{where} must be {tname}, got {type(value).__name__}")
    if isinstance(value, dict):
        _payload_text(where, value)


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_control(text: str | bytes) -> dict[str, Any]:
    """Validate a client's control message; returns the dict (with ``type``, optional ``id``).

    Unknown fields are refused (they are usually typos); a message from a newer protocol
    version is refused with code ``version``; text, depth and numbers as the module says.
    """
    try:
        doc = json.loads(text, parse_constant=_not_json)
    except RecursionError:
        raise ProtocolError("bad_json", f"control message nests JSON deeper than {MAX_DEPTH} levels") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError("bad_json", f"control message is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ProtocolError("bad_json", "control message must be a JSON object")
    mid = doc.get("id")
    if mid is not None and (not isinstance(mid, str) or not 0 < len(mid) <= 64 or _CONTROL_LINE.search(mid) or _SURROGATE.search(mid)):
        raise ProtocolError("bad_message", "id must be a string of 1..64 characters of text without control characters")
    mtype = doc.get("type")
    try:
        _check_tree(doc, mtype[:40] if isinstance(mtype, str) and not _SURROGATE.search(mtype) else "message")
    except ProtocolError as exc:
        exc.id = mid
        raise
    v = doc.get("v", PROTOCOL_VERSION)
    if v != PROTOCOL_VERSION:
        raise ProtocolError("version", f"protocol version {v!r} is not supported (this server speaks {PROTOCOL_VERSION})", id=mid)
    if not isinstance(mtype, str):
        raise ProtocolError("bad_message", "field 'type' is missing", id=mid)
    fields = CLIENT_TYPES.get(mtype)
    if fields is None:
        raise ProtocolError("unknown_type", f"unknown message type {mtype[:40]!r}; known: {', '.join(sorted(CLIENT_TYPES))}", id=mid)
    for key, value in doc.items():
        if key in ("v", "type", "id"):
            continue
        if key not in fields:
            raise ProtocolError("bad_message", f"{mtype} has no field {key[:40]!r}; fields: {', '.join(fields) or 'none'}", id=mid)
        try:
            _check_field(mtype, key, value, fields[key][0])
        except ProtocolError as exc:
            exc.id = mid
            raise
    for key, (_, required) in fields.items():
        if required and key not in doc:
            raise ProtocolError("bad_message", f"{mtype} needs field {key!r}", id=mid)
    return doc


def encode_control(mtype: str, **fields: Any) -> str:
    """A control message as JSON text (``None`` fields are left out)."""
    doc = {"v": PROTOCOL_VERSION, "type": mtype}
    doc.update({k: v for k, v in fields.items() if v is not None})
    return json.dumps(doc, separators=(",", ":"), default=_json_default)


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def error_message(exc: ProtocolError) -> str:
    return encode_control("error", id=exc.id, code=exc.code, message=str(exc))


def parse_server(text: str | bytes) -> dict[str, Any]:
    """Decode a server's control message (the client side checks type and version only)."""
    try:
        doc = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError("bad_json", f"server sent invalid JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("type") not in SERVER_TYPES:
        raise ProtocolError("unknown_type", f"server sent an unknown message: {str(doc)[:80]}")
    return doc


def check_name(name: str, what: str = "name") -> str:
    """Client, performer and camera names: 1..63 printable ASCII characters."""
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise ProtocolError("bad_message", f"{what} {name!r} must be 1..63 letters, digits, '_', '-', '.', or spaces, starting with a letter or digit")
    return name


# --- binary frames -------------------------------------------------------------------------
MAGIC = b"MQ"
HEADER = struct.Struct("<2sBBBBHIq")
KIND_POSE, KIND_CAMERA, KIND_BUNDLE, KIND_BLEND = 1, 2, 3, 4
BLEND_VERSION = 1
MAX_BLEND = 512  # blendshapes in one BLEND frame
FRAME_VERSIONS = {"pose": 1, "camera": 1, "blend": BLEND_VERSION}
KIND_NAMES = {KIND_POSE: "pose", KIND_CAMERA: "camera", KIND_BUNDLE: "bundle", KIND_BLEND: "blend"}
ENC_F32, ENC_F16 = 0, 1
ENCODINGS = {"f32": ENC_F32, "f16": ENC_F16}
_DTYPES = {ENC_F32: np.dtype("<f4"), ENC_F16: np.dtype("<f2")}
_LEN = struct.Struct("<I")


@dataclass
class Frame:
    """A decoded binary frame. ``values``: (55, 7) for POSE, (12,) for CAMERA, (count,) weights
    for BLEND, float32. ``names``: the blendshape names of a BLEND. ``frames``: the sub-frames
    of a BUNDLE."""

    kind: int
    name: str
    seq: int
    t_ns: int
    values: np.ndarray | None = None
    encoding: int = ENC_F32
    frames: list["Frame"] | None = None
    names: list[str] | None = None

    @property
    def blendshapes(self) -> dict[str, float]:
        """A BLEND frame as {name: weight}."""
        return dict(zip(self.names or (), (self.values.tolist() if self.values is not None else ())))


def source_key(kind: int, name: str) -> str:
    """Where a server keeps the latest frame of a source: a performer's blendshapes live beside
    (not in place of) its pose."""
    return "blend/" + name if kind == KIND_BLEND else name


def _encode(kind: int, name: str, seq: int, t_ns: int | None, values: np.ndarray, encoding: int, count: int) -> bytes:
    nb = name.encode("utf-8")
    if len(nb) > 255:
        raise ProtocolError("bad_frame", f"name {name[:20]!r}... is longer than 255 bytes")
    if encoding not in _DTYPES:
        raise ProtocolError("bad_frame", f"unknown encoding {encoding}")
    t = time.time_ns() if t_ns is None else int(t_ns)
    head = HEADER.pack(MAGIC, PROTOCOL_VERSION, kind, encoding, len(nb), count, seq & 0xFFFFFFFF, t)
    return head + nb + np.ascontiguousarray(values, dtype=_DTYPES[encoding]).tobytes()


def encode_pose(performer: str, pose: np.ndarray, *, seq: int = 0, t_ns: int | None = None, encoding: int = ENC_F32) -> bytes:
    """One performer's pose (55, 7) as a POSE frame."""
    arr = np.asarray(pose)
    if arr.shape != (N_BONES, POSE_WIDTH):
        raise ProtocolError("bad_frame", f"pose has shape {arr.shape}, expected ({N_BONES}, {POSE_WIDTH})")
    if not np.isfinite(arr).all():
        raise ProtocolError("bad_frame", "pose contains NaN or infinite values")
    return _encode(KIND_POSE, performer, seq, t_ns, arr, encoding, N_BONES)


def encode_camera(camera: str, values: np.ndarray, *, seq: int = 0, t_ns: int | None = None) -> bytes:
    """One camera sample (12 channels of ``store.CAMERA_CHANNELS``) as a CAMERA frame."""
    arr = np.asarray(values)
    if arr.shape != (CAMERA_WIDTH,):
        raise ProtocolError("bad_frame", f"camera sample has shape {arr.shape}, expected ({CAMERA_WIDTH},)")
    if not np.isfinite(arr).all():
        raise ProtocolError("bad_frame", "camera sample contains NaN or infinite values")
    return _encode(KIND_CAMERA, camera, seq, t_ns, arr, ENC_F32, CAMERA_WIDTH)


def encode_blend(performer: str, values: Mapping[str, float], *, seq: int = 0, t_ns: int | None = None) -> bytes:
    """One performer's blendshape weights {name: weight} as a BLEND frame."""
    if not 0 < len(values) <= MAX_BLEND:
        raise ProtocolError("bad_frame", f"a blend frame holds 1..{MAX_BLEND} blendshapes, not {len(values)}")
    parts = [bytes((BLEND_VERSION,))]
    for name in values:
        nb = name.encode("utf-8") if isinstance(name, str) else b""
        if not 0 < len(nb) <= 255 or not name.isprintable():
            raise ProtocolError("bad_frame", f"blendshape name {name!r} must be 1..255 bytes of printable text")
        parts.append(bytes((len(nb),)) + nb)
    vals = np.fromiter((float(v) for v in values.values()), dtype="<f4", count=len(values))
    if not np.isfinite(vals).all():
        raise ProtocolError("bad_frame", "blend weights contain NaN or infinite values")
    nb = performer.encode("utf-8")
    if len(nb) > 255:
        raise ProtocolError("bad_frame", f"name {performer[:20]!r}... is longer than 255 bytes")
    t = time.time_ns() if t_ns is None else int(t_ns)
    head = HEADER.pack(MAGIC, PROTOCOL_VERSION, KIND_BLEND, ENC_F32, len(nb), len(values), seq & 0xFFFFFFFF, t)
    return head + nb + b"".join(parts) + vals.tobytes()


def _decode_blend(data: bytes, off: int, count: int) -> tuple[list[str], np.ndarray]:
    if not 0 < count <= MAX_BLEND:
        raise ProtocolError("bad_frame", f"blend frame with {count} blendshapes; 1..{MAX_BLEND} allowed")
    if len(data) <= off or data[off] != BLEND_VERSION:
        raise ProtocolError("version", f"blend frame layout version {data[off] if len(data) > off else None}; this side speaks {BLEND_VERSION}")
    pos = off + 1
    names: list[str] = []
    for _ in range(count):
        if pos >= len(data):
            raise ProtocolError("bad_frame", "blend frame is truncated inside its names")
        n = data[pos]
        if n == 0 or pos + 1 + n > len(data):
            raise ProtocolError("bad_frame", "blend frame has an empty or truncated name")
        try:
            name = bytes(data[pos + 1:pos + 1 + n]).decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError("bad_frame", "blendshape name is not UTF-8") from None
        if not name.isprintable():
            raise ProtocolError("bad_frame", f"blendshape name {name!r} is not printable text")
        names.append(name)
        pos += 1 + n
    if len(set(names)) != count:
        raise ProtocolError("bad_frame", "blend frame names a blendshape twice")
    if len(data) - pos != 4 * count:
        raise ProtocolError("bad_frame", f"blend frame payload has {len(data) - pos} value bytes, expected {4 * count}")
    values = np.frombuffer(data, dtype="<f4", count=count, offset=pos).astype(np.float32)
    if not np.isfinite(values).all():
        raise ProtocolError("bad_frame", "frame contains NaN or infinite values")
    return names, values


def encode_bundle(frames: Iterable[bytes], *, seq: int = 0, t_ns: int | None = None) -> bytes:
    """Several encoded frames in one BUNDLE (the server's per-tick fan-out message)."""
    frames = list(frames)
    t = time.time_ns() if t_ns is None else int(t_ns)
    parts = [HEADER.pack(MAGIC, PROTOCOL_VERSION, KIND_BUNDLE, 0, 0, len(frames), seq & 0xFFFFFFFF, t)]
    for f in frames:
        parts.append(_LEN.pack(len(f)))
        parts.append(f)
    return b"".join(parts)


def recode_pose(frame: bytes, encoding: int) -> bytes:
    """Re-encode an F32 POSE frame into ``encoding`` keeping its header fields (for viewers)."""
    if encoding == ENC_F32:
        return frame
    magic, ver, kind, enc, nlen, count, seq, t = HEADER.unpack_from(frame)
    off = HEADER.size + nlen
    vals = np.frombuffer(frame, dtype=_DTYPES[enc], count=count * POSE_WIDTH, offset=off)
    head = HEADER.pack(magic, ver, kind, encoding, nlen, count, seq, t)
    return head + frame[HEADER.size:off] + vals.astype(_DTYPES[encoding]).tobytes()


def peek_header(data: bytes) -> tuple[int, int, int, int, int]:
    """(kind, encoding, count, seq, t_ns) of a frame without decoding its payload."""
    if len(data) < HEADER.size:
        raise ProtocolError("bad_frame", f"binary frame of {len(data)} bytes is shorter than the {HEADER.size}-byte header")
    magic, ver, kind, enc, nlen, count, seq, t = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise ProtocolError("bad_frame", "binary frame does not start with b'MQ'")
    if ver != PROTOCOL_VERSION:
        raise ProtocolError("version", f"binary frame of protocol version {ver}; this side speaks {PROTOCOL_VERSION}")
    return kind, enc, count, seq, t


def decode_frame(data: bytes, *, max_bundle: int = 10_000) -> Frame:
    """Decode and validate a binary frame (shapes, finite values, UTF-8 names)."""
    kind, enc, count, seq, t = peek_header(data)
    nlen = data[5]
    off = HEADER.size + nlen
    if len(data) < off:
        raise ProtocolError("bad_frame", "binary frame is truncated inside its name")
    try:
        name = bytes(data[HEADER.size:off]).decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError("bad_frame", "frame name is not UTF-8") from None
    if kind == KIND_BUNDLE:
        if count > max_bundle:
            raise ProtocolError("bad_frame", f"bundle of {count} frames is more than {max_bundle}")
        subs = []
        pos = off
        for _ in range(count):
            if pos + 4 > len(data):
                raise ProtocolError("bad_frame", "bundle is truncated")
            (n,) = _LEN.unpack_from(data, pos)
            pos += 4
            if pos + n > len(data):
                raise ProtocolError("bad_frame", "bundle is truncated")
            subs.append(decode_frame(data[pos:pos + n]))
            pos += n
        if pos != len(data):
            raise ProtocolError("bad_frame", f"bundle has {len(data) - pos} trailing bytes")
        return Frame(kind, name, seq, t, None, enc, subs)
    if kind == KIND_BLEND:
        if enc != ENC_F32:
            raise ProtocolError("bad_frame", "blend frames are always float32 (encoding 0)")
        names, values = _decode_blend(data, off, count)
        return Frame(kind, name, seq, t, values, enc, None, names)
    if kind == KIND_POSE:
        shape: tuple[int, ...] = (N_BONES, POSE_WIDTH)
        if count != N_BONES:
            raise ProtocolError("bad_frame", f"pose frame with {count} bones; the canonical skeleton has {N_BONES}")
    elif kind == KIND_CAMERA:
        shape = (CAMERA_WIDTH,)
        if count != CAMERA_WIDTH:
            raise ProtocolError("bad_frame", f"camera frame with {count} channels; expected {CAMERA_WIDTH}")
    else:
        raise ProtocolError("bad_frame", f"unknown frame kind {kind}")
    if enc not in _DTYPES:
        raise ProtocolError("bad_frame", f"unknown encoding {enc}")
    want = int(np.prod(shape)) * _DTYPES[enc].itemsize
    if len(data) - off != want:
        raise ProtocolError("bad_frame", f"frame payload is {len(data) - off} bytes, expected {want}")
    values = np.frombuffer(data, dtype=_DTYPES[enc], offset=off).astype(np.float32).reshape(shape)
    if not np.isfinite(values).all():
        raise ProtocolError("bad_frame", "frame contains NaN or infinite values")
    return Frame(kind, name, seq, t, values, enc)


# --- tokens --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Claims:
    role: str
    name: str
    expires: float


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}")  # base64url(claims) "." base64url(32-byte HMAC)
MAX_TTL_S = 10 * 366 * 86400


def make_token(secret: bytes, role: str, name: str, *, ttl_s: float = 12 * 3600, now: float | None = None) -> str:
    """A signed token for ``role`` + ``name`` valid for ``ttl_s`` seconds."""
    if role not in ROLES:
        raise ProtocolError("bad_token", f"unknown role {role!r}; roles: {', '.join(ROLES)}")
    check_name(name)
    if not 0 < ttl_s <= MAX_TTL_S:  # False for NaN too
        raise ProtocolError("bad_token", f"a token needs a positive lifetime (ttl) of at most {MAX_TTL_S // 86400} days")
    exp = int((time.time() if now is None else now) + ttl_s)
    body = _b64(json.dumps({"v": 1, "role": role, "name": name, "exp": exp}, separators=(",", ":")).encode())
    sig = _b64(hmac.new(secret, body.encode("ascii"), hashlib.sha256).digest())
    return f"{body}.{sig}"


def verify_token(secret: bytes, token: Any, *, now: float | None = None) -> Claims:
    """Check form, signature, contents and expiry; the claims, or ``ProtocolError`` with code
    ``bad_token`` (anything wrong with the token itself) or ``expired_token``. Never anything
    else, whatever the input (fuzzed in tests/server/test_server_tokens.py)."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN or not _TOKEN_RE.fullmatch(token):
        raise ProtocolError("bad_token", "malformed token (two base64url parts joined by '.')",
                            hint="issue one with `machinima server token --role ROLE --name NAME`")
    body, sig = token.split(".")
    want = _b64(hmac.new(secret, body.encode("ascii"), hashlib.sha256).digest())
    if not hmac.compare_digest(want.encode("ascii"), sig.encode("ascii")):
        raise ProtocolError("bad_token", "token is not signed by this server", hint="issue a new one with `machinima server token` on the stage machine")
    # Signed by us, but checked as strictly as anything a client sends: a token is only as
    # good as the code that made it.
    try:
        claims = json.loads(_unb64(body), parse_constant=_not_json)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise ProtocolError("bad_token", "token claims cannot be read") from None
    if not isinstance(claims, dict) or type(claims.get("v")) is not int or claims["v"] != 1:
        raise ProtocolError("bad_token", "token claims are not version 1 claims")
    role, name, exp = claims.get("role"), claims.get("name"), claims.get("exp")
    if not isinstance(role, str) or role not in ROLES:
        raise ProtocolError("bad_token", f"token has unknown role {str(role)[:20]!r}")
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise ProtocolError("bad_token", "token has an invalid name (1..63 letters, digits, '_', '-', '.', spaces)")
    if isinstance(exp, bool) or not isinstance(exp, (int, float)) or not -2**62 < exp < 2**62:  # NaN, inf, 10**400
        raise ProtocolError("bad_token", "token expiry is not a time (finite Unix seconds)")
    if (time.time() if now is None else now) >= exp:
        raise ProtocolError("expired_token", f"token for {name!r} expired", hint="issue a new one with `machinima server token`")
    return Claims(role, name, float(exp))

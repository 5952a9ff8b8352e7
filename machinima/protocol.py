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

This module holds the control messages and tokens; the shared constants and ``ProtocolError`` are
in ``protocol_common``, the binary frames in ``protocol_frames``; every name is importable from here.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import re
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from .protocol_common import (  # noqa: F401  (re-exported: the protocol is one namespace)
    CAMERA_WIDTH, CLOSE_BAD_TOKEN, CLOSE_EXPIRED, CLOSE_FORBIDDEN, CLOSE_KICKED, CLOSE_NORMAL, CLOSE_NO_HELLO,
    CLOSE_RATE, CLOSE_REPLACED, CLOSE_SHUTDOWN, CLOSE_SLOW, CLOSE_TOO_BIG, ERROR_CODES, FINAL_CLOSE_CODES,
    N_BONES, POSE_WIDTH, PROTOCOL_VERSION, ProtocolError, ROLES, SUBPROTOCOL,
)
from .protocol_frames import (  # noqa: F401  (re-exported: the protocol is one namespace)
    BLEND_VERSION, ENCODINGS, ENC_F16, ENC_F32, FRAME_VERSIONS, Frame, HEADER, KIND_BLEND, KIND_BUNDLE,
    KIND_CAMERA, KIND_NAMES, KIND_POSE, MAGIC, MAX_BLEND, decode_frame, encode_blend, encode_bundle,
    encode_camera, encode_pose, peek_header, recode_pose, source_key,
)


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

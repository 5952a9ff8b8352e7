"""OSC 1.0 encoding and decoding, sans-I/O: bytes in, messages out (and back).

Shared by every spoke that speaks OSC (mocap listeners, the engine bridge, lip sync): they
call ``decode_packet`` / ``encode_message`` / ``encode_bundle`` and own their sockets.
Every malformed input raises ``OSCError`` and nothing else (see the fuzz tests).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Iterable, Sequence

from .errors import OSCError

BUNDLE_TAG = b"#bundle\x00"
IMMEDIATE = 1  # OSC time tag meaning "now"
MAX_DEPTH = 8


@dataclass(frozen=True)
class OSCMessage:
    address: str
    args: tuple
    timetag: int = IMMEDIATE  # of the enclosing bundle, if any


def _pad4(n: int) -> int:
    return (n + 3) & ~3


def _read_string(data: bytes, pos: int) -> tuple[str, int]:
    end = data.find(b"\x00", pos)
    if end < 0:
        raise OSCError(f"unterminated OSC string at byte {pos}")
    try:
        text = data[pos:end].decode("utf-8")
    except UnicodeDecodeError:
        raise OSCError(f"OSC string at byte {pos} is not UTF-8") from None
    nxt = _pad4(end + 1)
    if nxt > len(data):
        raise OSCError(f"OSC string at byte {pos} is not padded to 4 bytes")
    return text, nxt


def decode_message(data: bytes, timetag: int = IMMEDIATE) -> OSCMessage:
    if not data.startswith(b"/"):
        raise OSCError("OSC message must start with an address beginning with '/'")
    address, pos = _read_string(data, 0)
    if pos >= len(data):
        return OSCMessage(address, (), timetag)  # no type tag string: tolerated, no arguments
    tags, pos = _read_string(data, pos)
    if not tags.startswith(","):
        raise OSCError(f"{address}: type tag string must start with ','")
    args = []
    for tag in tags[1:]:
        if tag in "if":
            if pos + 4 > len(data):
                raise OSCError(f"{address}: truncated argument '{tag}'")
            args.append(struct.unpack_from(">i" if tag == "i" else ">f", data, pos)[0])
            pos += 4
        elif tag in "hdt":
            if pos + 8 > len(data):
                raise OSCError(f"{address}: truncated argument '{tag}'")
            args.append(struct.unpack_from({"h": ">q", "d": ">d", "t": ">Q"}[tag], data, pos)[0])
            pos += 8
        elif tag in "sS":
            s, pos = _read_string(data, pos)
            args.append(s)
        elif tag == "b":
            if pos + 4 > len(data):
                raise OSCError(f"{address}: truncated blob size")
            (n,) = struct.unpack_from(">i", data, pos)
            pos += 4
            if n < 0 or pos + n > len(data):
                raise OSCError(f"{address}: blob of {n} bytes does not fit the packet")
            args.append(bytes(data[pos:pos + n]))
            pos = _pad4(pos + n)
        elif tag == "T":
            args.append(True)
        elif tag == "F":
            args.append(False)
        elif tag == "N":
            args.append(None)
        elif tag == "I":
            args.append(float("inf"))
        else:
            raise OSCError(f"{address}: unsupported OSC type tag {tag!r}")
    return OSCMessage(address, tuple(args), timetag)


def decode_packet(data: bytes, *, _depth: int = 0) -> list[OSCMessage]:
    """All messages in a packet (a message or a bundle, nested bundles flattened in order)."""
    data = bytes(data)
    if not data:
        raise OSCError("empty OSC packet")
    if len(data) % 4:
        raise OSCError(f"OSC packet of {len(data)} bytes is not a multiple of 4")
    if not data.startswith(BUNDLE_TAG):
        return [decode_message(data)]
    if _depth >= MAX_DEPTH:
        raise OSCError("OSC bundles nested too deeply")
    if len(data) < 16:
        raise OSCError("truncated OSC bundle header")
    (timetag,) = struct.unpack_from(">Q", data, 8)
    pos = 16
    out: list[OSCMessage] = []
    while pos < len(data):
        if pos + 4 > len(data):
            raise OSCError("truncated OSC bundle element size")
        (n,) = struct.unpack_from(">i", data, pos)
        pos += 4
        if n <= 0 or n % 4 or pos + n > len(data):
            raise OSCError(f"OSC bundle element of {n} bytes does not fit the packet")
        elem = data[pos:pos + n]
        if elem.startswith(BUNDLE_TAG):
            out.extend(decode_packet(elem, _depth=_depth + 1))
        else:
            out.append(decode_message(elem, timetag))
        pos += n
    return out


def _string(s: str) -> bytes:
    if "\x00" in s:
        raise OSCError("OSC strings cannot contain NUL characters")
    try:
        b = s.encode("utf-8") + b"\x00"
    except UnicodeEncodeError:
        raise OSCError("OSC strings must be valid Unicode (no lone surrogates)") from None
    return b + b"\x00" * (_pad4(len(b)) - len(b))


def encode_message(address: str, args: Sequence = ()) -> bytes:
    """Encode one message; ints -> 'i', floats -> 'f', str -> 's', bytes -> 'b', bools -> T/F."""
    tags = [","]
    payload = []
    for a in args:
        if a is True:
            tags.append("T")
        elif a is False:
            tags.append("F")
        elif a is None:
            tags.append("N")
        elif isinstance(a, int):
            tags.append("i")
            payload.append(struct.pack(">i", a))
        elif isinstance(a, float):
            tags.append("f")
            payload.append(struct.pack(">f", a))
        elif isinstance(a, str):
            tags.append("s")
            payload.append(_string(a))
        elif isinstance(a, (bytes, bytearray)):
            tags.append("b")
            payload.append(struct.pack(">i", len(a)) + bytes(a) + b"\x00" * (_pad4(len(a)) - len(a)))
        else:
            try:
                tags.append("f")
                payload.append(struct.pack(">f", float(a)))  # numpy scalars
            except (TypeError, ValueError):
                raise OSCError(f"cannot encode OSC argument of type {type(a).__name__}") from None
    return _string(address) + _string("".join(tags)) + b"".join(payload)


def encode_bundle(elements: Iterable[bytes], timetag: int = IMMEDIATE) -> bytes:
    parts = [BUNDLE_TAG, struct.pack(">Q", timetag)]
    for e in elements:
        parts.append(struct.pack(">i", len(e)))
        parts.append(e)
    return b"".join(parts)

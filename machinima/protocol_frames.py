"""The stage protocol's binary frames (see ``machinima.protocol`` for the layout): pose, camera
and blendshape records and bundles, encoded and decoded with numpy, sans-I/O."""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass
from typing import Iterable, Mapping

import numpy as np

from .protocol_common import CAMERA_WIDTH, N_BONES, POSE_WIDTH, PROTOCOL_VERSION, ProtocolError

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

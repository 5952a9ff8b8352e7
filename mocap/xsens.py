"""Xsens MVN real-time network stream (UDP, default port 9763), sans-I/O.

Datagram: a 24-byte big-endian header, then the payload::

    6s  "MXTP" + 2-digit message type        I  sample counter (+1 a sample; the sender may skip)
    B   datagram counter (top bit: last datagram of the sample)   B  number of items
    I   time code (ms since the recording started)                 B  character id
    B   body segments (23)  B props  B finger segments (0 or 40)   H  reserved   H payload size

Message types read here: 01 pose (position cm + Euler degrees, Y-up right-handed), 02 pose
(position cm + quaternion w,x,y,z, Z-up right-handed), 03 point positions (Y-up, cm),
12 meta data ("name:..." lines), 13 scale (T-pose segment origins), 25 time code
("HH:MM:SS.mmm"). Others are counted as ``ignored``. Segments 1..23 map to canonical bones
(``SEGMENT_BONES``); finger segments map to the canonical finger bones when present.

``XsensDecoder.feed(data, t_recv_ns)`` returns complete samples as ``XsensSample`` (canonical
pose), counting rejections by reason; ``decode_datagram`` raises ``XsensError`` (with a
``reason``) and nothing else. ``encode_pose`` writes type 01/02 datagrams (the sender and the
tests use it).
"""

from __future__ import annotations

import math
import struct
from collections import Counter, deque
from dataclasses import dataclass, field

import numpy as np

from machinima import quat
from machinima.skeleton import BONE_INDEX, BONES

from .errors import XsensError
from .retarget import canonical_to_zup, fk, local_from_global, zup_to_canonical

DEFAULT_PORT = 9763
HEADER = struct.Struct(">6sIBBIBBBBHH")
assert HEADER.size == 24
POSE_TYPES = {1: 28, 2: 32, 3: 16}  # bytes per item
EULER_ORDER = "XYZ"  # the spec leaves it open; MotionBuilder's plug-in default

# MVN segment ids (index + 1) -> canonical bones. L3 has no canonical bone: its rotation is
# folded into Chest's local rotation (locals are computed from world transforms).
SEGMENTS = (
    "Pelvis", "L5", "L3", "T12", "T8", "Neck", "Head",
    "RightShoulder", "RightUpperArm", "RightForearm", "RightHand",
    "LeftShoulder", "LeftUpperArm", "LeftForearm", "LeftHand",
    "RightUpperLeg", "RightLowerLeg", "RightFoot", "RightToe",
    "LeftUpperLeg", "LeftLowerLeg", "LeftFoot", "LeftToe",
)
SEGMENT_BONES: dict[int, str] = {
    1: "Hips", 2: "Spine", 4: "Chest", 5: "UpperChest", 6: "Neck", 7: "Head",
    8: "RightShoulder", 9: "RightUpperArm", 10: "RightLowerArm", 11: "RightHand",
    12: "LeftShoulder", 13: "LeftUpperArm", 14: "LeftLowerArm", 15: "LeftHand",
    16: "RightUpperLeg", 17: "RightLowerLeg", 18: "RightFoot", 19: "RightToes",
    20: "LeftUpperLeg", 21: "LeftLowerLeg", 22: "LeftFoot", 23: "LeftToes",
}
# Finger segments per hand (offset from the hand's carpus): 20 segments, canonical names.
_FINGERS = (
    None, "ThumbProximal", "ThumbIntermediate", "ThumbDistal",
    None, "IndexProximal", "IndexIntermediate", "IndexDistal",
    None, "MiddleProximal", "MiddleIntermediate", "MiddleDistal",
    None, "RingProximal", "RingIntermediate", "RingDistal",
    None, "LittleProximal", "LittleIntermediate", "LittleDistal",
)
CM = 0.01


@dataclass
class XsensHeader:
    msg_type: int
    sample: int
    datagram: int  # index (0..127)
    last: bool
    items: int
    time_ms: int
    character: int
    segments: int
    props: int
    fingers: int
    payload_size: int


@dataclass
class XsensDatagram:
    header: XsensHeader
    ids: np.ndarray | None = None  # (n,) segment / point ids
    values: np.ndarray | None = None  # (n, k) float32, as sent
    meta: dict[str, str] = field(default_factory=dict)
    scale: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    timecode: str | None = None


@dataclass
class XsensSample:
    """One complete sample of one character, in canonical space."""

    character: int
    sample: int
    time_ms: int
    msg_type: int
    pose: np.ndarray | None  # (55, 7) canonical local pose (types 01 and 02)
    points: dict[int, np.ndarray] | None = None  # type 03: point id -> (3,) canonical metres
    present: np.ndarray | None = None  # (55,) bones the sample set
    late: bool = False  # came after a later sample (within the reorder window)
    restart: bool = False  # the sender restarted its counter: a gap before this sample


def parse_header(data: bytes) -> XsensHeader:
    if len(data) < HEADER.size:
        raise XsensError(f"datagram of {len(data)} bytes is shorter than the 24-byte header", reason="truncated")
    ident, sample, dgram, items, time_ms, char, segs, props, fingers, _res, size = HEADER.unpack_from(data, 0)
    if ident[:4] != b"MXTP" or not ident[4:6].isdigit():
        raise XsensError("not an MVN datagram (no 'MXTPnn' id)", reason="not_mxtp")
    return XsensHeader(int(ident[4:6]), sample, dgram & 0x7F, bool(dgram & 0x80), items, time_ms, char, segs, props, fingers, size)


def _read_string(data: bytes, pos: int, end: int) -> tuple[str, int]:
    if pos + 4 > end:
        raise XsensError("truncated string length", reason="truncated")
    (n,) = struct.unpack_from(">i", data, pos)
    pos += 4
    if n < 0 or pos + n > end:
        raise XsensError(f"string of {n} bytes does not fit the datagram", reason="truncated")
    try:
        return data[pos:pos + n].decode("utf-8"), pos + n
    except UnicodeDecodeError:
        raise XsensError("string is not UTF-8", reason="bad_string") from None


def decode_datagram(data: bytes, *, max_items: int = 256) -> XsensDatagram:
    """Decode one datagram (sans-I/O). Raises ``XsensError`` with a ``reason``."""
    data = bytes(data)
    h = parse_header(data)
    payload = len(data) - HEADER.size
    if h.payload_size != payload:
        raise XsensError(f"header says {h.payload_size} payload bytes, datagram has {payload}", reason="truncated" if payload < h.payload_size else "bad_size")
    if h.msg_type in POSE_TYPES:
        width = POSE_TYPES[h.msg_type]
        if h.items > max_items:
            raise XsensError(f"{h.items} items is over max_items={max_items}", reason="too_many_items")
        if h.items * width != payload:
            raise XsensError(f"{h.items} items of {width} bytes do not fill a {payload}-byte payload", reason="bad_count")
        rec = np.frombuffer(data, dtype=np.dtype([("id", ">i4"), ("v", ">f4", (width // 4 - 1,))]), count=h.items, offset=HEADER.size)
        ids = rec["id"].astype(np.int64)
        vals = rec["v"].astype(np.float32)
        return XsensDatagram(h, ids, vals)
    if h.msg_type == 12:
        raw = data[HEADER.size:]
        if len(raw) >= 4 and struct.unpack_from(">i", raw, 0)[0] == len(raw) - 4:
            raw = raw[4:]
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise XsensError("meta data is not UTF-8", reason="bad_string") from None
        meta = {}
        for line in text.splitlines():
            if ":" in line:
                k, v = line.split(":", 1)
                meta[k.strip()] = v.strip()
        return XsensDatagram(h, meta=meta)
    if h.msg_type == 13:
        pos, end = HEADER.size, len(data)
        if pos + 4 > end:
            raise XsensError("truncated scale datagram", reason="truncated")
        (count,) = struct.unpack_from(">i", data, pos)
        pos += 4
        if not 0 <= count <= max_items:
            raise XsensError(f"scale datagram claims {count} segments", reason="too_many_items")
        scale = {}
        for _ in range(count):
            name, pos = _read_string(data, pos, end)
            if pos + 12 > end:
                raise XsensError("truncated scale segment", reason="truncated")
            scale[name] = struct.unpack_from(">3f", data, pos)
            pos += 12
        return XsensDatagram(h, scale=scale)  # point definitions after this are not used
    if h.msg_type == 25:
        try:
            text = data[HEADER.size:HEADER.size + 12].decode("ascii")
        except UnicodeDecodeError:
            raise XsensError("time code is not ASCII", reason="bad_string") from None
        return XsensDatagram(h, timecode=text)
    raise XsensError(f"message type {h.msg_type:02d} is not read", reason="ignored")


def segment_map(props: int, fingers: int) -> dict[int, int]:
    """Segment id -> canonical bone index for a character with these prop/finger counts."""
    out = {sid: BONE_INDEX[b] for sid, b in SEGMENT_BONES.items()}
    if fingers:
        for h, side in enumerate(("Left", "Right")):
            carpus = 23 + props + 20 * h  # index; id = index + 1
            for k, name in enumerate(_FINGERS):
                if name:
                    out[carpus + k + 1] = BONE_INDEX[side + name]
    return out


def _to_canonical_pose(msg_type: int, ids: np.ndarray, vals: np.ndarray, props: int, fingers: int, euler_order: str) -> tuple[np.ndarray, np.ndarray]:
    smap = segment_map(props, fingers)
    n = len(BONES)
    gpos = np.zeros((n, 3))
    grot = np.tile(quat.IDENTITY, (n, 1))
    present = np.zeros(n, bool)
    sel = [(k, smap[int(i)]) for k, i in enumerate(ids) if int(i) in smap]
    if not sel:
        raise XsensError("no body segment in the sample", reason="no_segments")
    rows = np.array([k for k, _ in sel])
    bones = np.array([b for _, b in sel])
    v = vals[rows].astype(np.float64)
    if msg_type == 2:
        q_xyzw = np.concatenate([v[:, 4:7], v[:, 3:4]], axis=1)
        p, r = zup_to_canonical(v[:, :3] * CM, q_xyzw)
    else:  # type 01: Y-up right-handed, facing +Z like the canonical space
        p = v[:, :3] * CM
        r = quat.from_euler(v[:, 3:6], euler_order)
    gpos[bones], grot[bones], present[bones] = p, r, True
    return local_from_global(gpos, grot, present), present


class _Sequence:
    """Sample-counter bookkeeping of one (character, message type) stream."""

    __slots__ = ("last", "recent", "missing")

    def __init__(self) -> None:
        self.last: int | None = None
        self.recent: deque[int] = deque(maxlen=256)  # delivered samples, to refuse duplicates
        self.missing: set[int] = set()  # counted as dropped; a late arrival takes it back


class XsensDecoder:
    """Reassembles samples from datagrams (several characters, split samples), counts problems.

    Only a datagram that decodes completely (header, sizes, segment ids, finite values) and
    whose whole sample converts to a pose moves the sample sequence: garbage, a datagram with a
    bad segment count or a half-received split sample never does. Per (character, type):

    * a sample after the last one: delivered; skipped counters are ``dropped``, or, when the
      counter leaps ahead by more than ``max_gap`` samples, one ``jump`` (a sender that skipped
      ahead, not thousands of losses);
    * the same sample again, or one delivered lately: ``duplicate``, never delivered twice;
    * an earlier sample within ``reorder_window`` of the last one: ``late``, still delivered
      (``XsensSample.late``; the listener's jitter buffer puts it back in order, the take keeps
      it) and, if it had been counted as dropped, no longer counted;
    * a sample further back than ``reorder_window``: the sender restarted (MVN restarts its
      counter at 0): ``restarts``, the sequence starts over from it (``XsensSample.restart``).

    So ``dropped`` is exact: the samples that never came. Counters (``counts``): ``samples``,
    ``dropped``, ``late``, ``duplicate``, ``jumps``, ``restarts``, ``incomplete`` (a split sample
    whose datagrams did not all arrive) and every rejection reason of ``decode_datagram``,
    ``nonfinite`` and ``bad_segments`` included.
    """

    def __init__(self, *, max_items: int = 256, max_pending: int = 8, euler_order: str = EULER_ORDER, reorder_window: int = 64,
                 max_gap: int = 100_000) -> None:
        self.max_items = max_items
        self.max_pending = max_pending
        self.euler_order = euler_order
        self.reorder_window = reorder_window
        self.max_gap = max_gap
        self.counts: Counter[str] = Counter()
        self.names: dict[int, str] = {}
        self.timecodes: dict[int, str] = {}
        self.scale: dict[int, dict[str, tuple[float, float, float]]] = {}
        self._seq: dict[tuple[int, int], _Sequence] = {}
        self._pending: dict[tuple[int, int, int], dict[int, XsensDatagram]] = {}

    def feed(self, data: bytes) -> list[XsensSample]:
        try:
            d = decode_datagram(data, max_items=self.max_items)
        except XsensError as exc:
            self.counts[exc.reason] += 1
            return []
        h = d.header
        if h.msg_type == 12:
            if "name" in d.meta:
                self.names[h.character] = d.meta["name"]
            return []
        if h.msg_type == 13:
            self.scale.setdefault(h.character, {}).update(d.scale)
            return []
        if h.msg_type == 25:
            self.timecodes[h.character] = d.timecode or ""
            return []
        assert d.values is not None and d.ids is not None
        if not np.isfinite(d.values).all():
            self.counts["nonfinite"] += 1
            return []
        if h.msg_type != 3 and not _segments_ok(h, d.ids):
            self.counts["bad_segments"] += 1
            return []
        if h.datagram == 0 and h.last:
            parts = [d]
        else:
            pk = (h.character, h.msg_type, h.sample)
            got = self._pending.setdefault(pk, {})
            got[h.datagram] = d
            final = next((g for g in got.values() if g.header.last), None)
            if final is None or len(got) != final.header.datagram + 1:
                self._expire()
                return []
            parts = [got[i] for i in range(final.header.datagram + 1)]
            del self._pending[pk]
        ids = np.concatenate([p.ids for p in parts])  # type: ignore[misc]
        vals = np.concatenate([p.values for p in parts])  # type: ignore[misc]
        if h.msg_type == 3:
            sample = XsensSample(h.character, h.sample, h.time_ms, 3, None, points=zup_free_points(ids, vals))
        else:
            try:
                pose, present = _to_canonical_pose(h.msg_type, ids, vals, h.props, h.fingers, self.euler_order)
            except XsensError as exc:
                self.counts[exc.reason] += 1
                return []
            sample = XsensSample(h.character, h.sample, h.time_ms, h.msg_type, pose, present=present)
        # Only now, with a whole valid sample, does the sequence move.
        if not self._sequence(sample):
            return []
        self.counts["samples"] += 1
        self._expire()
        return [sample]

    def _sequence(self, s: XsensSample) -> bool:
        """Place a valid sample in its stream's sequence; False: a duplicate (not delivered)."""
        seq = self._seq.get((s.character, s.msg_type))
        if seq is None:
            seq = self._seq[(s.character, s.msg_type)] = _Sequence()
        c = s.sample
        if seq.last is None:
            seq.last = c
            seq.recent.append(c)
            return True
        d = ((c - seq.last + 0x80000000) & 0xFFFFFFFF) - 0x80000000  # signed distance, 32-bit wrap
        if d == 0 or (c in seq.recent and -d <= self.reorder_window):
            self.counts["duplicate"] += 1
            return False
        if d > 0:
            if d > self.max_gap:
                self.counts["jumps"] += 1
            elif d > 1:
                self.counts["dropped"] += d - 1
                if d - 1 <= 4 * self.reorder_window:
                    seq.missing.update((seq.last + k) & 0xFFFFFFFF for k in range(1, d))
            seq.last = c
            if len(seq.missing) > 8 * self.reorder_window:  # too old to come back late: final
                floor = (c - 4 * self.reorder_window) & 0xFFFFFFFF
                seq.missing = {m for m in seq.missing if not _seq_le(m, floor)}
        elif -d <= self.reorder_window:
            self.counts["late"] += 1
            s.late = True
            if c in seq.missing:
                seq.missing.discard(c)
                self.counts["dropped"] -= 1
        else:
            self.counts["restarts"] += 1
            s.restart = True
            seq.last = c
            seq.recent.clear()
            seq.missing.clear()
        seq.recent.append(c)
        return True

    def _expire(self) -> None:
        """Drop split samples that can no longer complete: more than ``reorder_window`` behind
        their stream's last sample, or beyond ``max_pending``."""
        stale = []
        for pk in self._pending:
            seq = self._seq.get(pk[:2])
            if seq is not None and seq.last is not None and not _seq_le(seq.last, (pk[2] + self.reorder_window) & 0xFFFFFFFF):
                stale.append(pk)
        for pk in stale:
            del self._pending[pk]
            self.counts["incomplete"] += 1
        while len(self._pending) > self.max_pending:
            del self._pending[next(iter(self._pending))]
            self.counts["incomplete"] += 1


def _segments_ok(h: XsensHeader, ids: np.ndarray) -> bool:
    """A pose datagram names 23 body segments, at most 4 props, 0 or 40 finger segments, and
    segment ids inside that range, each once."""
    if h.segments != 23 or h.props > 4 or h.fingers not in (0, 40):
        return False
    top = 23 + h.props + h.fingers
    if ids.shape[0] and (int(ids.min()) < 1 or int(ids.max()) > top):
        return False
    return np.unique(ids).shape[0] == ids.shape[0]


def _seq_le(a: int, b: int) -> bool:
    """a <= b for 32-bit wrapping sample counters."""
    return ((b - a) & 0xFFFFFFFF) < 0x80000000


def zup_free_points(ids: np.ndarray, vals: np.ndarray) -> dict[int, np.ndarray]:
    """Type 03 points are Y-up right-handed in cm: metres, same axes as canonical."""
    return {int(i): (v[:3].astype(np.float64) * CM) for i, v in zip(ids, vals)}


# --- encoding (the sender and tests) -----------------------------------------------------------
def encode_header(msg_type: int, sample: int, items: int, time_ms: int, payload_size: int, *, character: int = 0, datagram: int = 0, last: bool = True, props: int = 0, fingers: int = 0) -> bytes:
    ident = b"MXTP%02d" % msg_type
    return HEADER.pack(ident, sample & 0xFFFFFFFF, (datagram & 0x7F) | (0x80 if last else 0), items, time_ms & 0xFFFFFFFF, character, 23, props, fingers, 0, payload_size)


def encode_pose(pose: np.ndarray, sample: int, time_ms: int, *, msg_type: int = 2, character: int = 0, split: int = 1, euler_order: str = EULER_ORDER, world: tuple[np.ndarray, np.ndarray] | None = None) -> list[bytes]:
    """Datagrams (one, or ``split`` parts) of a canonical pose as MVN segment data (type 01/02).
    ``world``: the pose's world transforms ``fk(pose)`` when the caller has them already."""
    if msg_type not in (1, 2):
        raise XsensError(f"can only encode pose types 01 and 02, not {msg_type:02d}", reason="bad_args")
    gp, gr = fk(pose) if world is None else world
    idx = np.array([BONE_INDEX[SEGMENT_BONES.get(sid, "Spine")] for sid in range(1, 24)])
    p, r = gp[idx].copy(), gr[idx].copy()
    p[2] = (gp[BONE_INDEX["Spine"]] + gp[BONE_INDEX["Chest"]]) / 2  # L3: between L5 and T12
    ids = np.arange(1, 24)
    if msg_type == 2:
        pz, rz = canonical_to_zup(p, r)
        rec = np.zeros(23, dtype=np.dtype([("id", ">i4"), ("v", ">f4", (7,))]))
        rec["v"][:, :3] = pz / CM
        rec["v"][:, 3] = rz[:, 3]
        rec["v"][:, 4:7] = rz[:, :3]
    else:
        rec = np.zeros(23, dtype=np.dtype([("id", ">i4"), ("v", ">f4", (6,))]))
        rec["v"][:, :3] = p / CM
        rec["v"][:, 3:6] = quat.to_euler(r, euler_order)
    rec["id"] = ids
    rows = [rec[i].tobytes() for i in range(23)]
    chunks = np.array_split(np.arange(23), split)
    out = []
    for k, ch in enumerate(chunks):
        payload = b"".join(rows[i] for i in ch)
        out.append(encode_header(msg_type, sample, len(ch), time_ms, len(payload), character=character, datagram=k, last=k == len(chunks) - 1) + payload)
    return out


def encode_meta(character: int, name: str, sample: int = 0) -> bytes:
    payload = f"name:{name}\nxmid:{character}\n".encode("utf-8")
    return encode_header(12, sample, 0, 0, len(payload), character=character) + payload


def encode_timecode(character: int, text: str, sample: int = 0) -> bytes:
    payload = text.encode("ascii")[:12].ljust(12, b"0")
    return encode_header(25, sample, 1, 0, len(payload), character=character) + payload


def timecode_seconds(text: str) -> float | None:
    try:
        hh, mm, rest = text.split(":")
        return int(hh) * 3600 + int(mm) * 60 + float(rest)
    except ValueError:
        return None


assert math.isclose(timecode_seconds("01:00:00.500") or 0, 3600.5)

"""VMC protocol (Virtual Motion Capture over OSC) codec, sans-I/O: poses <-> packet bytes.

Shared by mocap (listeners), the engine bridge (senders) and lip sync (blendshapes). It never
touches a socket: callers own their sockets and pass bytes in and out.

Public API
----------
Addresses: ``ADDR_ROOT`` (/VMC/Ext/Root/Pos), ``ADDR_BONE`` (/VMC/Ext/Bone/Pos), ``ADDR_BLEND``
(/VMC/Ext/Blend/Val), ``ADDR_APPLY`` (/VMC/Ext/Blend/Apply), ``ADDR_TIME`` (/VMC/Ext/T),
``ADDR_OK`` (/VMC/Ext/OK); ``DEFAULT_PORT`` = 39539.

Encoding (canonical right-handed Y-up -> Unity left-handed at the edge, via
``machinima.skeleton.canonical_to_unity``)::

    encode_frame(pose, *, blendshapes=None, time_s=None, bones=None, root="origin", ok=True, root_name="root") -> bytes
    encode_blendshapes(values, *, apply=True) -> bytes

``pose`` is one canonical pose (55, 7) (local pos + quat xyzw; Hips in world space). One OSC
bundle comes out: OK, T, Root/Pos, one Bone/Pos per bone, Blend/Val per blendshape, Apply.
``root="origin"`` (default, what VMC performers like VirtualMotionCapture send) sends the avatar
root at the origin and Hips as a bone; ``root="hips"`` sends the Hips world pose as Root/Pos and
Hips as an identity bone. Either way a decoder composes root and Hips back into the same pose.
``bones`` limits which bones are sent (names or indices; default all 55). Encoding reuses a
byte template per (bones, blendshape names) and writes the floats with numpy.

Decoding::

    dec = VMCDecoder(max_packet_bytes=65507, max_elements=1024, max_bones=256, max_blendshapes=512)
    pkt = dec.decode(data)      # -> VMCPacket; raises VMCError (reason in .reason) for a bad packet
    pkt = dec.feed(data)        # same, but never raises: returns None and counts dec.rejects[reason]
    pkt.bone_index, pkt.bone_values   # (n,) canonical indices, (n, 7) canonical local pos+quat
    pkt.bones                   # {name: (7,) array}, pkt.root (7,) or None, pkt.root_name, pkt.time_s, pkt.ok
    pkt.blendshapes             # {name: value} from Blend/Val in this packet; pkt.blend_apply
    pkt.apply_to(pose)          # write bones (root composed into Hips) into a (55, 7) pose
    dec.applied_blendshapes     # blendshape state committed by the last Blend/Apply
    decode_packet(data)         # one-shot helper with a fresh decoder

Fast path: VMC senders repeat the same bundle layout every frame (same bones, same order), so
the decoder learns a *template* of each valid layout (every 32-bit word that is not a float or
int argument) and, for a packet of the same length whose fixed words match, gathers all floats
with one numpy fancy index: no per-message Python objects. Anything else takes the general path
(``machinima.osc.decode_message`` per bundle element), which yields exactly the same packet; a
bad element is counted and skipped, its valid neighbours kept. The fast path agrees with
python-osc on the same bytes (fuzz tests in tests/mocap/test_mocap_vmc_fuzz.py).

Rejections (``VMCError.reason`` and the keys of ``VMCPacket.rejected`` / ``VMCDecoder.rejects``):
``empty``, ``too_large``, ``not_osc`` (not an OSC packet at all), ``truncated`` (a bundle
element does not fit), ``too_many_elements``, ``too_many_bones``, ``too_many_blendshapes``,
``nested`` (bundles nested too deeply), ``bad_message`` (an element that is not valid OSC),
``bad_args`` (a VMC address with wrong type tags), ``nonfinite`` (NaN/inf values),
``unknown_bone`` (not a canonical bone name). Unknown addresses are ignored and counted as
``ignored`` (the VMC spec says receivers ignore them; they are not errors).
"""

from __future__ import annotations

import math
import struct
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

import numpy as np

from .errors import OSCError
from .osc import BUNDLE_TAG, IMMEDIATE, decode_message, encode_bundle, encode_message
from .skeleton import BONE_INDEX, BONES, POSE_WIDTH, canonical_to_unity

__all__ = [
    "ADDR_APPLY", "ADDR_BLEND", "ADDR_BONE", "ADDR_OK", "ADDR_ROOT", "ADDR_TIME", "DEFAULT_PORT",
    "VMCDecoder", "VMCError", "VMCPacket", "decode_packet", "encode_blendshapes", "encode_frame",
]

DEFAULT_PORT = 39539
ADDR_ROOT = "/VMC/Ext/Root/Pos"
ADDR_BONE = "/VMC/Ext/Bone/Pos"
ADDR_BLEND = "/VMC/Ext/Blend/Val"
ADDR_APPLY = "/VMC/Ext/Blend/Apply"
ADDR_TIME = "/VMC/Ext/T"
ADDR_OK = "/VMC/Ext/OK"
MAX_UDP = 65507

# Per-column sign flip: Unity left-handed <-> canonical right-handed (mirror X). Equal to
# skeleton.unity_to_canonical applied to (pos, quat); kept as one 7-vector for the hot path.
_FLIP7 = np.concatenate(canonical_to_unity(np.ones(3), np.ones(4))).astype(np.float32)
_HIPS = BONE_INDEX["Hips"]
_EXP_MASK = int(np.frombuffer(b"\x7f\x80\x00\x00", dtype=np.uint32)[0])  # float32 exponent bits, as read from big-endian bytes


class VMCError(OSCError):
    """A packet that is not usable VMC; ``reason`` is a short counter key (see module doc)."""

    def __init__(self, message: str, *, reason: str = "bad_message", hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.reason = reason


# --- decoded packet ---------------------------------------------------------------------------
@dataclass
class VMCPacket:
    """What one datagram said, in canonical space."""

    bone_index: np.ndarray  # (n,) int64 canonical bone indices, in message order
    bone_values: np.ndarray  # (n, 7) float32 canonical local pos + quat xyzw
    root: np.ndarray | None = None  # (7,) float32 canonical root pos + quat, None if not sent
    time_s: float | None = None  # /VMC/Ext/T: the sender's clock
    ok: tuple[int, ...] | None = None  # /VMC/Ext/OK arguments
    blendshapes: dict[str, float] = field(default_factory=dict)  # Blend/Val in this packet
    blend_apply: bool = False  # Blend/Apply seen
    timetag: int = IMMEDIATE  # OSC bundle time tag (1 = immediate)
    rejected: dict[str, int] = field(default_factory=dict)  # per-reason counts inside the packet
    fast: bool = False  # decoded by the template fast path
    root_name: str | None = None  # first argument of Root/Pos ("root"; our senders put the performer's name)

    @property
    def bones(self) -> dict[str, np.ndarray]:
        return {BONES[int(i)]: self.bone_values[k] for k, i in enumerate(self.bone_index)}

    @property
    def has_pose(self) -> bool:
        return self.root is not None or self.bone_index.shape[0] > 0

    def apply_to(self, pose: np.ndarray) -> np.ndarray:
        """Write this packet's bones into ``pose`` (55, 7) in place (last message wins) and
        compose the root into Hips, so ``pose`` is canonical (Hips in world space)."""
        if self.bone_index.shape[0]:
            pose[self.bone_index] = self.bone_values
        if self.root is not None:
            from .quat import multiply, rotate

            r = self.root
            if r[0] or r[1] or r[2] or r[3] or r[4] or r[5] or r[6] != 1.0:  # not the identity root
                rp, rq = r[:3].astype(np.float64), r[3:7].astype(np.float64)
                hp, hq = pose[_HIPS, :3].astype(np.float64), pose[_HIPS, 3:7].astype(np.float64)
                pose[_HIPS, :3] = rp + rotate(rq, hp)
                pose[_HIPS, 3:7] = multiply(rq, hq)
        return pose


# --- encoding ---------------------------------------------------------------------------------
class _EncodeTemplate:
    """A byte template of one frame layout; floats are written into it with numpy."""

    def __init__(self, bones: tuple[int, ...], blend_names: tuple[str, ...], with_time: bool, with_ok: bool, apply: bool, root_name: str = "root") -> None:
        parts: list[bytes] = []
        f_slots: list[tuple[str, int]] = []  # (what, count) in order
        if with_ok:
            parts.append(encode_message(ADDR_OK, (1, 3, 0, 1)))
            f_slots.append(("ok", 0))
        if with_time:
            parts.append(encode_message(ADDR_TIME, (0.0,)))
            f_slots.append(("time", 1))
        parts.append(encode_message(ADDR_ROOT, (root_name,) + (0.0,) * 7))
        f_slots.append(("root", 7))
        for b in bones:
            parts.append(encode_message(ADDR_BONE, (BONES[b],) + (0.0,) * 7))
            f_slots.append(("bone", 7))
        for n in blend_names:
            parts.append(encode_message(ADDR_BLEND, (n, 0.0)))
            f_slots.append(("blend", 1))
        if apply:
            parts.append(encode_message(ADDR_APPLY))
            f_slots.append(("apply", 0))
        packet = encode_bundle(parts)
        # Floats sit at the end of each element (all float args are trailing): compute words.
        idx: dict[str, list[int]] = {"time": [], "root": [], "bone": [], "blend": []}
        pos = 16
        for part, (what, count) in zip(parts, f_slots):
            end = pos + 4 + len(part)
            if count:
                idx[what].extend(range(end // 4 - count, end // 4))
            pos = end
        self.packet = np.frombuffer(packet, dtype=">f4").copy()
        self.time_idx = np.array(idx["time"], dtype=np.int64)
        self.root_idx = np.array(idx["root"], dtype=np.int64)
        self.bone_idx = np.array(idx["bone"], dtype=np.int64).reshape(len(bones), POSE_WIDTH)
        self.blend_idx = np.array(idx["blend"], dtype=np.int64)


_ENCODE_CACHE: "OrderedDict[tuple, _EncodeTemplate]" = OrderedDict()
_ENCODE_CACHE_MAX = 64
_ROOT_ORIGIN = np.array([0, 0, 0, 0, 0, 0, 1], dtype=np.float32)


def _bone_indices(bones: Iterable[str | int] | None) -> tuple[int, ...]:
    if bones is None:
        return tuple(range(len(BONES)))
    out = []
    for b in bones:
        if isinstance(b, (int, np.integer)):
            if not 0 <= int(b) < len(BONES):
                raise VMCError(f"bone index {b} out of range 0..{len(BONES) - 1}", reason="unknown_bone")
            out.append(int(b))
        else:
            if b not in BONE_INDEX:
                raise VMCError(f"unknown bone {b!r}", reason="unknown_bone", hint="use Unity HumanBodyBones names, e.g. 'LeftUpperArm'")
            out.append(BONE_INDEX[b])
    return tuple(out)


def encode_frame(
    pose: np.ndarray,
    *,
    blendshapes: Mapping[str, float] | None = None,
    time_s: float | None = None,
    bones: Iterable[str | int] | None = None,
    root: str = "origin",
    ok: bool = True,
    root_name: str = "root",
) -> bytes:
    """One canonical pose (55, 7) -> one VMC OSC bundle (Unity left-handed space).

    ``root_name`` is the first argument of Root/Pos (VMC receivers ignore it; machinima's
    senders put the performer's name there so a listener can tell performers apart)."""
    arr = np.asarray(pose, dtype=np.float32)
    if arr.shape != (len(BONES), POSE_WIDTH):
        raise VMCError(f"pose has shape {arr.shape}, expected ({len(BONES)}, {POSE_WIDTH})", reason="bad_args")
    if not np.isfinite(arr).all():
        raise VMCError("pose contains NaN or infinite values", reason="nonfinite")
    if root not in ("origin", "hips"):
        raise VMCError(f"root must be 'origin' or 'hips', not {root!r}", reason="bad_args")
    sel = _bone_indices(bones)
    names = tuple(blendshapes) if blendshapes else ()
    if not root_name or "\x00" in root_name:
        raise VMCError(f"root_name must be a non-empty string without NUL, not {root_name!r}", reason="bad_args")
    key = (sel, names, time_s is not None, ok, bool(names), root_name)
    tpl = _ENCODE_CACHE.get(key)
    if tpl is None:
        tpl = _EncodeTemplate(sel, names, time_s is not None, ok, bool(names), root_name)
        _ENCODE_CACHE[key] = tpl
        if len(_ENCODE_CACHE) > _ENCODE_CACHE_MAX:
            _ENCODE_CACHE.popitem(last=False)
    else:
        _ENCODE_CACHE.move_to_end(key)
    out = tpl.packet.copy()
    local = arr.copy()
    if root == "hips":
        root_vals = local[_HIPS].copy()
        local[_HIPS] = _ROOT_ORIGIN
    else:
        root_vals = _ROOT_ORIGIN
    out[tpl.root_idx] = root_vals * _FLIP7
    if sel:
        out[tpl.bone_idx] = local[list(sel)] * _FLIP7
    if time_s is not None:
        out[tpl.time_idx] = np.float32(time_s)
    if names:
        vals = np.array([float(blendshapes[n]) for n in names], dtype=np.float32)  # type: ignore[index]
        if not np.isfinite(vals).all():
            raise VMCError("blendshape values contain NaN or infinite values", reason="nonfinite")
        out[tpl.blend_idx] = vals
    return out.tobytes()


def encode_blendshapes(values: Mapping[str, float], *, apply: bool = True) -> bytes:
    """A bundle of /VMC/Ext/Blend/Val (s name, f value) per entry, then /VMC/Ext/Blend/Apply."""
    msgs = []
    for name, v in values.items():
        v = float(v)
        if not math.isfinite(v):
            raise VMCError(f"blendshape {name!r} has a non-finite value {v}", reason="nonfinite")
        msgs.append(encode_message(ADDR_BLEND, (str(name), v)))
    if apply:
        msgs.append(encode_message(ADDR_APPLY))
    return encode_bundle(msgs)


# --- decoding: structure walk -------------------------------------------------------------------
_ROOT_TAGS = (",sfffffff", ",sfffffffffffff")  # v2.1 adds scale (3f) and offset (3f)
_BONE_TAGS = ",sfffffff"
_OK_TAGS = (",i", ",iii", ",iiii")
_KNOWN = (ADDR_ROOT, ADDR_BONE, ADDR_BLEND, ADDR_APPLY, ADDR_TIME, ADDR_OK)


def _walk(data: bytes, start: int, end: int, depth: int, out: list, max_elements: int, max_depth: int) -> str | None:
    """Collect (elem_start, elem_end, timetag, depth) of the messages of a bundle.

    Returns a reason when the rest of the bundle cannot be read (elements before are kept).
    """
    (timetag,) = struct.unpack_from(">Q", data, start + 8)
    pos = start + 16
    while pos < end:
        if len(out) >= max_elements:
            return "too_many_elements"
        if pos + 4 > end:
            return "truncated"
        (n,) = struct.unpack_from(">i", data, pos)
        pos += 4
        if n <= 0 or n % 4 or pos + n > end:
            return "truncated"
        if data.startswith(BUNDLE_TAG, pos):
            if depth + 1 >= max_depth:
                return "nested"
            if n < 16:
                return "truncated"
            why = _walk(data, pos, pos + n, depth + 1, out, max_elements, max_depth)
            if why:
                return why
        else:
            out.append((pos, pos + n, timetag, depth))
        pos += n
    return None


def _arg_words(data: bytes, pos: int, tags: str) -> list[tuple[str, int]] | None:
    """Word indices of each numeric argument of a valid message whose arguments start at
    ``pos`` (None: not templatable)."""
    out: list[tuple[str, int]] = []
    for t in tags[1:]:
        if t in "if":
            out.append((t, pos // 4))
            pos += 4
        elif t in "sS":
            z = data.index(b"\x00", pos)
            pos = (z + 4) & ~3
        elif t in "TFN":
            continue
        else:
            return None  # 8-byte values, blobs, inf markers: general path only
    return out


@dataclass
class _Template:
    """The fixed words of one valid packet layout and where its values are."""

    fixed: bytes  # the template packet with every variable word zeroed
    variable: np.ndarray  # indices of the variable words (time tag, numeric arguments)
    values: np.ndarray  # word indices of bones (n*7), roots (k*7), times, blendshapes, in that order
    timetag_word: int | None
    bone_index: np.ndarray
    bone_words: np.ndarray  # (n, 7) word indices
    root_words: np.ndarray  # (k, 7): every Root/Pos, in order (the last finite one wins)
    root_names: tuple[str, ...]
    time_words: np.ndarray  # (k,): every /VMC/Ext/T, in order
    ok_words: np.ndarray | None
    blend_names: tuple[str, ...]
    blend_words: np.ndarray
    blend_apply: bool
    rejected: dict[str, int]


class VMCDecoder:
    """Sans-I/O VMC decoder with a template fast path; counts rejections by reason.

    Limits are keywords: ``max_packet_bytes`` (UDP's 65507), ``max_elements`` (messages in a
    bundle), ``max_bones`` (Bone/Pos messages in one packet), ``max_blendshapes`` (Blend/Val in
    one packet), ``max_templates`` (learned layouts kept), ``max_depth`` (bundle nesting).
    ``fast=False`` turns the template path off (for tests and the benchmark's comparison).
    """

    def __init__(
        self,
        *,
        max_packet_bytes: int = MAX_UDP,
        max_elements: int = 1024,
        max_bones: int = 256,
        max_blendshapes: int = 512,
        max_templates: int = 32,
        max_depth: int = 4,
        fast: bool = True,
    ) -> None:
        self.max_packet_bytes = max_packet_bytes
        self.max_elements = max_elements
        self.max_bones = max_bones
        self.max_blendshapes = max_blendshapes
        self.max_templates = max_templates
        self.max_depth = max_depth
        self.fast = fast
        self.rejects: Counter[str] = Counter()
        self.packets = 0
        self.fast_hits = 0
        self.applied_blendshapes: dict[str, float] = {}
        self._pending_blend: dict[str, float] = {}
        self._templates: "OrderedDict[int, list[_Template]]" = OrderedDict()
        self._n_templates = 0

    # --- public -----------------------------------------------------------------------------
    def feed(self, data: bytes) -> VMCPacket | None:
        """Decode, never raise: a bad packet returns None and is counted in ``rejects``."""
        try:
            return self.decode(data)
        except VMCError as exc:
            self.rejects[exc.reason] += 1
            return None
        except OSCError:
            self.rejects["bad_message"] += 1
            return None

    def decode(self, data: bytes) -> VMCPacket:
        """Decode one datagram; raise ``VMCError`` when nothing in it is usable VMC."""
        n = len(data)
        if n == 0:
            raise VMCError("empty packet", reason="empty")
        if n > self.max_packet_bytes:
            raise VMCError(f"packet of {n} bytes is over max_packet_bytes={self.max_packet_bytes}", reason="too_large")
        pkt = None
        if self.fast and n % 4 == 0:
            pkt = self._fast(data)
        if pkt is None:
            pkt = self._general(bytes(data))
        self.packets += 1
        for k, v in pkt.rejected.items():
            self.rejects[k] += v
        if pkt.blendshapes:
            self._pending_blend.update(pkt.blendshapes)
        if pkt.blend_apply:
            self.applied_blendshapes = dict(self._pending_blend)
        return pkt

    # --- fast path ----------------------------------------------------------------------------
    def _fast(self, data: bytes) -> VMCPacket | None:
        cands = self._templates.get(len(data))
        if not cands:
            return None
        words = np.frombuffer(data, dtype=np.uint32)
        for tpl in cands:
            probe = words.copy()
            probe[tpl.variable] = 0
            if probe.tobytes() != tpl.fixed:  # one memcmp over every fixed byte
                continue
            self.fast_hits += 1
            return self._extract(data, words, tpl)
        return None

    @staticmethod
    def _extract(data: bytes, words: np.ndarray, tpl: _Template) -> VMCPacket:
        # One gather of every value word, one byte swap.
        raw = words[tpl.values]
        allv = raw.view(">f4").astype(np.float32)
        nb = tpl.bone_index.shape[0]
        nr = tpl.root_words.shape[0]
        nt = tpl.time_words.shape[0]
        # NaN/inf have every exponent bit set: one integer mask and max, no float warnings
        clean = not raw.size or int((raw & _EXP_MASK).max()) != _EXP_MASK
        rejected = dict(tpl.rejected) if tpl.rejected else {}
        bones = allv[: nb * 7].reshape(nb, 7)
        idx = tpl.bone_index
        if not clean:
            fin = np.isfinite(bones).all(axis=1)
            if not fin.all():
                rejected["nonfinite"] = rejected.get("nonfinite", 0) + int((~fin).sum())
                bones, idx = bones[fin], idx[fin]
        vals = bones * _FLIP7
        root = None
        root_name = None
        if nr:
            roots = allv[nb * 7: (nb + nr) * 7].reshape(nr, 7)
            for r, rn in zip(roots, tpl.root_names):
                if clean or np.isfinite(r).all():
                    root = r * _FLIP7
                    root_name = rn
                else:
                    rejected["nonfinite"] = rejected.get("nonfinite", 0) + 1
        time_s = None
        for t in allv[(nb + nr) * 7: (nb + nr) * 7 + nt].tolist():
            if math.isfinite(t):
                time_s = t
            else:
                rejected["nonfinite"] = rejected.get("nonfinite", 0) + 1
        ok = None
        if tpl.ok_words is not None:
            ok = tuple(int(v) for v in words.view(">i4")[tpl.ok_words])
        blend: dict[str, float] = {}
        if tpl.blend_names:
            bv = allv[(nb + nr) * 7 + nt:].tolist()
            for name, v in zip(tpl.blend_names, bv):
                if math.isfinite(v):
                    blend[name] = v
                else:
                    rejected["nonfinite"] = rejected.get("nonfinite", 0) + 1
        timetag = IMMEDIATE
        if tpl.timetag_word is not None:
            (timetag,) = struct.unpack_from(">Q", data, tpl.timetag_word * 4)
        return VMCPacket(idx, vals, root, time_s, ok, blend, tpl.blend_apply, timetag, rejected, True, root_name)

    # --- general path -------------------------------------------------------------------------
    def _general(self, data: bytes) -> VMCPacket:
        n = len(data)
        if n % 4:
            raise VMCError(f"OSC packet of {n} bytes is not a multiple of 4", reason="not_osc")
        elems: list[tuple[int, int, int, int]] = []
        tail_reason = None
        if data.startswith(BUNDLE_TAG):
            if n < 16:
                raise VMCError("truncated OSC bundle header", reason="truncated")
            tail_reason = _walk(data, 0, n, 0, elems, self.max_elements, self.max_depth)
            if tail_reason in ("too_many_elements", "nested") or (tail_reason and not elems):
                raise VMCError(f"bundle rejected: {tail_reason}", reason=tail_reason)
        elif data.startswith(b"/"):
            elems.append((0, n, IMMEDIATE, 0))
        else:
            raise VMCError("not an OSC message or bundle", reason="not_osc")

        rejected: Counter[str] = Counter()
        if tail_reason:
            rejected[tail_reason] += 1
        bone_idx: list[int] = []
        bone_vals: list[tuple] = []
        root = None
        time_s = None
        ok = None
        blend: dict[str, float] = {}
        apply = False
        timetag = elems[0][2] if elems else IMMEDIATE
        # Template bookkeeping (only for a clean, flat, fully numeric-argument packet).
        templatable = self.fast and not tail_reason and all(d == 0 for *_, d in elems)
        fixed_ok = templatable
        t_bone_words: list[list[int]] = []
        t_bone_index: list[int] = []
        t_root: list[list[int]] = []
        t_root_names: list[str] = []
        root_name = None
        t_time: list[int] = []
        t_ok = None
        t_blend_names: list[str] = []
        t_blend_words: list[int] = []
        t_variable: list[int] = []
        t_rejected: Counter[str] = Counter()
        n_bones = 0
        n_blend = 0
        for s, e, _tt, _d in elems:
            try:
                msg = decode_message(data[s:e])
            except OSCError:
                rejected["bad_message"] += 1
                fixed_ok = False
                continue
            addr = msg.address
            args = msg.args
            tags, args_at = _raw_tags(data, s, e)
            if fixed_ok:
                words = _arg_words(data, args_at, tags)
                if words is None:
                    fixed_ok = False
                else:
                    t_variable.extend(w for _, w in words)
            if addr == ADDR_BONE:
                n_bones += 1
                if n_bones > self.max_bones:
                    raise VMCError(f"more than max_bones={self.max_bones} bone messages in one packet", reason="too_many_bones")
                if tags != _BONE_TAGS:
                    rejected["bad_args"] += 1
                    t_rejected["bad_args"] += 1
                    continue
                b = BONE_INDEX.get(args[0])
                if b is None:
                    rejected["unknown_bone"] += 1
                    t_rejected["unknown_bone"] += 1
                    continue
                if fixed_ok:
                    t_bone_words.append([w for _, w in words[:7]])  # type: ignore[index]
                    t_bone_index.append(b)
                v = args[1:8]
                if not all(math.isfinite(x) for x in v):
                    rejected["nonfinite"] += 1
                    continue
                bone_idx.append(b)
                bone_vals.append(v)
            elif addr == ADDR_ROOT:
                if tags not in _ROOT_TAGS:
                    rejected["bad_args"] += 1
                    t_rejected["bad_args"] += 1
                    continue
                if fixed_ok:
                    t_root.append([w for _, w in words[:7]])  # type: ignore[index]
                    t_root_names.append(args[0])
                v = args[1:8]
                if not all(math.isfinite(x) for x in v):
                    rejected["nonfinite"] += 1
                    continue
                root = v
                root_name = args[0]
            elif addr == ADDR_BLEND:
                n_blend += 1
                if n_blend > self.max_blendshapes:
                    raise VMCError(f"more than max_blendshapes={self.max_blendshapes} blendshape messages in one packet", reason="too_many_blendshapes")
                if tags != ",sf":
                    rejected["bad_args"] += 1
                    t_rejected["bad_args"] += 1
                    continue
                if fixed_ok:
                    t_blend_names.append(args[0])
                    t_blend_words.append(words[0][1])  # type: ignore[index]
                if not math.isfinite(args[1]):
                    rejected["nonfinite"] += 1
                    continue
                blend[args[0]] = float(args[1])
            elif addr == ADDR_APPLY:
                apply = True
            elif addr == ADDR_TIME:
                if tags != ",f":
                    rejected["bad_args"] += 1
                    t_rejected["bad_args"] += 1
                    continue
                if fixed_ok:
                    t_time.append(words[0][1])  # type: ignore[index]
                if not math.isfinite(args[0]):
                    rejected["nonfinite"] += 1
                    continue
                time_s = float(args[0])
            elif addr == ADDR_OK:
                if tags not in _OK_TAGS:
                    rejected["bad_args"] += 1
                    t_rejected["bad_args"] += 1
                    continue
                if fixed_ok:
                    t_ok = [w for _, w in words]  # type: ignore[union-attr]
                ok = tuple(args)
            else:
                rejected["ignored"] += 1
                t_rejected["ignored"] += 1
        if not bone_idx:
            bi = np.zeros((0,), dtype=np.int64)
            bv = np.zeros((0, POSE_WIDTH), dtype=np.float32)
        else:
            bi = np.array(bone_idx, dtype=np.int64)
            bv = (np.array(bone_vals, dtype=np.float32) * _FLIP7).astype(np.float32)
        root_arr = (np.array(root, dtype=np.float32) * _FLIP7).astype(np.float32) if root is not None else None
        if fixed_ok and elems:
            self._learn(data, elems, t_variable, t_bone_index, t_bone_words, (t_root, t_root_names), t_time, t_ok, t_blend_names, t_blend_words, apply, dict(t_rejected))
        return VMCPacket(bi, bv, root_arr, time_s, ok, blend, apply, timetag, dict(rejected), False, root_name)

    def _learn(self, data, elems, variable, bone_index, bone_words, roots, time_w, ok_w, blend_names, blend_words, apply, rejected) -> None:
        root, root_names = roots
        words = np.frombuffer(data, dtype=np.uint32)
        mask = np.full(words.shape, 0xFFFFFFFF, dtype=np.uint32)
        is_bundle = data.startswith(BUNDLE_TAG)
        if is_bundle:
            mask[2:4] = 0  # the time tag varies
        if variable:
            mask[np.array(variable, dtype=np.int64)] = 0
        bw = np.array(bone_words, dtype=np.int64).reshape(len(bone_index), POSE_WIDTH)
        rw = np.array(root, dtype=np.int64).reshape(len(root), POSE_WIDTH)
        tw = np.array(time_w, dtype=np.int64)
        blw = np.array(blend_words, dtype=np.int64)
        tpl = _Template(
            fixed=(words & mask).tobytes(),
            variable=np.where(mask == 0)[0],
            values=np.concatenate([bw.ravel(), rw.ravel(), tw, blw]).astype(np.int64),
            timetag_word=2 if is_bundle else None,
            bone_index=np.array(bone_index, dtype=np.int64),
            bone_words=np.array(bone_words, dtype=np.int64).reshape(len(bone_index), POSE_WIDTH),
            root_words=np.array(root, dtype=np.int64).reshape(len(root), POSE_WIDTH),
            root_names=tuple(root_names),
            time_words=np.array(time_w, dtype=np.int64),
            ok_words=np.array(ok_w, dtype=np.int64) if ok_w is not None else None,
            blend_names=tuple(blend_names),
            blend_words=np.array(blend_words, dtype=np.int64),
            blend_apply=apply,
            rejected=rejected,
        )
        bucket = self._templates.setdefault(len(data), [])
        self._templates.move_to_end(len(data))
        bucket.insert(0, tpl)
        self._n_templates += 1
        while self._n_templates > self.max_templates:
            key, old = next(iter(self._templates.items()))
            old.pop()
            self._n_templates -= 1
            if not old:
                del self._templates[key]


def _raw_tags(data: bytes, s: int, e: int) -> tuple[str, int]:
    """The type tag string of a message already validated by ``decode_message`` and the
    offset of its first argument (a message without a tag string has tags ',')."""
    z = data.index(b"\x00", s)
    pos = (z + 4) & ~3
    if pos >= e:
        return ",", pos
    z2 = data.index(b"\x00", pos)
    return data[pos:z2].decode("utf-8"), (z2 + 4) & ~3


def decode_packet(data: bytes, **limits) -> VMCPacket:
    """Decode one datagram with a fresh decoder (no template learning across calls)."""
    return VMCDecoder(fast=False, **limits).decode(data)

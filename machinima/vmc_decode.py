"""VMC decoding, sans-I/O: one datagram in, one ``VMCPacket`` out (``machinima.vmc`` re-exports
everything here; see its docstring for the whole public API).

Three paths give the same packet for the same bytes (fuzz-tested against each other and
against python-osc in tests/mocap/test_mocap_vmc_fuzz.py):

* **template path** (bundles): senders repeat the same bundle layout every frame, so a valid
  layout is learned once: its fixed words (addresses, type tags, names, sizes) and where its
  values are. A packet of the same length is checked against the template with one integer
  ufunc over its words (every fixed word equal), its values are gathered with one fancy index,
  mirrored with one multiply and checked finite with one sum.
* **single-message path**: ``/VMC/Ext/Bone/Pos``, ``/Root/Pos``, ``/Blend/Val`` and ``/T`` sent
  one message per datagram (what senders without bundles do, dozens of times a frame) are read
  with one ``struct`` call when they have exactly the canonical layout.
* **general path**: anything else, element by element with ``machinima.osc.decode_message``; a
  bad element is counted and skipped, its valid neighbours kept.

Each packet also says which *parts of a frame* it carries (``keys``: canonical bone indices,
``KEY_ROOT``, ``KEY_TIME``, ``KEY_OK``, ``KEY_APPLY`` and blendshape names): the frame
assembler (``machinima.vmc_frames``) uses them to find where one frame ends.
"""

from __future__ import annotations

import math
import struct
from collections import Counter, OrderedDict
from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping

import numpy as np

from .errors import OSCError
from .osc import BUNDLE_TAG, IMMEDIATE, decode_message, encode_message
from .skeleton import BONE_INDEX, BONES, POSE_WIDTH
from .vmc import ADDR_APPLY, ADDR_BLEND, ADDR_BONE, ADDR_OK, ADDR_ROOT, ADDR_TIME, FLIP7, MAX_UDP, VMCError

__all__ = ["KEY_APPLY", "KEY_OK", "KEY_ROOT", "KEY_TIME", "VMCDecoder", "VMCPacket", "decode_packet"]

# Frame-part keys that are not bones (bones are their canonical index 0..54, blendshapes their name).
KEY_ROOT, KEY_TIME, KEY_OK, KEY_APPLY = -1, -2, -3, -4
_BONE_KEYS = tuple(frozenset((i,)) for i in range(len(BONES)))
_ROOT_KEYS = frozenset((KEY_ROOT,))
_TIME_KEYS = frozenset((KEY_TIME,))
_EMPTY: Mapping[str, float] = MappingProxyType({})
_HIPS = BONE_INDEX["Hips"]
_NO_BONES = np.zeros((0,), dtype=np.int64)
_NO_VALUES = np.zeros((0, POSE_WIDTH), dtype=np.float32)


class VMCPacket:
    """What one datagram said, in canonical space.

    ``bone_index`` (n,) canonical indices in message order, ``bone_values`` (n, 7) canonical
    local pos + quat xyzw, ``root`` (7,) or None, ``time_s`` (/VMC/Ext/T), ``ok`` (/VMC/Ext/OK
    arguments), ``blendshapes`` (Blend/Val in this packet), ``blend_apply``, ``timetag`` (1 =
    immediate), ``rejected`` (per-reason counts inside the packet), ``fast`` (not the general
    path), ``root_name`` (first argument of Root/Pos), ``keys`` (the frame parts it carries),
    ``lead`` / ``trail`` (a T or OK stands before / after all of its pose and blendshape
    messages: the packet starts / ends a frame).
    """

    __slots__ = ("_bone_index", "_bone_values", "one", "root", "time_s", "ok", "blendshapes", "blend_apply", "timetag", "rejected", "fast", "root_name",
                 "keys", "lead", "trail", "part")

    def __init__(self, bone_index: np.ndarray | None, bone_values: np.ndarray | None, root: np.ndarray | None = None, time_s: float | None = None,
                 ok: tuple[int, ...] | None = None, blendshapes: Mapping[str, float] = _EMPTY, blend_apply: bool = False,
                 timetag: int = IMMEDIATE, rejected: Mapping[str, int] = _EMPTY, fast: bool = False, root_name: str | None = None,
                 keys: frozenset = frozenset(), lead: bool = False, trail: bool = False, one: tuple | None = None) -> None:
        self._bone_index = bone_index
        self._bone_values = bone_values
        self.one = one  # (bone index, 7 canonical floats): a single Bone/Pos message, arrays made on demand
        self.root = root
        self.time_s = time_s
        self.ok = ok
        self.blendshapes = blendshapes
        self.blend_apply = blend_apply
        self.timetag = timetag
        self.rejected = rejected
        self.fast = fast
        self.root_name = root_name
        self.keys = keys
        self.lead = lead
        self.trail = trail
        self.part = None  # the template it matched (template path only): lets a batch replay a frame's layout

    @property
    def bone_index(self) -> np.ndarray:
        if self._bone_index is None:
            self._bone_index = np.array((self.one[0],), dtype=np.int64) if self.one else _NO_BONES
        return self._bone_index

    @property
    def bone_values(self) -> np.ndarray:
        if self._bone_values is None:
            self._bone_values = np.array((self.one[1],), dtype=np.float32) if self.one else _NO_VALUES
        return self._bone_values

    def __repr__(self) -> str:
        return f"VMCPacket(bones={len(self.bone_index)}, root={self.root is not None}, time_s={self.time_s}, blend={len(self.blendshapes)}, fast={self.fast})"

    @property
    def bones(self) -> dict[str, np.ndarray]:
        return {BONES[int(i)]: self.bone_values[k] for k, i in enumerate(self.bone_index)}

    @property
    def has_pose(self) -> bool:
        return self.root is not None or self.one is not None or self.bone_index.shape[0] > 0

    def apply_to(self, pose: np.ndarray) -> np.ndarray:
        """Write this packet's bones into ``pose`` (55, 7) in place (last message wins) and
        compose the root into Hips. Right for a sender whose every packet is a whole frame;
        frames split over datagrams or sent message by message need ``VMCAssembler``, which
        keeps Root and Hips apart as the protocol does."""
        if self.bone_index.shape[0]:
            pose[self.bone_index] = self.bone_values
        if self.root is not None and (self.root != (0, 0, 0, 0, 0, 0, 1)).any():
            compose_root(self.root, pose)
        return pose


def compose_root(root: np.ndarray, pose: np.ndarray) -> None:
    """Hips (local to the avatar root) -> Hips in world space, in place: the canonical pose.
    Plain float arithmetic: it runs once per frame, where numpy's per-call cost would dominate."""
    h = _HIPS
    rx, ry, rz, qx, qy, qz, qw = root.tolist()
    hx, hy, hz, bx, by, bz, bw = pose[h].tolist()
    # rotate (hx, hy, hz) by q: v + 2w (u x v) + 2 u x (u x v)
    tx, ty, tz = 2 * (qy * hz - qz * hy), 2 * (qz * hx - qx * hz), 2 * (qx * hy - qy * hx)
    px = hx + qw * tx + (qy * tz - qz * ty)
    py = hy + qw * ty + (qz * tx - qx * tz)
    pz = hz + qw * tz + (qx * ty - qy * tx)
    pose[h] = (rx + px, ry + py, rz + pz,
               qw * bx + qx * bw + qy * bz - qz * by,
               qw * by - qx * bz + qy * bw + qz * bx,
               qw * bz + qx * by - qy * bx + qz * bw,
               qw * bw - qx * bx - qy * by - qz * bz)


# --- structure walk -----------------------------------------------------------------------------
_ROOT_TAGS = (",sfffffff", ",sfffffffffffff")  # v2.1 adds scale (3f) and offset (3f)
_BONE_TAGS = ",sfffffff"
_OK_TAGS = (",i", ",iii", ",iiii")


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


def _raw_tags(data: bytes, s: int, e: int) -> tuple[str, int]:
    """The type tag string of a message already validated by ``decode_message`` and the
    offset of its first argument (a message without a tag string has tags ',')."""
    z = data.index(b"\x00", s)
    pos = (z + 4) & ~3
    if pos >= e:
        return ",", pos
    z2 = data.index(b"\x00", pos)
    return data[pos:z2].decode("utf-8"), (z2 + 4) & ~3


# --- template (fast) path -----------------------------------------------------------------------
# A packet matches a template when every fixed word is equal: (words & mask) == expected, mask
# zero on every numeric argument and the time tag. Its values must then be finite: one float64
# sum over the gathered values is non-finite exactly when one of them is NaN or inf.
_ALL_BONES = np.arange(len(BONES), dtype=np.int64)  # a template sending every bone in order shares this


@dataclass
class _Template:
    """One valid packet layout: its check mask and where its values are."""

    mask: np.ndarray
    expected: bytes
    expected_words: np.ndarray  # the same as uint32 words (batched checks)
    values: np.ndarray  # word indices of bones (n*7), roots (k*7), times, blendshapes, in that order
    flip: np.ndarray  # per value: the Unity -> canonical mirror for bones and roots, 1 otherwise
    timetag_word: int | None
    bone_index: np.ndarray
    n_roots: int
    root_names: tuple[str, ...]
    n_times: int
    ok_at: tuple[struct.Struct, int] | None  # the OK integers: consecutive words
    blend_names: tuple[str, ...]
    blend_apply: bool
    rejected: Mapping[str, int]
    keys: frozenset
    lead: bool
    trail: bool


# --- single-message path -----------------------------------------------------------------------
_PREFIX_BONE = encode_message(ADDR_BONE, ("", 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0))[:32]
_PREFIX_ROOT = encode_message(ADDR_ROOT, ("", 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0))[:32]
_PREFIX_BLEND = encode_message(ADDR_BLEND, ("", 0.0))[:24]
_MSG_TIME = encode_message(ADDR_TIME, (0.0,))[:-4]
_BONE_BY_BYTES = {name.encode("ascii"): i for i, name in enumerate(BONES)}
_UNPACK7 = struct.Struct(">7f").unpack_from
_UNPACK1 = struct.Struct(">f").unpack_from
assert tuple(FLIP7.tolist()) == (-1, 1, 1, 1, -1, -1, 1)  # the mirror the single-message path writes out


def _name_end(data: bytes, start: int, n: int, tail: int) -> int:
    """Offset of the values after a padded name at ``start`` when the message has exactly the
    canonical layout (``tail`` value bytes after the name), else -1."""
    z = data.find(b"\x00", start)
    if z <= start:
        return -1
    end = (z + 4) & ~3
    if end + tail != n or data[z:end].strip(b"\x00"):
        return -1
    return end


def _named(data: bytes, start: int, n: int, tail: int) -> tuple[str, int] | None:
    """(the UTF-8 name at ``start``, offset of the values) of a canonical single message."""
    end = _name_end(data, start, n, tail)
    if end < 0:
        return None
    try:
        return bytes(data[start:data.index(b"\x00", start)]).decode("utf-8"), end
    except UnicodeDecodeError:
        return None


class VMCDecoder:
    """Sans-I/O VMC decoder with a template fast path; counts rejections by reason.

    Limits are keywords: ``max_packet_bytes`` (UDP's 65507), ``max_elements`` (messages in a
    bundle), ``max_bones`` (Bone/Pos messages in one packet), ``max_blendshapes`` (Blend/Val in
    one packet), ``max_templates`` (learned layouts kept), ``max_depth`` (bundle nesting).
    ``fast=False`` turns the template and single-message paths off (tests, the benchmark).
    ``applied_blendshapes``: the state committed by the last Blend/Apply (per decoder, i.e.
    per sender).
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
        if self.fast and not n & 3:
            first = data[0]
            if first == 35:  # '#': a bundle
                cands = self._templates.get(n)
                if cands:
                    pkt = self._fast(data, cands)
            elif first == 47:  # '/': a message
                pkt = self._single(data, n)
        if pkt is None:
            pkt = self._general(bytes(data))
        self.packets += 1
        if pkt.rejected:
            for k, v in pkt.rejected.items():
                self.rejects[k] += v
        if pkt.blendshapes:
            self._pending_blend.update(pkt.blendshapes)
        if pkt.blend_apply:
            self.applied_blendshapes = dict(self._pending_blend)
        return pkt

    # --- fast paths ---------------------------------------------------------------------------
    def _fast(self, data: bytes, cands: list[_Template]) -> VMCPacket | None:
        words = np.frombuffer(data, dtype=np.uint32)
        for tpl in cands:
            if np.bitwise_and(words, tpl.mask).tobytes() != tpl.expected:  # a fixed word differs
                continue
            vals = np.multiply(np.frombuffer(data, dtype=">f4").take(tpl.values), tpl.flip)  # one gather, one mirror
            if not math.isfinite(vals.sum(dtype=np.float64)):  # float64: no overflow of huge finite values
                return None  # NaN or inf somewhere: the general path counts and skips them
            self.fast_hits += 1
            return self._extract(data, vals, tpl)
        return None

    @staticmethod
    def _extract(data: bytes, vals: np.ndarray, tpl: _Template) -> VMCPacket:
        nb = tpl.bone_index.shape[0]
        at = nb * 7
        root = None
        root_name = None
        if tpl.n_roots:  # the last one wins
            at += tpl.n_roots * 7
            root = vals[at - 7:at]
            root_name = tpl.root_names[-1]
        time_s = None
        if tpl.n_times:
            at += tpl.n_times
            time_s = float(vals[at - 1])
        ok = None
        if tpl.ok_at is not None:
            ok = tpl.ok_at[0].unpack_from(data, tpl.ok_at[1])
        blend: Mapping[str, float] = _EMPTY
        if tpl.blend_names:
            blend = dict(zip(tpl.blend_names, vals[at:].tolist()))
        timetag = IMMEDIATE
        if tpl.timetag_word is not None:
            (timetag,) = struct.unpack_from(">Q", data, tpl.timetag_word * 4)
        pkt = VMCPacket(tpl.bone_index, vals[:nb * 7].reshape(nb, 7), root, time_s, ok, blend, tpl.blend_apply, timetag,
                        tpl.rejected, True, root_name, tpl.keys, tpl.lead, tpl.trail)
        pkt.part = tpl
        return pkt

    def _single(self, data: bytes, n: int) -> VMCPacket | None:
        """One message with exactly the canonical layout of Bone/Pos, Root/Pos, Blend/Val or T."""
        if data.startswith(_PREFIX_BONE):
            end = _name_end(data, 32, n, 28)
            if end < 0:
                return None
            b = _BONE_BY_BYTES.get(bytes(data[32:data.index(b"\x00", 32)]))
            if b is None:
                return None  # unknown bone: the general path counts it
            v = _UNPACK7(data, end)
            if not math.isfinite(v[0] + v[1] + v[2] + v[3] + v[4] + v[5] + v[6]):
                return None
            self.fast_hits += 1
            return VMCPacket(None, None, fast=True, keys=_BONE_KEYS[b], one=(b, (-v[0], v[1], v[2], v[3], -v[4], -v[5], v[6])))
        if data.startswith(_PREFIX_ROOT):
            named = _named(data, 32, n, 28)
            if named is None:
                return None
            name, end = named
            v = _UNPACK7(data, end)
            if not math.isfinite(v[0] + v[1] + v[2] + v[3] + v[4] + v[5] + v[6]):
                return None
            self.fast_hits += 1
            return VMCPacket(_NO_BONES, _NO_VALUES, np.array(v, dtype=np.float32) * FLIP7, fast=True, root_name=name, keys=_ROOT_KEYS)
        if data.startswith(_PREFIX_BLEND):
            named = _named(data, 24, n, 4)
            if named is None:
                return None
            name, end = named
            (v,) = _UNPACK1(data, end)
            if not math.isfinite(v):
                return None
            self.fast_hits += 1
            return VMCPacket(_NO_BONES, _NO_VALUES, blendshapes={name: v}, fast=True, keys=frozenset((name,)))
        if n == len(_MSG_TIME) + 4 and data.startswith(_MSG_TIME):
            (v,) = _UNPACK1(data, n - 4)
            if not math.isfinite(v):
                return None
            self.fast_hits += 1
            return VMCPacket(_NO_BONES, _NO_VALUES, time_s=v, fast=True, keys=_TIME_KEYS)
        return None

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
        keys: set = set()
        timetag = elems[0][2] if elems else IMMEDIATE
        # Template bookkeeping (only for a clean, flat, fully numeric-argument bundle).
        fixed_ok = self.fast and not tail_reason and data.startswith(BUNDLE_TAG) and all(d == 0 for *_, d in elems)
        lay = _Layout()
        root_name = None
        n_bones = 0
        n_blend = 0
        content: list[int] = []  # element numbers of pose / blendshape messages
        markers: list[int] = []  # element numbers of T / OK
        for i, (s, e, _tt, _d) in enumerate(elems):
            try:
                msg = decode_message(data[s:e])
            except OSCError:
                rejected["bad_message"] += 1
                fixed_ok = False
                continue
            addr = msg.address
            args = msg.args
            tags, args_at = _raw_tags(data, s, e)
            words = None
            if fixed_ok:
                words = _arg_words(data, args_at, tags)
                if words is None:
                    fixed_ok = False
                else:
                    lay.ints.extend(w for t, w in words if t == "i")
                    lay.floats_any.extend(w for t, w in words if t == "f")
            if addr == ADDR_BONE:
                n_bones += 1
                if n_bones > self.max_bones:
                    raise VMCError(f"more than max_bones={self.max_bones} bone messages in one packet", reason="too_many_bones")
                if tags != _BONE_TAGS:
                    rejected["bad_args"] += 1
                    lay.rejected["bad_args"] += 1
                    continue
                b = BONE_INDEX.get(args[0])
                if b is None:
                    rejected["unknown_bone"] += 1
                    lay.rejected["unknown_bone"] += 1
                    continue
                if words is not None:
                    lay.bone_words.append([w for _, w in words[:7]])
                    lay.bone_index.append(b)
                v = args[1:8]
                if not all(math.isfinite(x) for x in v):
                    rejected["nonfinite"] += 1
                    continue
                bone_idx.append(b)
                bone_vals.append(v)
                keys.add(b)
                content.append(i)
            elif addr == ADDR_ROOT:
                if tags not in _ROOT_TAGS:
                    rejected["bad_args"] += 1
                    lay.rejected["bad_args"] += 1
                    continue
                if words is not None:
                    lay.root_words.append([w for _, w in words[:7]])
                    lay.root_names.append(args[0])
                v = args[1:8]
                if not all(math.isfinite(x) for x in v):
                    rejected["nonfinite"] += 1
                    continue
                root = v
                root_name = args[0]
                keys.add(KEY_ROOT)
                content.append(i)
            elif addr == ADDR_BLEND:
                n_blend += 1
                if n_blend > self.max_blendshapes:
                    raise VMCError(f"more than max_blendshapes={self.max_blendshapes} blendshape messages in one packet", reason="too_many_blendshapes")
                if tags != ",sf":
                    rejected["bad_args"] += 1
                    lay.rejected["bad_args"] += 1
                    continue
                if words is not None:
                    lay.blend_names.append(args[0])
                    lay.blend_words.append(words[0][1])
                if not math.isfinite(args[1]):
                    rejected["nonfinite"] += 1
                    continue
                blend[args[0]] = float(args[1])
                keys.add(args[0])
                content.append(i)
            elif addr == ADDR_APPLY:
                apply = True
                keys.add(KEY_APPLY)
                content.append(i)
            elif addr == ADDR_TIME:
                if tags != ",f":
                    rejected["bad_args"] += 1
                    lay.rejected["bad_args"] += 1
                    continue
                if words is not None:
                    lay.time_words.append(words[0][1])
                if not math.isfinite(args[0]):
                    rejected["nonfinite"] += 1
                    continue
                time_s = float(args[0])
                keys.add(KEY_TIME)
                markers.append(i)
            elif addr == ADDR_OK:
                if tags not in _OK_TAGS:
                    rejected["bad_args"] += 1
                    lay.rejected["bad_args"] += 1
                    continue
                if words is not None:
                    lay.ok_words = [w for _, w in words]
                ok = tuple(args)
                keys.add(KEY_OK)
                markers.append(i)
            else:
                rejected["ignored"] += 1
                lay.rejected["ignored"] += 1
        if not bone_idx:
            bi, bv = _NO_BONES, _NO_VALUES
        else:
            bi = np.array(bone_idx, dtype=np.int64)
            bv = (np.array(bone_vals, dtype=np.float32) * FLIP7).astype(np.float32)
        root_arr = (np.array(root, dtype=np.float32) * FLIP7).astype(np.float32) if root is not None else None
        frozen = frozenset(keys)
        lead = bool(content and markers and markers[0] < content[0])
        trail = bool(content and markers and markers[-1] > content[-1])
        if fixed_ok and elems and not rejected.get("nonfinite"):
            lay.apply = apply
            lay.keys = frozen
            lay.lead, lay.trail = lead, trail
            self._learn(data, lay)
        return VMCPacket(bi, bv, root_arr, time_s, ok, blend, apply, timetag, dict(rejected), False, root_name, frozen, lead, trail)

    def _learn(self, data: bytes, lay: "_Layout") -> None:
        words = np.frombuffer(data, dtype=np.uint32)
        mask = np.full(words.shape[0], 0xFFFFFFFF, dtype=np.uint32)
        mask[np.array(lay.floats_any + lay.ints + [2, 3], dtype=np.int64)] = 0  # numbers and the bundle's time tag vary
        nb, nr = len(lay.bone_index), len(lay.root_words)
        bone_index = np.array(lay.bone_index, dtype=np.int64)
        if bone_index.shape == _ALL_BONES.shape and (bone_index == _ALL_BONES).all():
            bone_index = _ALL_BONES
        ok_at = None
        if lay.ok_words is not None:
            ok_at = (struct.Struct(f">{len(lay.ok_words)}i"), lay.ok_words[0] * 4)
        values = np.concatenate([
            np.array(lay.bone_words, dtype=np.int64).reshape(nb * 7), np.array(lay.root_words, dtype=np.int64).reshape(nr * 7),
            np.array(lay.time_words, dtype=np.int64), np.array(lay.blend_words, dtype=np.int64),
        ]).astype(np.int64)
        flip = np.ones(values.shape[0], dtype=np.float32)
        flip[: (nb + nr) * 7] = np.tile(FLIP7, nb + nr)
        tpl = _Template(
            mask=mask, expected=(words & mask).tobytes(), expected_words=words & mask, values=values, flip=flip, timetag_word=2,
            bone_index=bone_index, n_roots=nr, root_names=tuple(lay.root_names),
            n_times=len(lay.time_words), ok_at=ok_at,
            blend_names=tuple(lay.blend_names), blend_apply=lay.apply, rejected=MappingProxyType(dict(lay.rejected)), keys=lay.keys,
            lead=lay.lead, trail=lay.trail,
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


class _Layout:
    """What the general path noted about a bundle's words, to learn a template from it."""

    def __init__(self) -> None:
        self.ints: list[int] = []
        self.floats_any: list[int] = []
        self.bone_index: list[int] = []
        self.bone_words: list[list[int]] = []
        self.root_words: list[list[int]] = []
        self.root_names: list[str] = []
        self.time_words: list[int] = []
        self.ok_words: list[int] | None = None
        self.blend_names: list[str] = []
        self.blend_words: list[int] = []
        self.rejected: Counter[str] = Counter()
        self.apply = False
        self.keys: frozenset = frozenset()
        self.lead = False
        self.trail = False


def decode_packet(data: bytes, **limits) -> VMCPacket:
    """Decode one datagram with a fresh decoder (no template learning across calls)."""
    return VMCDecoder(fast=False, **limits).decode(data)

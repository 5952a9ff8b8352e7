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
from types import MappingProxyType
from typing import Mapping

import numpy as np

from .errors import OSCError
from .osc import BUNDLE_TAG, IMMEDIATE, decode_message
from .skeleton import BONE_INDEX
from .vmc import ADDR_APPLY, ADDR_BLEND, ADDR_BONE, ADDR_OK, ADDR_ROOT, ADDR_TIME, FLIP7, MAX_UDP, VMCError
from .vmc_packet import (  # noqa: F401 (re-exported: the public names stay importable from here)
    _BONE_KEYS, _EMPTY, _HIPS, _NO_BONES, _NO_VALUES, _ROOT_KEYS, _TIME_KEYS, KEY_APPLY, KEY_OK, KEY_ROOT, KEY_TIME, VMCPacket, compose_root,
)
from .vmc_layout import (  # noqa: F401
    _ALL_BONES, _BONE_BY_BYTES, _BONE_TAGS, _Layout, _MSG_TIME, _OK_TAGS, _PREFIX_BLEND, _PREFIX_BONE, _PREFIX_ROOT, _ROOT_TAGS, _Template, _UNPACK1, _UNPACK7, _arg_words, _name_end, _named, _raw_tags, _walk,
)

# /VMC/Ext/OK as one message: (length, the type tags as padded) -> the ints' unpacker
_PREFIX_OK = b"/VMC/Ext/OK\x00"
_OK_SINGLE = {(20, b",i\x00\x00"): struct.Struct(">i"), (32, b",iii\x00\x00\x00\x00"): struct.Struct(">3i"),
              (36, b",iiii\x00\x00\x00"): struct.Struct(">4i")}
_OK_INTS = {n: st.size for (n, _), st in _OK_SINGLE.items()}
_OK_KEYS = frozenset((KEY_OK,))

__all__ = ["KEY_APPLY", "KEY_OK", "KEY_ROOT", "KEY_TIME", "VMCDecoder", "VMCPacket", "decode_packet"]


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
        if data.startswith(_PREFIX_OK):  # /VMC/Ext/OK with 1, 3 or 4 ints (once a frame from senders without bundles)
            ints = _OK_SINGLE.get((n, bytes(data[12:n - _OK_INTS[n]])) if n in _OK_INTS else None)
            if ints is None:
                return None
            self.fast_hits += 1
            return VMCPacket(_NO_BONES, _NO_VALUES, ok=ints.unpack_from(data, n - ints.size), fast=True, keys=_OK_KEYS)
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


def decode_packet(data: bytes, **limits) -> VMCPacket:
    """Decode one datagram with a fresh decoder (no template learning across calls)."""
    return VMCDecoder(fast=False, **limits).decode(data)

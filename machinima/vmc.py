"""VMC protocol (Virtual Motion Capture over OSC), sans-I/O: poses <-> packet bytes, and
datagrams -> whole frames.

Shared by mocap (listeners), the engine bridge (senders), lip sync (blendshapes), the stage's
local sources and the Blender live preview. It never touches a socket: callers own their
sockets and pass bytes in and out. Three modules, one API (everything is importable from here):

* ``machinima.vmc`` (this file): addresses, ``VMCError``, encoding.
* ``machinima.vmc_decode``: one datagram -> ``VMCPacket`` (template, single-message and
  general paths, all giving the same packet).
* ``machinima.vmc_frames``: packets -> frames (``VMCAssembler``): a frame may come in one
  bundle, in a bundle split over several datagrams, or one message per datagram.

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
    pkt.keys                    # the frame parts it carries (bone indices, KEY_ROOT, KEY_TIME...)
    pkt.apply_to(pose)          # a whole-frame packet into a (55, 7) pose (root composed into Hips)
    dec.applied_blendshapes     # blendshape state committed by the last Blend/Apply
    decode_packet(data)         # one-shot helper with a fresh decoder

Frames (see ``machinima.vmc_frames``)::

    asm = VMCAssembler(idle_ms=50, history=4)
    frames = asm.feed(pkt, t_recv_ns)   # -> [VMCFrame]: pose (55, 7), root, time_s, t_recv_ns, blendshapes
    frames = asm.poll(now_ns)           # the pending frame once the sender has been quiet idle_ms
    frames = asm.flush()                # stream end: the last frame

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
from collections import OrderedDict
from typing import Any, Iterable, Mapping

import numpy as np

from .errors import OSCError
from .osc import encode_bundle, encode_message
from .skeleton import BONE_INDEX, BONES, POSE_WIDTH, canonical_to_unity

__all__ = [
    "ADDR_APPLY", "ADDR_BLEND", "ADDR_BONE", "ADDR_OK", "ADDR_ROOT", "ADDR_TIME", "DEFAULT_PORT", "FLIP7",
    "KEY_APPLY", "KEY_OK", "KEY_ROOT", "KEY_TIME", "VMCAssembler", "VMCDecoder", "VMCError", "VMCFrame", "VMCPacket",
    "decode_packet", "encode_blendshapes", "encode_frame",
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
FLIP7 = np.concatenate(canonical_to_unity(np.ones(3), np.ones(4))).astype(np.float32)
_FLIP7 = FLIP7
_HIPS = BONE_INDEX["Hips"]

_DECODE_NAMES = {"VMCDecoder", "VMCPacket", "decode_packet", "KEY_ROOT", "KEY_TIME", "KEY_OK", "KEY_APPLY", "compose_root"}
_FRAME_NAMES = {"VMCAssembler", "VMCFrame"}


def __getattr__(name: str) -> Any:
    """The decoder and the assembler live in their own modules (imported when first used)."""
    if name in _DECODE_NAMES:
        from . import vmc_decode

        return getattr(vmc_decode, name)
    if name in _FRAME_NAMES:
        from . import vmc_frames

        return getattr(vmc_frames, name)
    raise AttributeError(f"module 'machinima.vmc' has no attribute {name!r}")


class VMCError(OSCError):
    """A packet that is not usable VMC; ``reason`` is a short counter key (see module doc)."""

    def __init__(self, message: str, *, reason: str = "bad_message", hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.reason = reason


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

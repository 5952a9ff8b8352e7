"""What one VMC datagram said (``VMCPacket``), the frame-part keys, and the root composed
into Hips (``compose_root``): the types every VMC module shares, apart from the decoder that
makes them (``machinima.vmc_decode``) so the frame assembler and the batch replay need not
import the decoding machinery to name them."""

from __future__ import annotations

from types import MappingProxyType
from typing import Mapping

import numpy as np

from .osc import IMMEDIATE
from .skeleton import BONE_INDEX, BONES, POSE_WIDTH

__all__ = ["KEY_APPLY", "KEY_OK", "KEY_ROOT", "KEY_TIME", "VMCPacket", "compose_root"]

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

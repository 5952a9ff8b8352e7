"""Canonical poses onto a Blender rig (bpy): the rig's bones matched to canonical ones
(``RigInfo``), pose-bone basis rotations (the formula in ``takeimport``'s docstring), baked as
one action (``keyframe_rig``) or set for one frame (``apply_pose``, the live preview)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import bpy
import numpy as np

from machinima import quat, skeleton

from .build import to_blender
from .errors import TakeImportError

TO_BLENDER_ROT = skeleton._TO_BLENDER  # +90 degrees about X: canonical -> Blender


@dataclass
class RigInfo:
    """What the pose maths needs from an armature (read once from bpy)."""

    bones: list[str]  # rig bone names, parents before children
    parents: np.ndarray  # index into bones or -1
    source: np.ndarray  # canonical bone index driving each rig bone, or -1
    rest: np.ndarray  # (n, 4) xyzw rest orientation in armature space
    heads: np.ndarray  # (n, 3) rest head in armature space
    obj_rot: np.ndarray  # (4,) xyzw of the armature object's world rotation
    obj_inv: np.ndarray  # (4, 4) inverse of the armature object's world matrix
    root: int = -1  # rig bone that takes the Hips translation

    @classmethod
    def read(cls, ob: bpy.types.Object, bone_map: dict[str, str] | None = None) -> "RigInfo":
        if ob.type != "ARMATURE":
            raise TakeImportError(f"{ob.name!r} is not an armature")
        mapping = bone_map or {b: b for b in skeleton.BONES}
        inv: dict[str, int] = {}
        for canon, rig_bone in mapping.items():
            skeleton.bone_index(canon)
            if rig_bone not in ob.data.bones:
                raise TakeImportError(f"bone map entry {canon!r} -> {rig_bone!r}: the rig {ob.name!r} has no bone {rig_bone!r}")
            inv[rig_bone] = skeleton.BONE_INDEX[canon]
        order: list[Any] = []

        def visit(b: Any) -> None:
            order.append(b)
            for c in b.children:
                visit(c)

        for b in ob.data.bones:
            if b.parent is None:
                visit(b)
        names = [b.name for b in order]
        idx = {n: i for i, n in enumerate(names)}
        rest = np.array([xyzw(b.matrix_local.to_quaternion()) for b in order])
        heads = np.array([tuple(b.head_local) for b in order])
        parents = np.array([idx[b.parent.name] if b.parent else -1 for b in order])
        source = np.array([inv.get(n, -1) for n in names])
        mw = ob.matrix_world
        hips = skeleton.BONE_INDEX["Hips"]
        root = int(np.flatnonzero(source == hips)[0]) if (source == hips).any() else -1
        return cls(names, parents, source, rest, heads, xyzw(mw.to_quaternion()), np.array(mw.inverted()), root)


def xyzw(q: Any) -> np.ndarray:
    """A mathutils Quaternion -> numpy (x, y, z, w)."""
    return np.array([q.x, q.y, q.z, q.w])


def pose_basis(info: RigInfo, poses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pose-bone basis rotations (N, n, 4 xyzw) and the root bone's location (N, 3) for
    canonical poses (N, 55, 7)."""
    poses = np.asarray(poses, float)
    pos_c, rot_c = skeleton.forward_kinematics(poses)  # world, canonical
    n_frames = poses.shape[0]
    r = np.broadcast_to(TO_BLENDER_ROT, rot_c.shape)
    w_b = quat.multiply(quat.multiply(r, rot_c), quat.conjugate(r))  # world rotation, Blender axes
    o = np.broadcast_to(info.obj_rot, w_b.shape)
    w_arm = quat.multiply(quat.multiply(quat.conjugate(o), w_b), o)  # ... in armature space
    n = len(info.bones)
    posed = np.zeros((n_frames, n, 4))
    basis = np.zeros((n_frames, n, 4))
    for j in range(n):
        rest = np.broadcast_to(info.rest[j], (n_frames, 4))
        p = info.parents[j]
        if info.source[j] >= 0:
            posed[:, j] = quat.multiply(w_arm[:, info.source[j]], rest)
        elif p >= 0:
            posed[:, j] = quat.multiply(posed[:, p], quat.multiply(quat.conjugate(np.broadcast_to(info.rest[p], (n_frames, 4))), rest))
        else:
            posed[:, j] = rest
        if p >= 0:
            rel = quat.multiply(np.broadcast_to(info.rest[p], (n_frames, 4)), quat.multiply(quat.conjugate(posed[:, p]), posed[:, j]))
        else:
            rel = posed[:, j]
        basis[:, j] = quat.multiply(quat.conjugate(rest), rel)
    basis = quat.normalize(basis)
    loc = np.zeros((n_frames, 3))
    if info.root >= 0:
        hips_b = to_blender(pos_c[:, skeleton.BONE_INDEX["Hips"]])
        hips_arm = hips_b @ info.obj_inv[:3, :3].T + info.obj_inv[:3, 3]
        delta = hips_arm - info.heads[info.root]
        rest = np.broadcast_to(info.rest[info.root], (n_frames, 4))
        if info.parents[info.root] < 0:
            loc = quat.rotate(quat.conjugate(rest), delta)
    return basis, loc


def continuous(q: np.ndarray) -> np.ndarray:
    """Flip signs so consecutive quaternions (axis 0) stay in one hemisphere (no interpolation flips)."""
    q = q.copy()
    for t in range(1, q.shape[0]):
        flip = np.sum(q[t] * q[t - 1], axis=-1) < 0
        q[t][flip] *= -1
    return q


def key_fcurve(owner: Any, action: Any, path: str, index: int, frames: np.ndarray, values: np.ndarray, group: str | None = None) -> None:
    """One F-curve of ``owner`` in ``action`` set to linear keys (frames, values) in one call."""
    if hasattr(action, "fcurve_ensure_for_datablock"):  # Blender 4.4+: layered actions with slots
        fc = action.fcurve_ensure_for_datablock(owner, path, index=index, group_name=group or "")
    else:  # Blender 4.2-4.3
        fc = action.fcurves.find(path, index=index) or action.fcurves.new(path, index=index, action_group=group or "")
    fc.keyframe_points.clear()
    fc.keyframe_points.add(len(frames))
    co = np.empty(2 * len(frames), dtype=np.float32)
    co[0::2] = frames
    co[1::2] = values
    fc.keyframe_points.foreach_set("co", co)
    fc.keyframe_points.foreach_set("interpolation", np.full(len(frames), 1, dtype=np.int32))  # LINEAR
    fc.update()


def keyframe_rig(ob: bpy.types.Object, info: RigInfo, frames: np.ndarray, poses: np.ndarray, action_name: str) -> Any:
    """Bake canonical poses onto a rig as one action (one key per frame and channel)."""
    basis, loc = pose_basis(info, poses)
    basis = continuous(basis)
    ob.animation_data_create()
    action = bpy.data.actions.get(action_name) or bpy.data.actions.new(action_name)
    ob.animation_data.action = action
    for j, name in enumerate(info.bones):
        pb = ob.pose.bones[name]
        pb.rotation_mode = "QUATERNION"
        if info.source[j] < 0:
            continue
        path = f'pose.bones["{name}"].rotation_quaternion'
        wxyz = basis[:, j, [3, 0, 1, 2]]
        for k in range(4):
            key_fcurve(ob, action, path, k, frames, wxyz[:, k], name)
        if j == info.root:
            for k in range(3):
                key_fcurve(ob, action, f'pose.bones["{name}"].location', k, frames, loc[:, k], name)
    return action


def apply_pose(ob: bpy.types.Object, info: RigInfo, pose: np.ndarray) -> None:
    """Set one canonical pose (55, 7) on the rig's pose bones now (live preview)."""
    basis, loc = pose_basis(info, np.asarray(pose)[None])
    for j, name in enumerate(info.bones):
        if info.source[j] < 0:
            continue
        pb = ob.pose.bones[name]
        pb.rotation_mode = "QUATERNION"
        q = basis[0, j]
        pb.rotation_quaternion = (q[3], q[0], q[1], q[2])
        if j == info.root:
            pb.location = tuple(loc[0])

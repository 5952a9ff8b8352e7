"""The canonical humanoid skeleton and the coordinate conversions at the edges.

Canonical space: right-handed, Y-up, metres, quaternions (x, y, z, w). Bone names are the Unity
``HumanBodyBones`` names that the VMC protocol sends, so a VMC source needs no renaming.

A pose of one performer is a float32 array of shape (len(BONES), 7): local position (x, y, z)
relative to the parent bone and local rotation (x, y, z, w) relative to the parent, in the
parent's frame. The rest pose is a T-pose with identity rotations; ``REST_OFFSETS`` are the
local offsets of each bone in that pose. Hips carry the root: its position is in world space.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import quat
from .errors import SkeletonError

# (name, parent, rest offset from parent in metres, canonical right-handed Y-up; +X is the
# performer's left, +Z forward... we face +Z like Unity avatars after conversion).
_BONES: tuple[tuple[str, str | None, tuple[float, float, float]], ...] = (
    ("Hips", None, (0.0, 0.95, 0.0)),
    ("LeftUpperLeg", "Hips", (0.09, -0.05, 0.0)),
    ("RightUpperLeg", "Hips", (-0.09, -0.05, 0.0)),
    ("LeftLowerLeg", "LeftUpperLeg", (0.0, -0.42, 0.0)),
    ("RightLowerLeg", "RightUpperLeg", (0.0, -0.42, 0.0)),
    ("LeftFoot", "LeftLowerLeg", (0.0, -0.40, 0.0)),
    ("RightFoot", "RightLowerLeg", (0.0, -0.40, 0.0)),
    ("Spine", "Hips", (0.0, 0.10, 0.0)),
    ("Chest", "Spine", (0.0, 0.12, 0.0)),
    ("Neck", "UpperChest", (0.0, 0.12, 0.0)),
    ("Head", "Neck", (0.0, 0.10, 0.0)),
    ("LeftShoulder", "UpperChest", (0.04, 0.08, 0.0)),
    ("RightShoulder", "UpperChest", (-0.04, 0.08, 0.0)),
    ("LeftUpperArm", "LeftShoulder", (0.12, 0.0, 0.0)),
    ("RightUpperArm", "RightShoulder", (-0.12, 0.0, 0.0)),
    ("LeftLowerArm", "LeftUpperArm", (0.27, 0.0, 0.0)),
    ("RightLowerArm", "RightUpperArm", (-0.27, 0.0, 0.0)),
    ("LeftHand", "LeftLowerArm", (0.25, 0.0, 0.0)),
    ("RightHand", "RightLowerArm", (-0.25, 0.0, 0.0)),
    ("LeftToes", "LeftFoot", (0.0, -0.06, 0.12)),
    ("RightToes", "RightFoot", (0.0, -0.06, 0.12)),
    ("LeftEye", "Head", (0.03, 0.07, 0.08)),
    ("RightEye", "Head", (-0.03, 0.07, 0.08)),
    ("Jaw", "Head", (0.0, 0.02, 0.05)),
    ("LeftThumbProximal", "LeftHand", (0.02, 0.0, 0.03)),
    ("LeftThumbIntermediate", "LeftThumbProximal", (0.03, 0.0, 0.0)),
    ("LeftThumbDistal", "LeftThumbIntermediate", (0.025, 0.0, 0.0)),
    ("LeftIndexProximal", "LeftHand", (0.09, 0.0, 0.025)),
    ("LeftIndexIntermediate", "LeftIndexProximal", (0.04, 0.0, 0.0)),
    ("LeftIndexDistal", "LeftIndexIntermediate", (0.025, 0.0, 0.0)),
    ("LeftMiddleProximal", "LeftHand", (0.09, 0.0, 0.005)),
    ("LeftMiddleIntermediate", "LeftMiddleProximal", (0.045, 0.0, 0.0)),
    ("LeftMiddleDistal", "LeftMiddleIntermediate", (0.028, 0.0, 0.0)),
    ("LeftRingProximal", "LeftHand", (0.085, 0.0, -0.015)),
    ("LeftRingIntermediate", "LeftRingProximal", (0.04, 0.0, 0.0)),
    ("LeftRingDistal", "LeftRingIntermediate", (0.026, 0.0, 0.0)),
    ("LeftLittleProximal", "LeftHand", (0.08, 0.0, -0.035)),
    ("LeftLittleIntermediate", "LeftLittleProximal", (0.03, 0.0, 0.0)),
    ("LeftLittleDistal", "LeftLittleIntermediate", (0.022, 0.0, 0.0)),
    ("RightThumbProximal", "RightHand", (-0.02, 0.0, 0.03)),
    ("RightThumbIntermediate", "RightThumbProximal", (-0.03, 0.0, 0.0)),
    ("RightThumbDistal", "RightThumbIntermediate", (-0.025, 0.0, 0.0)),
    ("RightIndexProximal", "RightHand", (-0.09, 0.0, 0.025)),
    ("RightIndexIntermediate", "RightIndexProximal", (-0.04, 0.0, 0.0)),
    ("RightIndexDistal", "RightIndexIntermediate", (-0.025, 0.0, 0.0)),
    ("RightMiddleProximal", "RightHand", (-0.09, 0.0, 0.005)),
    ("RightMiddleIntermediate", "RightMiddleProximal", (-0.045, 0.0, 0.0)),
    ("RightMiddleDistal", "RightMiddleIntermediate", (-0.028, 0.0, 0.0)),
    ("RightRingProximal", "RightHand", (-0.085, 0.0, -0.015)),
    ("RightRingIntermediate", "RightRingProximal", (-0.04, 0.0, 0.0)),
    ("RightRingDistal", "RightRingIntermediate", (-0.026, 0.0, 0.0)),
    ("RightLittleProximal", "RightHand", (-0.08, 0.0, -0.035)),
    ("RightLittleIntermediate", "RightLittleProximal", (-0.03, 0.0, 0.0)),
    ("RightLittleDistal", "RightLittleIntermediate", (-0.022, 0.0, 0.0)),
    ("UpperChest", "Chest", (0.0, 0.12, 0.0)),
)

BONES: tuple[str, ...] = tuple(b[0] for b in _BONES)
"""The 55 Unity HumanBodyBones names, in the order a pose array stores them."""

BONE_INDEX: dict[str, int] = {name: i for i, name in enumerate(BONES)}
PARENT_NAMES: dict[str, str | None] = {b[0]: b[1] for b in _BONES}
PARENTS: np.ndarray = np.array([BONE_INDEX[p] if p else -1 for _, p, _ in _BONES], dtype=np.int32)
REST_OFFSETS: np.ndarray = np.array([b[2] for b in _BONES], dtype=np.float32)
POSE_WIDTH = 7  # px py pz qx qy qz qw

# The topological order (parents before children): UpperChest is listed last in BONES (it was
# added late to Unity's enum) but is the parent of Neck and the shoulders.
ORDER: tuple[int, ...]


def _topological_order() -> tuple[int, ...]:
    done: list[int] = []
    seen: set[int] = set()

    def visit(i: int) -> None:
        if i in seen:
            return
        if PARENTS[i] >= 0:
            visit(int(PARENTS[i]))
        seen.add(i)
        done.append(i)

    for i in range(len(BONES)):
        visit(i)
    return tuple(done)


ORDER = _topological_order()


# Unity's humanoid avatar needs these; every other bone is optional (a rig may lack it).
REQUIRED: frozenset[str] = frozenset({
    "Hips", "Spine", "Head",
    "LeftUpperLeg", "LeftLowerLeg", "LeftFoot", "RightUpperLeg", "RightLowerLeg", "RightFoot",
    "LeftUpperArm", "LeftLowerArm", "LeftHand", "RightUpperArm", "RightLowerArm", "RightHand",
})


def _primary_children() -> dict[int, int]:
    """The child that continues each bone's chain (Hips -> Spine -> ... -> Head, a shoulder ->
    the upper arm, a hand -> the middle finger): where a bone that a source lacks points."""
    prefer = ("Spine", "Chest", "UpperChest", "Neck", "Head")
    out: dict[int, int] = {}
    for i in range(len(BONES)):
        kids = [k for k in range(len(BONES)) if PARENTS[k] == i]
        names = [BONES[k] for k in kids]
        chosen = next((kids[names.index(n)] for n in prefer if n in names), None)
        if chosen is None:
            middle = [k for k, n in zip(kids, names) if "MiddleProximal" in n]
            chosen = middle[0] if middle else (kids[0] if len(kids) == 1 and BONES[i] != "Head" else None)
        if chosen is not None:
            out[i] = chosen
    return out


PRIMARY_CHILD: dict[int, int] = _primary_children()


def bone_index(name: str) -> int:
    """Index of a canonical bone; a clear error for anything else."""
    try:
        return BONE_INDEX[name]
    except KeyError:
        raise SkeletonError(
            f"unknown bone {name!r}", hint="canonical names are Unity HumanBodyBones, e.g. 'Hips', 'LeftUpperArm'"
        ) from None


def rest_pose() -> np.ndarray:
    """The T-pose: rest offsets, identity rotations; shape (55, 7) float32."""
    pose = np.zeros((len(BONES), POSE_WIDTH), dtype=np.float32)
    pose[:, :3] = REST_OFFSETS
    pose[:, 6] = 1.0
    return pose


def check_pose(pose: np.ndarray, *, frames: bool = False) -> np.ndarray:
    """Validate a pose (55, 7) or a sequence of poses (N, 55, 7); return it as float32."""
    arr = np.asarray(pose, dtype=np.float32)
    want = (len(BONES), POSE_WIDTH)
    if (frames and (arr.ndim != 3 or arr.shape[1:] != want)) or (not frames and arr.shape != want):
        shape = "(N, %d, %d)" % want if frames else "(%d, %d)" % want
        raise SkeletonError(f"pose array has shape {arr.shape}, expected {shape}")
    if not np.isfinite(arr).all():
        raise SkeletonError("pose array contains NaN or infinite values")
    return arr


def forward_kinematics(poses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World positions (..., 55, 3) and rotations (..., 55, 4) of local poses (..., 55, 7)."""
    poses = np.asarray(poses, dtype=np.float64)
    pos = np.zeros(poses.shape[:-1] + (3,))
    rot = np.zeros(poses.shape[:-1] + (4,))
    for i in ORDER:
        p = PARENTS[i]
        local_p = poses[..., i, :3]
        local_q = poses[..., i, 3:7]
        if p < 0:
            pos[..., i, :] = local_p
            rot[..., i, :] = quat.normalize(local_q)
        else:
            pos[..., i, :] = pos[..., p, :] + quat.rotate(rot[..., p, :], local_p)
            rot[..., i, :] = quat.multiply(rot[..., p, :], quat.normalize(local_q))
    return pos, rot


# --- coordinate conversions at the edges -------------------------------------------------
# Unity (and VMC) is left-handed Y-up: mirroring X turns it into our right-handed Y-up.
# A rotation under the mirror diag(-1, 1, 1) maps (x, y, z, w) -> (x, -y, -z, w).
_MIRROR_X_POS = np.array([-1.0, 1.0, 1.0])
_MIRROR_X_QUAT = np.array([1.0, -1.0, -1.0, 1.0])


def unity_to_canonical(pos: np.ndarray, rot: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unity/VMC left-handed Y-up -> canonical right-handed Y-up. Arrays (..., 3) and (..., 4)."""
    return np.asarray(pos) * _MIRROR_X_POS, np.asarray(rot) * _MIRROR_X_QUAT


def canonical_to_unity(pos: np.ndarray, rot: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Canonical -> Unity/VMC (the mirror is its own inverse)."""
    return unity_to_canonical(pos, rot)


# Blender is right-handed Z-up: canonical (x, y, z) -> Blender (x, -z, y); a rotation by the
# same +90 degrees about X: q_b = r * q * r^-1 with r the 90-degree X rotation.
_TO_BLENDER = quat.from_axis_angle(np.array([1.0, 0.0, 0.0]), np.pi / 2)


def canonical_to_blender(pos: np.ndarray, rot: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pos = np.asarray(pos, dtype=np.float64)
    p = np.stack([pos[..., 0], -pos[..., 2], pos[..., 1]], axis=-1)
    q = quat.multiply(quat.multiply(_TO_BLENDER, np.asarray(rot, dtype=np.float64)), quat.conjugate(_TO_BLENDER))
    return p, q


def blender_to_canonical(pos: np.ndarray, rot: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pos = np.asarray(pos, dtype=np.float64)
    p = np.stack([pos[..., 0], pos[..., 2], -pos[..., 1]], axis=-1)
    q = quat.multiply(quat.multiply(quat.conjugate(_TO_BLENDER), np.asarray(rot, dtype=np.float64)), _TO_BLENDER)
    return p, q


@dataclass(frozen=True)
class BoneMap:
    """Maps a source's bone names onto canonical bones (retargeting by name)."""

    mapping: dict[str, str]

    def __post_init__(self) -> None:
        for src, dst in self.mapping.items():
            if dst not in BONE_INDEX:
                raise SkeletonError(f"bone map entry {src!r} -> {dst!r}: {dst!r} is not a canonical bone")

    def target(self, source_name: str) -> int | None:
        dst = self.mapping.get(source_name)
        return BONE_INDEX[dst] if dst else None

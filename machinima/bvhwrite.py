"""Canonical poses -> a BVH file that Blender (and MotionBuilder, Maya ...) reads back with the
same joint positions.

Layout: the 55 canonical bones by name, centimetres by default (``scale=100``), Hips with six
channels (position, then rotation), every other joint with three rotation channels in ``order``
(ZXY by default), offsets from the performer's own proportions. A joint whose local position
changes during the take (a BVH import whose unmapped joints bend between two mapped ones) gets
position channels too, so its world position stays exact instead of being snapped to a fixed
offset. Angles come from the gimbal-safe ``quat.to_euler``.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

from . import quat
from .errors import BVHError
from .fsutil import atomic_write_text
from .skeleton import BONES, PARENTS, check_pose

# A local position further than this (metres) from the joint's offset in some frame is written
# as position channels: well above float32 noise in a stored pose, well below 1e-4 cm.
MOVING_JOINT_M = 2e-7


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {i: [] for i in range(len(BONES))}
    for i, p in enumerate(PARENTS):
        if p >= 0:
            kids[int(p)].append(i)
    return kids


def export_bvh(path: str | Path, poses: np.ndarray, fps: float | Fraction, *, scale: float = 100.0, order: str = "ZXY",
               offsets: np.ndarray | None = None) -> Path:
    """Write canonical poses (N, 55, 7) to a BVH file; ``offsets`` (55, 3 metres) are the
    performer's rest offsets (default: the first frame's local positions)."""
    poses = check_pose(poses, frames=True).astype(np.float64)
    if poses.shape[0] == 0:
        raise BVHError("nothing to export: the performer has no frames")
    order = order.upper()
    if sorted(order) != ["X", "Y", "Z"]:
        raise BVHError(f"rotation order {order!r} is not a permutation of XYZ")
    fps_f = float(fps)
    if not fps_f > 0:
        raise BVHError(f"frame rate {fps!r} must be above 0")
    base = poses[0, :, :3] if offsets is None else np.asarray(offsets, dtype=np.float64)
    moving = np.abs(poses[:, :, :3] - base).max(axis=0).max(axis=-1) > MOVING_JOINT_M
    kids = _children()
    rot_names = " ".join(f"{a}rotation" for a in order)
    lines = ["HIERARCHY"]
    walk: list[int] = []

    def emit(i: int, depth: int) -> None:
        pad = "  " * depth
        root = PARENTS[i] < 0
        lines.append(f"{pad}{'ROOT' if root else 'JOINT'} {BONES[i]}")
        lines.append(f"{pad}{{")
        off = np.zeros(3) if root else base[i] * scale
        lines.append(f"{pad}  OFFSET {off[0]:.6f} {off[1]:.6f} {off[2]:.6f}")
        if root or moving[i]:
            lines.append(f"{pad}  CHANNELS 6 Xposition Yposition Zposition {rot_names}")
        else:
            lines.append(f"{pad}  CHANNELS 3 {rot_names}")
        walk.append(i)
        for k in kids[i]:
            emit(k, depth + 1)
        if not kids[i]:  # a tip half as long as the bone's own offset, so no bone has zero length
            tip = base[i] * scale * 0.5 if np.linalg.norm(base[i]) > 1e-6 else np.array([0.0, 0.05 * scale, 0.0])
            lines.extend([f"{pad}  End Site", f"{pad}  {{", f"{pad}    OFFSET {tip[0]:.6f} {tip[1]:.6f} {tip[2]:.6f}", f"{pad}  }}"])
        lines.append(f"{pad}}}")

    emit(int(np.where(PARENTS < 0)[0][0]), 0)
    cols = []
    for i in walk:
        if PARENTS[i] < 0 or moving[i]:
            cols.append(poses[:, i, :3] * scale)
        cols.append(quat.to_euler(poses[:, i, 3:7], order))
    motion = np.concatenate(cols, axis=1)
    lines += ["MOTION", f"Frames: {poses.shape[0]}", f"Frame Time: {1.0 / fps_f:.8f}"]
    lines += [" ".join(f"{v:.6f}" for v in row) for row in motion]
    atomic_write_text(path, "\n".join(lines) + "\n")
    return Path(path)

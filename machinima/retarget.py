"""Any skeleton onto the canonical one, keeping every mapped joint's world position exact.

A source (a BVH file's skeleton) gives per frame the world position and rotation of each of its
joints; a bone map says which joint drives which canonical bone. The canonical pose keeps:

* for a mapped bone, the joint's world position and world rotation (the source's rest pose is
  the T-pose: every channel at 0);
* for a bone the source lacks (a missing Chest or Neck between Spine and Head), a place on the
  line from its nearest mapped ancestor to the mapped bone further down its chain, at the
  fraction the canonical rest lengths give, and the rotation that aims that chain at where the
  file has the child (identity when the source chain is rigid); bones with nothing mapped below
  (fingers, toes, eyes) take the canonical offsets scaled to the performer and follow their
  parent;
* local positions per frame from the world positions, so children land exactly where the file
  has them even when unmapped source joints bend between two mapped ones.

The performer's proportions (``rest_offsets``, metres, canonical order) come from the file's
rest pose, not from the canonical skeleton, and are stored with the take. Unlike
``mocap/retarget.py`` (live sources, T-pose calibration), this works on whole recordings.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import quat
from .skeleton import BONES, ORDER, PARENTS, PRIMARY_CHILD, REST_OFFSETS, forward_kinematics, rest_pose

_HIPS = int(np.where(PARENTS < 0)[0][0])


@dataclass
class RetargetPlan:
    """How a source skeleton drives the canonical one (computed once, applied to every frame)."""

    source_of: np.ndarray  # (55,) source joint per canonical bone, -1 where the source has none
    rest_positions: np.ndarray  # (55, 3) canonical rest positions, metres, in the source's space
    rest_offsets: np.ndarray  # (55, 3) the performer's proportions: local rest offsets (Hips: world)
    aim: np.ndarray  # (55,) for a bone the source lacks: the mapped bone its chain points at, or -1

    @property
    def inferred(self) -> list[str]:
        return [BONES[c] for c in range(len(BONES)) if self.source_of[c] < 0]


def _canonical_rest_world() -> np.ndarray:
    return forward_kinematics(rest_pose())[0]


def plan(source_of: dict[int, int], source_rest: np.ndarray) -> RetargetPlan:
    """The plan for a source whose joint ``j`` rests at ``source_rest[j]`` (metres) and whose
    joints drive canonical bones as ``source_of`` says (canonical index -> joint; Hips needed)."""
    if _HIPS not in source_of:
        raise ValueError("the bone map must give Hips a joint")
    src = np.full(len(BONES), -1, dtype=np.int64)
    for c, j in source_of.items():
        src[c] = j
    canon_rest = _canonical_rest_world()
    scale = _performer_scale(src, source_rest, canon_rest)
    aim = np.full(len(BONES), -1, dtype=np.int64)
    rest = np.zeros((len(BONES), 3))
    for c in ORDER:
        if src[c] >= 0:
            rest[c] = source_rest[src[c]]
            continue
        target = c
        while src[target] < 0 and target in PRIMARY_CHILD:
            target = PRIMARY_CHILD[target]
        parent = int(PARENTS[c])
        if src[target] >= 0:
            aim[c] = target
            anchor = parent
            while src[anchor] < 0 and aim[anchor] >= 0:  # the mapped bone the chain starts from
                anchor = int(PARENTS[anchor])
            # canonical rest lengths along anchor -> ... -> c -> ... -> target give the fraction
            done = _chain_length(anchor, c)
            total = done + _chain_length(c, target)
            f = done / total if total > 1e-12 else 0.0
            rest[c] = rest[anchor] + f * (source_rest[src[target]] - rest[anchor])
        else:
            rest[c] = rest[parent] + REST_OFFSETS[c] * scale
    offsets = rest.copy()
    child = PARENTS >= 0
    offsets[child] = rest[child] - rest[PARENTS[child]]
    return RetargetPlan(src, rest, offsets, aim)


def _chain_length(top: int, bottom: int) -> float:
    """Canonical rest length from ``top`` down to its descendant ``bottom``."""
    length = 0.0
    b = bottom
    while b != top and b >= 0:
        length += float(np.linalg.norm(REST_OFFSETS[b]))
        b = int(PARENTS[b])
    return length


def _performer_scale(src: np.ndarray, source_rest: np.ndarray, canon_rest: np.ndarray) -> float:
    """Performer size / canonical size, from the mapped bones' spread (for bones the file lacks
    and nothing anchors)."""
    have = src >= 0
    if have.sum() < 2:
        return 1.0
    spread_src = np.ptp(source_rest[src[have]], axis=0).max()
    spread_can = np.ptp(canon_rest[have], axis=0).max()
    return float(spread_src / spread_can) if spread_can > 1e-9 and spread_src > 1e-9 else 1.0


def _swing(v0: np.ndarray, v1: np.ndarray) -> np.ndarray:
    """Shortest rotations (..., 4) taking directions v0 to v1 (identity where either is ~0)."""
    n0 = np.linalg.norm(v0, axis=-1, keepdims=True)
    n1 = np.linalg.norm(v1, axis=-1, keepdims=True)
    ok = (n0 > 1e-9) & (n1 > 1e-9)
    a = v0 / np.where(ok, n0, 1.0)
    b = v1 / np.where(ok, n1, 1.0)
    dot = np.sum(a * b, axis=-1, keepdims=True)
    q = np.concatenate([np.cross(a, b), 1.0 + dot], axis=-1)
    # half-way turned round (180 degrees): any axis perpendicular to a will do
    perp = np.cross(a, np.where(np.abs(a[..., :1]) < 0.9, [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]))
    q = np.where(dot < -1.0 + 1e-12, np.concatenate([perp, np.zeros_like(dot)], axis=-1), q)
    return np.where(ok, quat.normalize(q), quat.IDENTITY)


def apply(p: RetargetPlan, gpos: np.ndarray, grot: np.ndarray) -> np.ndarray:
    """Canonical local poses (N, 55, 7) float32 from the source joints' world positions
    (N, J, 3, metres) and rotations (N, J, 4)."""
    n = gpos.shape[0]
    wp = np.zeros((n, len(BONES), 3))
    wr = np.zeros((n, len(BONES), 4))
    for c in ORDER:
        s = p.source_of[c]
        if s >= 0:
            wp[:, c], wr[:, c] = gpos[:, s], quat.normalize(grot[:, s])
            continue
        par = int(PARENTS[c])
        wp[:, c] = wp[:, par] + quat.rotate(wr[:, par], p.rest_offsets[c])
        wr[:, c] = wr[:, par]
        if p.aim[c] >= 0:
            t = p.aim[c]
            rest_vec = quat.rotate(wr[:, par], p.rest_positions[t] - p.rest_positions[c])
            wr[:, c] = quat.multiply(_swing(rest_vec, gpos[:, p.source_of[t]] - wp[:, c]), wr[:, par])
    out = np.zeros((n, len(BONES), 7))
    out[:, _HIPS, :3], out[:, _HIPS, 3:] = wp[:, _HIPS], wr[:, _HIPS]
    child = np.where(PARENTS >= 0)[0]
    inv = quat.conjugate(wr[:, PARENTS[child]])
    out[:, child, :3] = quat.rotate(inv, wp[:, child] - wp[:, PARENTS[child]])
    out[:, child, 3:] = quat.multiply(inv, wr[:, child])
    return out.astype(np.float32)

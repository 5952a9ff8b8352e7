"""Retargeting: global transforms -> canonical local poses, bone-name maps, T-pose calibration.

Everything is vectorised per hierarchy level (parents before children, about 8 levels), so a
pose converts in a handful of numpy calls instead of a loop over 55 bones.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from machinima import quat
from machinima.fsutil import atomic_write_json
from machinima.skeleton import BONES, PARENTS, POSE_WIDTH, REST_OFFSETS, rest_pose

from .errors import CalibrationError

_DEPTH = np.zeros(len(BONES), dtype=np.int64)
for _i in range(len(BONES)):
    _d, _p = 0, PARENTS[_i]
    while _p >= 0:
        _d += 1
        _p = PARENTS[_p]
    _DEPTH[_i] = _d
LEVELS: tuple[np.ndarray, ...] = tuple(np.where(_DEPTH == d)[0] for d in range(int(_DEPTH.max()) + 1))
_HIPS = int(np.where(PARENTS < 0)[0][0])


def fk(pose: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World positions (..., 55, 3) and rotations (..., 55, 4) of local poses (..., 55, 7),
    float64; leading dimensions (frames) are computed together."""
    p = np.asarray(pose, dtype=np.float64)
    lead = p.shape[:-2]
    gp = np.zeros(lead + (len(BONES), 3))
    gr = np.zeros(lead + (len(BONES), 4))
    root = LEVELS[0]
    gp[..., root, :] = p[..., root, :3]
    gr[..., root, :] = quat.normalize(p[..., root, 3:7])
    for lv in LEVELS[1:]:
        par = PARENTS[lv]
        gr[..., lv, :] = quat.multiply(gr[..., par, :], quat.normalize(p[..., lv, 3:7]))
        gp[..., lv, :] = gp[..., par, :] + quat.rotate(gr[..., par, :], p[..., lv, :3])
    return gp, gr


def local_from_global(gpos: np.ndarray, grot: np.ndarray, present: np.ndarray | None = None, *, base: np.ndarray | None = None) -> np.ndarray:
    """Canonical local pose (55, 7) from world transforms of the bones marked ``present``.

    Bones not present keep their local transform from ``base`` (default: the T-pose) and
    their world transform follows their parent, so a present child below an absent parent
    still ends up where the source put it. When every present bone's parent is present too
    (the usual case) this is one vectorised step.
    """
    base = rest_pose() if base is None else np.asarray(base, dtype=np.float32)
    present = np.ones(len(BONES), bool) if present is None else np.asarray(present, bool)
    out = base.astype(np.float64).copy()
    gpos = np.asarray(gpos, dtype=np.float64)
    grot = quat.normalize(np.asarray(grot, dtype=np.float64))
    has_parent = PARENTS >= 0
    child = present & has_parent
    if not present[_HIPS] or np.any(~present[PARENTS[child]]):
        return _local_from_global_levels(gpos, grot, present, out)
    out[_HIPS, :3], out[_HIPS, 3:7] = gpos[_HIPS], grot[_HIPS]
    idx = np.where(child)[0]
    par = PARENTS[idx]
    inv = quat.conjugate(grot[par])
    out[idx, 3:7] = quat.multiply(inv, grot[idx])
    out[idx, :3] = quat.rotate(inv, gpos[idx] - gpos[par])
    return out.astype(np.float32)


def _local_from_global_levels(gpos: np.ndarray, grot: np.ndarray, present: np.ndarray, out: np.ndarray) -> np.ndarray:
    gp = np.zeros((len(BONES), 3))
    gr = np.zeros((len(BONES), 4))
    for k, lv in enumerate(LEVELS):
        have = lv[present[lv]]
        miss = lv[~present[lv]]
        if k == 0:
            gp[have], gr[have] = gpos[have], grot[have]
            gp[miss], gr[miss] = out[miss, :3], quat.normalize(out[miss, 3:7])
            out[have, :3], out[have, 3:7] = gp[have], gr[have]
            continue
        if have.size:
            par = PARENTS[have]
            inv = quat.conjugate(gr[par])
            out[have, 3:7] = quat.multiply(inv, grot[have])
            out[have, :3] = quat.rotate(inv, gpos[have] - gp[par])
            gp[have], gr[have] = gpos[have], grot[have]
        if miss.size:
            par = PARENTS[miss]
            gr[miss] = quat.multiply(gr[par], quat.normalize(out[miss, 3:7]))
            gp[miss] = gp[par] + quat.rotate(gr[par], out[miss, :3])
    return out.astype(np.float32)


# --- coordinate frames of sources ---------------------------------------------------------------
def zup_to_canonical(pos: np.ndarray, rot_xyzw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Z-up right-handed with X forward, Y left (Xsens MVN) -> canonical Y-up, +Z forward,
    +X the performer's left: a proper rotation (x, y, z) -> (y, z, x), applied to vectors and
    to quaternions' vector parts alike."""
    pos = np.asarray(pos, dtype=np.float64)
    q = np.asarray(rot_xyzw, dtype=np.float64)
    p = np.stack([pos[..., 1], pos[..., 2], pos[..., 0]], axis=-1)
    r = np.stack([q[..., 1], q[..., 2], q[..., 0], q[..., 3]], axis=-1)
    return p, r


def canonical_to_zup(pos: np.ndarray, rot_xyzw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pos = np.asarray(pos, dtype=np.float64)
    q = np.asarray(rot_xyzw, dtype=np.float64)
    p = np.stack([pos[..., 2], pos[..., 0], pos[..., 1]], axis=-1)
    r = np.stack([q[..., 2], q[..., 0], q[..., 1], q[..., 3]], axis=-1)
    return p, r


# --- T-pose calibration -------------------------------------------------------------------------
CALIBRATION_SCHEMA = "machinima.mocap.calibration"
CALIBRATION_VERSION = 1


@dataclass
class Calibration:
    """World-space rotation of every bone while the performer stood in a T-pose.

    Applying it replaces each world rotation G by G * inverse(C): the captured T-pose becomes
    the canonical T-pose (identity rotations) whatever the source's bone axes are, and a
    turn of the whole body stays a turn. Positions are kept.
    """

    performer: str
    rest_rot: np.ndarray  # (55, 4) world rotations at calibration
    created: str = ""

    @classmethod
    def capture(cls, performer: str, poses: np.ndarray) -> "Calibration":
        """Average the world rotations of a few frames of the performer standing in a T-pose."""
        poses = np.asarray(poses, dtype=np.float64)
        if poses.ndim == 2:
            poses = poses[None]
        if poses.ndim != 3 or poses.shape[1:] != (len(BONES), POSE_WIDTH) or poses.shape[0] == 0:
            raise CalibrationError(f"calibration needs frames of shape (N, 55, 7), got {poses.shape}", hint="hold a T-pose while the listener receives")
        rots = np.stack([fk(p)[1] for p in poses])
        ref = rots[0]
        sign = np.where(np.sum(rots * ref, axis=-1, keepdims=True) < 0, -1.0, 1.0)
        mean = quat.normalize((rots * sign).sum(axis=0))
        return cls(performer, mean.astype(np.float64), time.strftime("%Y-%m-%dT%H:%M:%S"))

    def apply(self, pose: np.ndarray) -> np.ndarray:
        """The calibrated pose. With world rotations G' = G C^-1 for every bone, the local
        rotation becomes C_parent L C^-1 and the local offset rotate(C_parent, offset): no
        forward kinematics needed, one vectorised step."""
        p = np.asarray(pose, dtype=np.float64)
        c = self.rest_rot
        cp = np.where((PARENTS >= 0)[:, None], c[np.maximum(PARENTS, 0)], quat.IDENTITY)
        out = np.empty_like(p)
        out[:, 3:7] = quat.multiply(quat.multiply(cp, p[:, 3:7]), quat.conjugate(c))
        out[:, :3] = quat.rotate(cp, p[:, :3])
        out[_HIPS, :3] = p[_HIPS, :3]
        return out.astype(np.float32)

    def save(self, path: str | Path) -> Path:
        atomic_write_json(Path(path), {
            "schema": CALIBRATION_SCHEMA, "version": CALIBRATION_VERSION, "performer": self.performer,
            "created": self.created, "bones": list(BONES), "rest_rot": np.round(self.rest_rot, 8).tolist(),
        })
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> "Calibration":
        path = Path(path)
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise CalibrationError(f"no calibration file at {path}", hint="capture one with `machinima mocap calibrate`") from None
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise CalibrationError(f"{path} is not a calibration file (not JSON)") from None
        if not isinstance(doc, dict) or doc.get("schema") != CALIBRATION_SCHEMA:
            raise CalibrationError(f"{path}: field 'schema' must be {CALIBRATION_SCHEMA!r}")
        if doc.get("version") != CALIBRATION_VERSION:
            raise CalibrationError(f"{path}: unsupported calibration version {doc.get('version')!r}")
        try:
            names = doc["bones"]
            rot = np.asarray(doc["rest_rot"], dtype=np.float64)
        except (KeyError, ValueError, TypeError):
            raise CalibrationError(f"{path}: fields 'bones' and 'rest_rot' are required") from None
        if rot.shape != (len(names), 4) or not np.isfinite(rot).all():
            raise CalibrationError(f"{path}: 'rest_rot' must be one finite quaternion per bone")
        full = np.tile(quat.IDENTITY, (len(BONES), 1))
        index = {n: i for i, n in enumerate(BONES)}
        for n, r in zip(names, rot):
            if n in index:
                full[index[n]] = r
        return cls(str(doc.get("performer", "")), quat.normalize(full), str(doc.get("created", "")))


def rest_offsets() -> np.ndarray:
    return REST_OFFSETS.copy()

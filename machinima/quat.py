"""Vectorised quaternion maths on numpy arrays, (x, y, z, w) order, as the take stores them.

Everything works on arrays of shape (..., 4) so a whole performer (or a whole take) converts in
one call; no per-bone Python loops on hot paths.
"""

from __future__ import annotations

import numpy as np

IDENTITY = np.array([0.0, 0.0, 0.0, 1.0], dtype=np.float64)


def normalize(q: np.ndarray) -> np.ndarray:
    """Unit quaternions; a zero quaternion becomes the identity instead of NaN."""
    q = np.asarray(q, dtype=np.float64)
    n = np.linalg.norm(q, axis=-1, keepdims=True)
    out = np.where(n > 1e-12, q / np.where(n > 1e-12, n, 1.0), IDENTITY)
    return out


def multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product a*b (apply b first, then a)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    ax, ay, az, aw = np.moveaxis(a, -1, 0)
    bx, by, bz, bw = np.moveaxis(b, -1, 0)
    return np.stack(
        [
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
            aw * bw - ax * bx - ay * by - az * bz,
        ],
        axis=-1,
    )


def conjugate(q: np.ndarray) -> np.ndarray:
    q = np.asarray(q, dtype=np.float64)
    return q * np.array([-1.0, -1.0, -1.0, 1.0])


def rotate(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotate vectors v (..., 3) by unit quaternions q (..., 4)."""
    q = np.asarray(q, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    u = q[..., :3]
    w = q[..., 3:4]
    t = 2.0 * np.cross(u, v)
    return v + w * t + np.cross(u, t)


def slerp(a: np.ndarray, b: np.ndarray, t: np.ndarray | float) -> np.ndarray:
    """Spherical interpolation from a to b by t (broadcasts), taking the short way round."""
    a = normalize(a)
    b = normalize(b)
    t = np.asarray(t, dtype=np.float64)
    dot = np.sum(a * b, axis=-1, keepdims=True)
    b = np.where(dot < 0, -b, b)
    dot = np.abs(dot)
    t = t[..., None] if t.ndim == dot.ndim - 1 or t.ndim == 0 else t
    close = dot > 0.9995
    theta = np.arccos(np.clip(dot, -1.0, 1.0))
    sin_t = np.sin(theta)
    safe = np.where(close, 1.0, sin_t)
    wa = np.where(close, 1.0 - t, np.sin((1.0 - t) * theta) / safe)
    wb = np.where(close, t, np.sin(t * theta) / safe)
    return normalize(wa * a + wb * b)


def from_axis_angle(axis: np.ndarray, angle: np.ndarray | float) -> np.ndarray:
    axis = np.asarray(axis, dtype=np.float64)
    axis = axis / np.linalg.norm(axis, axis=-1, keepdims=True)
    half = np.asarray(angle, dtype=np.float64)[..., None] / 2.0
    return np.concatenate([axis * np.sin(half), np.cos(half)], axis=-1)


_AXES = {"X": np.array([1.0, 0, 0]), "Y": np.array([0, 1.0, 0]), "Z": np.array([0, 0, 1.0])}


def from_euler(angles_deg: np.ndarray, order: str = "ZXY") -> np.ndarray:
    """Quaternion from intrinsic Euler angles in degrees, applied in ``order`` (BVH convention:
    the channel order as written, e.g. ZXY means R = Rz * Rx * Ry)."""
    angles = np.radians(np.asarray(angles_deg, dtype=np.float64))
    q = np.broadcast_to(IDENTITY, angles.shape[:-1] + (4,)).copy()
    for i, axis in enumerate(order.upper()):
        q = multiply(q, from_axis_angle(_AXES[axis], angles[..., i]))
    return q


def to_matrix(q: np.ndarray) -> np.ndarray:
    q = normalize(q)
    x, y, z, w = np.moveaxis(q, -1, 0)
    m = np.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w),
            2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w),
            2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y),
        ],
        axis=-1,
    )
    return m.reshape(q.shape[:-1] + (3, 3))


def to_euler(q: np.ndarray, order: str = "ZXY") -> np.ndarray:
    """Intrinsic Euler angles in degrees for ``order`` (inverse of ``from_euler``), any of the
    six orders XYZ XZY YXZ YZX ZXY ZYX.

    R = R_i(a) R_j(b) R_k(c). The middle angle comes from atan2 (not asin, which loses half the
    digits near +-90 degrees). At gimbal lock (the middle angle at +-90 degrees) only a +- c is
    defined: c is set to 0 and a is read from R's j column, which then depends on a alone. Near
    the lock, c is computed from R and the a found, so the three angles give back the rotation
    even where each angle alone is ill-conditioned.
    """
    m = to_matrix(q)
    order = order.upper()
    if len(order) != 3 or sorted(order) != ["X", "Y", "Z"]:
        raise ValueError(f"Euler order {order!r} is not a permutation of XYZ")
    i, j, k = ("XYZ".index(c) for c in order)
    # +1 for the cyclic orders (XYZ, YZX, ZXY), -1 for the others: e_i x e_j = sign * e_k.
    sign = 1.0 if (j - i) % 3 == 1 else -1.0
    cos_b = np.hypot(m[..., i, i], m[..., i, j])
    b = np.arctan2(sign * m[..., i, k], cos_b)
    locked = cos_b < 1e-12
    a = np.where(locked, np.arctan2(sign * m[..., k, j], m[..., j, j]), np.arctan2(-sign * m[..., j, k], m[..., k, k]))
    # c from R_i(a)^-1 R = R_j(b) R_k(c), whose row j is row j of R_k(c): consistent with the
    # a just found, so the three angles give back R even where a alone is ill-conditioned.
    sa, ca = np.sin(a), np.cos(a)
    c = np.arctan2(sign * ca * m[..., j, i] + sa * m[..., k, i], ca * m[..., j, j] + sign * sa * m[..., k, j])
    c = np.where(locked, 0.0, c)
    return np.degrees(np.stack([a, b, c], axis=-1))

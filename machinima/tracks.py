"""Operations on recorded tracks: resampling to the take's fps (lerp positions, slerp rotations)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from . import quat
from .timecode import NS_PER_S, ns_from_frames, parse_rate


def frame_times(start_ns: int, end_ns: int, fps: float | str | Fraction, *, tolerance_ns: int = 1_000_000) -> np.ndarray:
    """Stamps of every frame from ``start_ns`` to ``end_ns`` at ``fps``.

    A frame that falls up to ``tolerance_ns`` after ``end_ns`` is included: stamps truncated to
    whole nanoseconds must not drop the last frame of a take. Stamps are each frame's first
    nanosecond, so ``frames_from_ns(frame_times(s, e, fps) - s, fps)`` is exactly 0, 1, 2...
    """
    r = parse_rate(fps)
    n = int(((end_ns - start_ns + tolerance_ns) * r.numerator) // (NS_PER_S * r.denominator)) + 1
    k = np.arange(max(n, 0), dtype=np.int64)
    return start_ns + ns_from_frames(k, r)  # rounded up: frames_from_ns gives back exactly k


def resample_poses(t_ns: np.ndarray, poses: np.ndarray, at_ns: np.ndarray) -> np.ndarray:
    """Poses (n, B, 7) sampled at ``t_ns`` resampled at ``at_ns``; outside the range, held.

    Positions are linearly interpolated, rotations slerped per bone.
    """
    t = np.asarray(t_ns, dtype=np.int64)
    p = np.asarray(poses, dtype=np.float64)
    at = np.asarray(at_ns, dtype=np.int64)
    if t.shape[0] == 0:
        raise ValueError("cannot resample an empty track")
    if t.shape[0] == 1:
        return np.repeat(p[:1], at.shape[0], axis=0).astype(np.float32)
    hi = np.clip(np.searchsorted(t, at, side="right"), 1, t.shape[0] - 1)
    lo = hi - 1
    span = (t[hi] - t[lo]).astype(np.float64)
    w = np.clip((at - t[lo]) / np.where(span > 0, span, 1.0), 0.0, 1.0)
    a, b = p[lo], p[hi]
    out = np.empty((at.shape[0],) + p.shape[1:], dtype=np.float64)
    out[..., :3] = a[..., :3] + (b[..., :3] - a[..., :3]) * w[:, None, None]
    out[..., 3:7] = quat.slerp(a[..., 3:7], b[..., 3:7], np.broadcast_to(w[:, None], a.shape[:-1]))
    if p.shape[-1] > 7:
        out[..., 7:] = a[..., 7:] + (b[..., 7:] - a[..., 7:]) * w[:, None, None]
    return out.astype(np.float32)


def resample_linear(t_ns: np.ndarray, values: np.ndarray, at_ns: np.ndarray) -> np.ndarray:
    """Per-channel linear resampling of (n, ...) values (blendshapes, focal length...)."""
    t = np.asarray(t_ns, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64).reshape(len(t), -1)
    at = np.asarray(at_ns, dtype=np.float64)
    out = np.stack([np.interp(at, t, v[:, c]) for c in range(v.shape[1])], axis=-1)
    return out.reshape((len(at),) + np.asarray(values).shape[1:]).astype(np.float32)

"""One-Euro smoothing of whole poses for live preview, with per-bone settings (the Hips and
the fingers want other settings than the body). The take keeps the raw frames; only live
outputs are smoothed. Split from ``mocap.timing`` (which re-exports these names)."""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np

from machinima import quat
from machinima.skeleton import BONE_INDEX, BONES

NS = 1_000_000_000

__all__ = ["BONE_GROUPS", "DEFAULT_BONE_SMOOTHING", "FINGERS", "OneEuro", "bone_settings"]


FINGERS = tuple(b for b in BONES if any(d in b for d in ("Thumb", "Index", "Middle", "Ring", "Little")))
BONE_GROUPS: dict[str, tuple[str, ...]] = {"fingers": FINGERS, "body": tuple(b for b in BONES if b not in FINGERS)}
DEFAULT_BONE_SMOOTHING: dict[str, dict[str, float]] = {
    # The root carries the whole body: lag there makes every limb trail, so it opens up sooner.
    "Hips": {"min_cutoff": 2.0, "beta": 0.3},
    # Finger sensors jitter most at rest and move fastest: smoother when still, quicker in motion.
    "fingers": {"min_cutoff": 0.5, "beta": 2.0},
}


def bone_settings(min_cutoff: float, beta: float, bones: Mapping[str, Mapping[str, float]] | None) -> tuple[np.ndarray, np.ndarray]:
    """Per-bone (55, 1) min_cutoff and beta: the given values, then each group ("body",
    "fingers") and bone name of ``bones`` in turn (bones after groups)."""
    mc = np.full((len(BONES), 1), float(min_cutoff))
    be = np.full((len(BONES), 1), float(beta))
    items = sorted((bones or {}).items(), key=lambda kv: kv[0] not in BONE_GROUPS)
    for name, vals in items:
        if name in BONE_GROUPS:
            idx = [BONE_INDEX[b] for b in BONE_GROUPS[name]]
        elif name in BONE_INDEX:
            idx = [BONE_INDEX[name]]
        else:
            raise ValueError(f"unknown bone or group {name!r} in smoothing settings (groups: {', '.join(BONE_GROUPS)}; bones: Unity names)")
        unknown = set(vals) - {"min_cutoff", "beta"}
        if unknown:
            raise ValueError(f"smoothing settings of {name!r} take min_cutoff and beta, not {', '.join(sorted(unknown))}")
        if "min_cutoff" in vals:
            mc[idx] = float(vals["min_cutoff"])
        if "beta" in vals:
            be[idx] = float(vals["beta"])
    if (mc <= 0).any() or (be < 0).any():
        raise ValueError("min_cutoff must be > 0 and beta >= 0 for every bone")
    return mc, be


class OneEuro:
    """One-Euro filter (Casiez et al. 2012) on whole poses (55, 7), per bone and channel.

    ``min_cutoff`` (Hz) sets smoothing when still, ``beta`` how fast it opens up with speed;
    ``bones`` overrides them per group or bone (``DEFAULT_BONE_SMOOTHING``: Hips and fingers
    differ from the body; ``{}`` for the same settings everywhere). Quaternions are
    sign-aligned to the previous output, filtered and renormalised. For live preview only: the
    take keeps the raw frames.
    """

    def __init__(self, *, min_cutoff: float = 1.0, beta: float = 0.5, d_cutoff: float = 1.0,
                 bones: Mapping[str, Mapping[str, float]] | None = None) -> None:
        if min_cutoff <= 0 or d_cutoff <= 0 or beta < 0:
            raise ValueError("min_cutoff and d_cutoff must be > 0 and beta >= 0")
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self.bones = dict(DEFAULT_BONE_SMOOTHING if bones is None else bones)
        self._mc, self._beta = bone_settings(min_cutoff, beta, self.bones)
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None
        self._t: int | None = None

    @staticmethod
    def _alpha(cutoff, dt: float):
        tau = 1.0 / (2 * math.pi * cutoff)
        return 1.0 / (1.0 + tau / dt)

    def __call__(self, pose: np.ndarray, t_ns: int) -> np.ndarray:
        x = np.asarray(pose, dtype=np.float64).copy()
        if self._x is None or self._t is None or t_ns <= self._t:
            if self._x is not None and self._t is not None and t_ns <= self._t:
                return self._x.astype(np.float32)
            self._x, self._dx, self._t = x, np.zeros_like(x), t_ns
            return x.astype(np.float32)
        dt = (t_ns - self._t) / NS
        sign = np.where(np.sum(x[:, 3:7] * self._x[:, 3:7], axis=1, keepdims=True) < 0, -1.0, 1.0)
        x[:, 3:7] *= sign
        dx = (x - self._x) / dt
        a_d = self._alpha(self.d_cutoff, dt)
        dx_hat = self._dx + a_d * (dx - self._dx)
        cutoff = self._mc + self._beta * np.abs(dx_hat)
        a = self._alpha(cutoff, dt)
        x_hat = self._x + a * (x - self._x)
        x_hat[:, 3:7] = quat.normalize(x_hat[:, 3:7])
        self._x, self._dx, self._t = x_hat, dx_hat, t_ns
        return x_hat.astype(np.float32)

"""Landmark smoothing over time, the cure for the jitter every face swapper is blamed for.

* ``OneEuro`` (Casiez et al., CHI 2012): an adaptive low-pass filter, causal (works live):
  strong smoothing when the face is still, little lag when it moves. ``min_cutoff`` (Hz) sets
  the stillness smoothing, ``beta`` how fast it opens up with speed.
* ``savgol``: Savitzky-Golay (offline, centred window): keeps fast moves sharper than a moving
  average. ``window`` frames (odd), polynomial ``order``.

``jitter(seq)`` measures what we fight: the mean frame-to-frame acceleration of the landmarks
(second difference), in units of the inter-ocular distance.
"""

from __future__ import annotations

import math

import numpy as np

METHODS = ("none", "one-euro", "savgol")


class OneEuro:
    def __init__(self, freq: float = 24.0, min_cutoff: float = 1.0, beta: float = 0.05, d_cutoff: float = 1.0) -> None:
        self.freq, self.min_cutoff, self.beta, self.d_cutoff = float(freq), float(min_cutoff), float(beta), float(d_cutoff)
        self.x: np.ndarray | None = None
        self.dx: np.ndarray | None = None

    @staticmethod
    def _alpha(cutoff: np.ndarray | float, freq: float) -> np.ndarray | float:
        tau = 1.0 / (2 * math.pi * np.asarray(cutoff))
        return 1.0 / (1.0 + tau * freq)

    def reset(self) -> None:
        self.x = self.dx = None

    def __call__(self, x: np.ndarray, scale: float = 1.0) -> np.ndarray:
        """Filter one sample (any array shape). ``scale`` normalises speed (e.g. eye distance)
        so the same settings work for a face 50 or 500 px wide."""
        x = np.asarray(x, np.float64)
        if self.x is None:
            self.x, self.dx = x.copy(), np.zeros_like(x)
            return x.copy()
        dx = (x - self.x) * self.freq / max(scale, 1e-9)
        a_d = self._alpha(self.d_cutoff, self.freq)
        self.dx = a_d * dx + (1 - a_d) * self.dx
        cutoff = self.min_cutoff + self.beta * np.abs(self.dx)
        a = self._alpha(cutoff, self.freq)
        self.x = a * x + (1 - a) * self.x
        return self.x.copy()


def savgol(seq: np.ndarray, window: int = 9, order: int = 2) -> np.ndarray:
    from scipy.signal import savgol_filter

    seq = np.asarray(seq, np.float64)
    n = len(seq)
    if n < 3:
        return seq.copy()
    w = min(window | 1, n if n % 2 else n - 1)
    if w <= order:
        return seq.copy()
    return savgol_filter(seq, w, order, axis=0, mode="interp")


def smooth_sequence(seq: np.ndarray, method: str = "one-euro", *, fps: float = 24.0, min_cutoff: float = 1.0, beta: float = 0.05,
                    window: int = 9, order: int = 2) -> np.ndarray:
    """Smooth a (T, 68, 2) landmark track; speeds are normalised by the eye distance."""
    from .landmarks import eye_distance

    seq = np.asarray(seq, np.float64)
    if method == "none" or len(seq) < 2:
        return seq.copy()
    if method == "savgol":
        return savgol(seq, window, order)
    if method != "one-euro":
        raise ValueError(f"unknown smoothing {method!r}; use one of {', '.join(METHODS)}")
    f = OneEuro(fps, min_cutoff, beta)
    return np.stack([f(x, eye_distance(x)) for x in seq])


def jitter(seq: np.ndarray) -> float:
    """Mean |second difference| of the landmarks over the mean eye distance (0 = no jitter)."""
    from .landmarks import eye_distance

    seq = np.asarray(seq, np.float64)
    if len(seq) < 3:
        return 0.0
    acc = np.linalg.norm(seq[2:] - 2 * seq[1:-1] + seq[:-2], axis=-1).mean()
    return float(acc / np.mean([eye_distance(s) for s in seq]))

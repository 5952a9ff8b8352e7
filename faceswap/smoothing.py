"""Landmark smoothing over time, the cure for the jitter every face swapper is blamed for, without
the lag that pastes the new face behind the actor's real one.

* ``zero_lag`` (offline, the merge default): a centred local-linear fit (LOESS) over ``window``
  frames with robust weights. A straight-line fit is exact on steady motion, so it adds no lag;
  the robust weights drop the frames on the far side of a sudden start or stop (their residual
  from the local line is far above the noise), so corners stay sharp and nothing overshoots.
  One weight per frame is shared by all landmarks: the face moves as one, and 68 points tell
  motion from noise far better than one.
* ``OneEuro`` (Casiez et al., CHI 2012): causal, for the live path. Strong smoothing when the
  face is still, little lag when it moves; the speed term is in image pixels per second, so its
  cutoff opens as the face moves across the frame (a speed in eye distances barely opened it:
  1.7-2.9 frames of lag on steady motion). Defaults tuned on the tracking-truth paths
  (``faceswap.truth``; ``bench/face_tracking.py``).
* ``savgol``: Savitzky-Golay (offline, centred): zero lag on steady motion but overshoots a
  sudden stop (negative weights); kept for comparison.

``jitter(seq)`` is the noise the smoothing fights, in pixels: the RMS second difference of the
landmarks over sqrt(6) (for independent per-frame noise of sigma pixels it is sigma; steady
motion contributes nothing).
"""

from __future__ import annotations

import math

import numpy as np

METHODS = ("zero-lag", "one-euro", "savgol", "none")
# live (causal) defaults, tuned on the truth paths (bench/face_tracking.py --tune): the least
# jitter with lag < 0.5 frame at 5 and 20 px/frame and overshoot < 2 px
LIVE_MIN_CUTOFF = 3.0  # Hz
LIVE_BETA = 0.2  # Hz of extra cutoff per pixel/second of speed
LIVE_D_CUTOFF = 8.0  # Hz, the speed estimate's own low-pass


class OneEuro:
    """Causal adaptive low-pass on arrays of any shape; speed in input units (pixels) per second."""

    def __init__(self, freq: float = 24.0, min_cutoff: float = LIVE_MIN_CUTOFF, beta: float = LIVE_BETA,
                 d_cutoff: float = LIVE_D_CUTOFF) -> None:
        self.freq, self.min_cutoff, self.beta, self.d_cutoff = float(freq), float(min_cutoff), float(beta), float(d_cutoff)
        self.x: np.ndarray | None = None
        self.dx: np.ndarray | None = None

    @staticmethod
    def _alpha(cutoff: np.ndarray | float, freq: float) -> np.ndarray | float:
        tau = 1.0 / (2 * math.pi * np.asarray(cutoff))
        return 1.0 / (1.0 + tau * freq)

    def reset(self) -> None:
        self.x = self.dx = None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Filter one sample (a point set (..., 2) shares one cutoff, from its centroid's speed)."""
        x = np.asarray(x, np.float64)
        if self.x is None:
            self.x, self.dx = x.copy(), np.zeros_like(x)
            return x.copy()
        dx = (x - self.x) * self.freq
        a_d = self._alpha(self.d_cutoff, self.freq)
        self.dx = a_d * dx + (1 - a_d) * self.dx
        # points (..., 2): one speed for the whole face, that of its centroid (it moves as one;
        # the noise of 68 points averages out of their mean, not out of their mean speed)
        speed = np.linalg.norm(self.dx.reshape(-1, 2).mean(0)) if x.ndim >= 2 and x.shape[-1] == 2 else np.abs(self.dx)
        cutoff = self.min_cutoff + self.beta * speed
        a = self._alpha(cutoff, self.freq)
        self.x = a * x + (1 - a) * self.x
        return self.x.copy()


def zero_lag(seq: np.ndarray, window: int = 9, *, iterations: int = 3, c: float = 5.0, min_sigma: float = 0.1) -> np.ndarray:
    """Robust centred local-linear smoothing of a (T, ...) sequence of point sets (pixels).

    Per frame t, over frames t-h..t+h (h = window // 2): start from whichever straight line
    fits best -- through the whole window, its left half or its right half (a sudden start or
    stop leaves one half clean) -- then ``iterations`` weighted least-squares lines, with tricube
    weights in time times bisquare weights on each frame's residual (RMS over the points) from
    the last line. The residual scale is ``c`` times the median residual of the centred fits (at
    least ``min_sigma`` pixels). Frame t itself always keeps its weight.
    """
    seq = np.asarray(seq, np.float64)
    n = len(seq)
    half = max(1, int(window) // 2)
    if n < 3:
        return seq.copy()
    flat = seq.reshape(n, -1)
    npts = flat.shape[1] // 2 if flat.shape[1] % 2 == 0 else flat.shape[1]
    tri = (1 - (np.abs(np.arange(-half, half + 1)) / (half + 1)) ** 3) ** 3

    def fit(t: int, rw: np.ndarray) -> tuple[np.ndarray, np.ndarray, int, float]:
        """(value at t, residual per window frame, window start, weighted mean residual)."""
        lo, hi = max(0, t - half), min(n, t + half + 1)
        s = np.arange(lo, hi, dtype=np.float64) - t
        w = tri[lo - t + half:hi - t + half] * rw[lo:hi]
        sw, sws, swss = w.sum(), (w * s).sum(), (w * s * s).sum()
        y = flat[lo:hi]
        by, bsy = w @ y, (w * s) @ y
        det = sw * swss - sws * sws
        if det <= 1e-9 * max(sw, 1e-12) ** 2:  # one usable frame: its value
            a, b = by / max(sw, 1e-12), np.zeros_like(by)
        else:
            a = (swss * by - sws * bsy) / det
            b = (sw * bsy - sws * by) / det
        r = np.sqrt(((y - (a[None, :] + s[:, None] * b[None, :])) ** 2).sum(1) / npts)
        return a, r, lo, float((w * r).sum() / max(sw, 1e-12))

    idx = np.arange(n)
    starts = []
    for t in range(n):
        starts.append([fit(t, np.ones(n)), fit(t, (idx <= t).astype(float)), fit(t, (idx >= t).astype(float))])
    sigma = max(float(np.median([c0[1][t - c0[2]] for t, (c0, _, _) in enumerate(starts)])), min_sigma)
    out = np.empty_like(flat)
    for t in range(n):
        a, r, lo, _ = min(starts[t], key=lambda f: f[3])
        for _ in range(iterations):
            u = r / (c * sigma)
            rw = np.zeros(n)
            rw[lo:lo + len(r)] = np.where(u < 1, (1 - u ** 2) ** 2, 0.0)
            rw[t] = 1.0
            a, r, lo, _ = fit(t, rw)
        out[t] = a
    return out.reshape(seq.shape)


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


def smooth_sequence(seq: np.ndarray, method: str = "zero-lag", *, fps: float = 24.0, min_cutoff: float = LIVE_MIN_CUTOFF,
                    beta: float = LIVE_BETA, d_cutoff: float = LIVE_D_CUTOFF, window: int = 9, order: int = 2) -> np.ndarray:
    """Smooth a (T, 68, 2) landmark track (pixels)."""
    seq = np.asarray(seq, np.float64)
    if method not in METHODS:
        raise ValueError(f"unknown smoothing {method!r}; use one of {', '.join(METHODS)}")
    if method == "none" or len(seq) < 2:
        return seq.copy()
    if method == "zero-lag":
        return zero_lag(seq, window)
    if method == "savgol":
        return savgol(seq, window, order)
    f = OneEuro(fps, min_cutoff, beta, d_cutoff)
    return np.stack([f(x) for x in seq])


def jitter(seq: np.ndarray) -> float:
    """Per-landmark noise in pixels: RMS second difference / sqrt(6) (0 = steady)."""
    seq = np.asarray(seq, np.float64)
    if len(seq) < 3:
        return 0.0
    acc = seq[2:] - 2 * seq[1:-1] + seq[:-2]
    return float(np.sqrt((acc ** 2).sum(-1).mean() / 6.0))

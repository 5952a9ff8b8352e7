"""Grain: measure a frame's noise, make matching grain, add it to the plate (or to the set).

Measurement is Immerkaer's fast noise estimate (a 3x3 Laplacian-difference kernel) on pixels
away from edges, per channel, in 8-bit units. Grain is drawn once per take into a bank a bit
larger than the frame (``pad`` pixels); each frame takes a window at an offset given by its
frame number, so frames differ, the result is a pure function of the frame, and the per-frame
cost is one saturating add on the actor's bounding box.
"""

from __future__ import annotations

import math

import numpy as np

from .errors import SettingsError
from .keyer import _cv2

MODES = ("plate", "set", "auto", "none")
_IMMERKAER = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)


def measure_noise(rgb: np.ndarray, mask: np.ndarray | None = None, *, edge_threshold: float = 12.0) -> np.ndarray:
    """Noise sigma per channel (8-bit units) of a uint8 RGB image, ignoring edges (and pixels outside ``mask``)."""
    total, n = _noise_sums(rgb, mask, edge_threshold)
    return _sigma(total, n)


def measure_noise_bands(rgb: np.ndarray, *, bands: int = 4, fraction: float = 0.25, edge_threshold: float = 12.0) -> np.ndarray:
    """``measure_noise`` of a whole frame from ``bands`` full-resolution row bands spread over
    it (``fraction`` of its rows): a quarter of the work for the set's frames at 1080p. Rows,
    not a downscale: a resize averages the noise away (sigma halves at 1/2), and decimation
    breaks the 3x3 neighbourhoods the estimate and correlated grain rely on."""
    h = rgb.shape[0]
    rows = max(32, int(h * fraction / bands))
    if bands * rows >= h:
        return measure_noise(rgb, edge_threshold=edge_threshold)
    total, n = np.zeros(3), 0
    for y in np.linspace(0, h - rows, bands).astype(int):
        t, c = _noise_sums(rgb[y:y + rows], None, edge_threshold)
        total, n = total + t, n + c
    return _sigma(total, n)


def _sigma(total: np.ndarray, n: int) -> np.ndarray:
    return np.zeros(3) if n < 64 else math.sqrt(math.pi / 2.0) * total / n / 6.0


def _noise_sums(rgb: np.ndarray, mask: np.ndarray | None, edge_threshold: float) -> tuple[np.ndarray, int]:
    """(per channel sum of |Immerkaer response| over flat pixels, their count)."""
    cv2 = _cv2()
    img = rgb[..., :3].astype(np.float32)
    gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    grad = cv2.magnitude(cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3))
    flat = grad < edge_threshold * 8  # Sobel of pure noise is about 4.9 sigma; edges are far above
    flat = cv2.erode(flat.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    if mask is not None:
        flat &= mask > 127
    flat[[0, -1], :] = False
    flat[:, [0, -1]] = False
    n = int(flat.sum())
    out = np.zeros(3)
    if n < 64:
        return out, n
    for c in range(3):
        r = np.abs(cv2.filter2D(img[..., c], cv2.CV_32F, _IMMERKAER, borderType=cv2.BORDER_REFLECT))
        out[c] = float(r[flat].sum(dtype=np.float64))
    return out, n


def grain_to_add(target: np.ndarray, current: np.ndarray) -> np.ndarray:
    """The sigma of independent grain that brings ``current`` noise up to ``target``."""
    return np.sqrt(np.maximum(np.asarray(target, float) ** 2 - np.asarray(current, float) ** 2, 0.0))


class GrainBank:
    """Pre-drawn grain for frames of ``size`` (w, h): int16 per channel at the given sigma."""

    def __init__(self, size: tuple[int, int], sigma: np.ndarray, *, grain_size: float = 1.0, seed: int = 0, pad: int = 64) -> None:
        if grain_size < 0.5 or grain_size > 8:
            raise SettingsError(f"grain size must be in [0.5, 8] pixels, got {grain_size}")
        cv2 = _cv2()
        w, h = size
        self.pad = pad
        self.sigma = np.asarray(sigma, float)
        rng = np.random.default_rng(seed)
        noise = rng.standard_normal((h + pad, w + pad, 3), dtype=np.float32)
        if grain_size > 1.0:
            noise = cv2.GaussianBlur(noise, (0, 0), grain_size / 2.0)
            noise /= noise.reshape(-1, 3).std(axis=0) + 1e-6
        noise *= self.sigma.astype(np.float32)
        self.bank = np.round(noise).astype(np.int16)
        # the bank split by sign as uint8: two saturating uint8 passes (SIMD) give exactly
        # clip(rgb + bank, 0, 255), 3-4x faster than OpenCV's mixed uint8 + int16 add at 1080p
        self._up = np.clip(self.bank, 0, 255).astype(np.uint8)
        self._down = np.clip(-self.bank, 0, 255).astype(np.uint8)
        self.active = bool(np.any(self.sigma > 0.05))

    def window(self, frame: int, rect: tuple[int, int, int, int], bank: np.ndarray | None = None) -> np.ndarray:
        """The frame's grain at ``rect`` (int16; or of ``bank``, one of the bank's sign halves)."""
        x0, y0, x1, y1 = rect
        ox = (frame * 7919) % self.pad
        oy = (frame * 104729) % self.pad
        return (self.bank if bank is None else bank)[y0 + oy:y1 + oy, x0 + ox:x1 + ox]

    def add(self, rgb: np.ndarray, frame: int, rect: tuple[int, int, int, int] | None = None) -> np.ndarray:
        """uint8 RGB with grain added (saturating), for the image at ``rect`` of the frame."""
        if not self.active:
            return rgb
        if rect is None:
            rect = (0, 0, rgb.shape[1], rgb.shape[0])
        cv2 = _cv2()
        if rgb.dtype != np.uint8:
            return cv2.add(rgb, self.window(frame, rect), dtype=cv2.CV_8U)
        # a grain value is either >= 0 (in _up) or < 0 (in _down): add then subtract, each saturating, is the clipped sum
        return cv2.subtract(cv2.add(rgb, self.window(frame, rect, self._up)), self.window(frame, rect, self._down))

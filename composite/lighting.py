"""Set light on the actor: a factor per frame from a light/shadow pass or estimated from the set RGB.

The actor stands at the ground contact point, so the light that falls there is the light that
falls on them: the factor is the mean of the light pass in a window around the contact pixel
(an 8-bit pass reads 255 as fully lit, 1.0; a float EXR pass reads its values as they are).
Without a pass it is estimated from the set RGB: the luminance around the contact point over a
reference (the frame's 95th percentile luminance, i.e. what lit surfaces look like). The plate
is multiplied by the factor with a per-channel LUT (exact for uint8, no float round trip).
"""

from __future__ import annotations

import numpy as np

from .errors import SettingsError
from .keyer import _cv2

MODES = ("pass", "estimate", "none")
_LUMA = np.array([0.2126, 0.7152, 0.0722])


def _window(img: np.ndarray, xy: tuple[float, float], radius: int) -> np.ndarray:
    h, w = img.shape[:2]
    x, y = int(round(xy[0])), int(round(xy[1]))
    x = min(max(x, 0), w - 1)
    y = min(max(y, 0), h - 1)
    return img[max(0, y - radius):y + radius + 1, max(0, x - radius):x + radius + 1]


def factor_from_pass(light: np.ndarray, contact_xy: tuple[float, float], *, radius: int = 4) -> np.ndarray:
    """RGB light factor (3,) at the contact pixel of a light/shadow pass."""
    win = _window(light, contact_xy, radius).astype(np.float64)
    if light.dtype == np.uint8:
        win = win / 255.0
    elif light.dtype == np.uint16:
        win = win / 65535.0
    f = win.reshape(-1, win.shape[2] if win.ndim == 3 else 1).mean(axis=0)
    f = np.broadcast_to(f[:3] if f.size >= 3 else np.repeat(f[:1], 3), (3,)).copy()
    return f


def factor_from_rgb(rgb: np.ndarray, contact_xy: tuple[float, float], *, radius: int = 6, reference: float | None = None) -> np.ndarray:
    """RGB light factor estimated from the set render itself (grey: luminance ratio)."""
    lin = (rgb[::4, ::4, :3].astype(np.float64) / 255.0) ** 2.2
    luma = lin @ _LUMA
    ref = reference if reference is not None else float(np.percentile(luma, 95))
    win = (_window(rgb, contact_xy, radius)[..., :3].astype(np.float64) / 255.0) ** 2.2
    local = float((win.reshape(-1, 3) @ _LUMA).mean())
    f = np.clip(local / max(ref, 1e-4), 0.05, 2.0) ** (1 / 2.2)  # back to display (sRGB-ish) units
    return np.full(3, f)


def light_lut(factor: np.ndarray) -> np.ndarray:
    """(1, 256, 3) uint8 LUT multiplying each channel by its factor."""
    factor = np.asarray(factor, float)
    if factor.shape != (3,) or np.any(factor < 0) or np.any(factor > 16):
        raise SettingsError(f"light factor must be 3 values in [0, 16], got {factor}")
    v = np.arange(256, dtype=np.float64)[:, None] * factor[None, :]
    return np.clip(np.round(v), 0, 255).astype(np.uint8).reshape(1, 256, 3)


def apply_light(rgb: np.ndarray, factor: np.ndarray) -> np.ndarray:
    if np.allclose(factor, 1.0):
        return rgb
    return _cv2().LUT(rgb, light_lut(factor))

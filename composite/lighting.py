"""Set light on the actor: per pixel from the set's light pass, or one factor estimated from the set RGB.

With a light pass (``light_on_actor``), each pixel of the actor gets the light the pass shows on
the set's surfaces at the actor's own depth (within ``DEPTH_TOL``): a stand-in where the actor
stands (the take's performer mannequin), a wall right behind them, the floor at their feet.
Pixels of the actor with no such surface behind them take a normalised-convolution fill of
those that have one, so the light varies across the body and with the depth the actor stands
at, instead of one factor per frame. With no surface at the actor's depth in the box at all, the
light at the feet (a window of the pass around the contact pixel) is used, as before.

An 8-bit pass reads 255 as fully lit (1.0) and multiplies the plate's 8-bit values; a float pass
marked linear (Blender's diffuse light, ``passes.json`` ``"linear": true``) multiplies the plate's
linear light (sRGB decoded, multiplied, encoded): the plate is then lit as Blender lights a
surface of the plate's colour (under the Standard view transform).

Without a pass the factor is estimated from the set RGB: the luminance around the contact point
over a reference (the frame's 95th percentile luminance, i.e. what lit surfaces look like),
applied with a per-channel LUT (exact for uint8, no float round trip).
"""

from __future__ import annotations

import numpy as np

from .errors import SettingsError
from .keyer import _cv2

MODES = ("pass", "estimate", "none")
DEPTH_TOL = 0.5  # metres: set surfaces this close to the actor's depth light the actor
LIGHT_SCALES = (1.5, (2.0, 8.0), (3.0, 32.0), (6.0, 128.0), (48.0, 512.0))  # px (x, y) of the fill, finest first
_LUMA = np.array([0.2126, 0.7152, 0.0722])


def _window(img: np.ndarray, xy: tuple[float, float], radius: int) -> np.ndarray:
    h, w = img.shape[:2]
    x, y = int(round(xy[0])), int(round(xy[1]))
    x = min(max(x, 0), w - 1)
    y = min(max(y, 0), h - 1)
    return img[max(0, y - radius):y + radius + 1, max(0, x - radius):x + radius + 1]


def as_factors(light: np.ndarray) -> np.ndarray:
    """A light/shadow pass as float32 HxWx3 factors (8-bit: 255 = 1.0; float: as it is)."""
    img = np.asarray(light)
    scale = 1 / 255.0 if img.dtype == np.uint8 else 1 / 65535.0 if img.dtype == np.uint16 else 1.0
    # float passes (a Blender light pass: half on disk, float32 once read) are used as they are: no copy
    f = img.astype(np.float32, copy=False) if scale == 1.0 else img.astype(np.float32) * np.float32(scale)
    if f.ndim == 2:
        f = f[..., None]
    return np.ascontiguousarray(np.repeat(f[..., :1], 3, axis=2) if f.shape[2] < 3 else f[..., :3])


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


def light_on_actor(light: np.ndarray, set_depth: np.ndarray, actor_depth: np.ndarray | float, fallback: np.ndarray,
                   *, tol: float = DEPTH_TOL) -> np.ndarray:
    """Per-pixel light (HxWx3 float32) on the actor's box from the pass's factors on the same box.

    ``light``: factors (``as_factors``) of the box; ``set_depth``: the set's depth there;
    ``actor_depth``: the actor's depth (billboard or relief map); ``fallback`` (3,): the light at
    the feet, for a box with no set surface at the actor's depth.
    """
    from .edges import fill_scaled

    near = np.abs(set_depth - np.asarray(actor_depth, np.float32)) <= tol
    if not near.any():
        return np.broadcast_to(np.asarray(fallback, np.float32), light.shape).copy()
    h, w = near.shape
    q = max(1, min(h, w) // 64)  # light is smooth: big boxes are lit from a smaller copy
    # an upright actor: light spreads up and down the body first (the floor below a column lights it), then across
    out = fill_scaled(np.ascontiguousarray(light, np.float32), near.astype(np.float32), q, LIGHT_SCALES)
    return out.reshape(h, w, 3)


_SRGB_TO_LIN = np.where(np.arange(256) / 255.0 <= 0.04045, np.arange(256) / 255.0 / 12.92,
                        ((np.arange(256) / 255.0 + 0.055) / 1.055) ** 2.4).astype(np.float32)


def apply_light_map(rgb: np.ndarray, light: np.ndarray, *, linear: bool) -> np.ndarray:
    """uint8 RGB times a per-pixel light map: in linear light for a linear pass, else in 8-bit units."""
    if linear:
        lin = _SRGB_TO_LIN[rgb] * light
        out = np.where(lin <= 0.0031308, lin * 12.92, 1.055 * np.power(np.maximum(lin, 0.0031308), 1 / 2.4) - 0.055)
        return np.clip(out * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return np.clip(rgb.astype(np.float32) * light + 0.5, 0, 255).astype(np.uint8)

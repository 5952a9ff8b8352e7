"""Soft edges of a keyed actor: the screen colour taken out, spill taken out, colour unpremultiplied.

A plate pixel on a soft edge (hair, motion blur, anti-aliasing) is a mix
``c = a * F + (1 - a) * S + spill``: the actor's colour ``F`` over the screen ``S`` with coverage
``a``, plus screen light bounced onto the actor (spill, on the screen channel only). Putting that
pixel over a new background needs ``a * F + (1 - a) * B``; a keyer that only clamps the screen
channel keeps ``(1 - a) * S`` in the colour and multiplies it by ``a`` again, so soft edges come
out dark (over a screen-coloured set) or fringed (over anything else).

Here, per pixel of the edge band:

1. ``S`` is the local screen colour: a normalised-convolution fill of nearby pure-screen pixels
   (screens are never even), with pixels off that estimate dropped as seeds (faint hair).
2. ``F`` is the local actor colour: the same fill from solid pixels well inside the matte (a motion
   blur ramp is solid by colour difference long before it is opaque), then refined twice from
   the solid pixels the model explains as fully covered, so it follows the actor's parts to
   their edges.
3. ``a`` is where ``c`` lies on the line from ``S`` to ``F``: least squares on the two non-screen
   channels when the screen channel holds spill (``spill >= 0``), on all three otherwise.
4. ``spill`` is what the screen channel holds beyond the mix; the actor's colour is then
   ``(c - (1 - a) * S - spill) / a``: unpremultiplied, despilled to the actor's own balance.

Pixels the model cannot explain (an interior colour edge near the silhouette: hair meeting skin;
a part of the actor close to the screen colour with no solid pixel of its own) keep the classic
matte and clamp. The fill is what every matting method assumes: the actor's
colour is smooth at the scale of the edge. Pure array logic (float32 on the actor's box).
"""

from __future__ import annotations

import numpy as np

SCREEN_TOL = 8.0  # levels: a screen seed further than this from the local screen estimate is not screen
MODEL_TOL = 6.0  # levels: a solid pixel further than this off the screen-actor line keeps the classic matte
SEED_ERODE = ((8, 1.0), (4, 0.05), (1, 0.002))  # (erosion px, weight): deep interior first, thin parts as fallback
BAND_PX = 6  # solid pixels this close to the matte's edge are re-estimated
MIN_RB = 400.0  # squared non-screen difference below which the two-channel fit is too noisy
REFINE = 2


def _cv2():
    from .keyer import _cv2

    return _cv2()


def _disk(r: int) -> np.ndarray:
    return _cv2().getStructuringElement(_cv2().MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))


def fill(img: np.ndarray, weight: np.ndarray, sigmas: tuple[float | tuple[float, float], ...] = (2.0, 6.0, 18.0, 54.0)) -> np.ndarray:
    """Normalised convolution of ``img`` (HxWx3 float32) from pixels weighted by ``weight``:
    the finest scale with support wins, wider scales fill the rest (computed downsampled).
    A scale is a sigma in pixels or (sigma x, sigma y)."""
    cv2 = _cv2()
    h, w = weight.shape
    out = np.zeros_like(img)
    have = np.zeros((h, w), bool)
    num0 = img * weight[..., None]
    for s in sigmas:
        sx, sy = (s, s) if np.isscalar(s) else s
        fx, fy = max(1, int(sx // 3)), max(1, int(sy // 3))
        if fx > 1 or fy > 1:
            size = (max(1, w // fx), max(1, h // fy))

            def blur(a: np.ndarray) -> np.ndarray:
                small = cv2.GaussianBlur(cv2.resize(a, size, interpolation=cv2.INTER_AREA), (0, 0), sx / fx, sigmaY=sy / fy)
                return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
        else:
            def blur(a: np.ndarray) -> np.ndarray:
                return cv2.GaussianBlur(a, (0, 0), sx, sigmaY=sy)
        num, den = blur(num0), blur(weight)
        if num.ndim == 2:
            num = num[..., None]
        ok = (den > 0.02) & ~have
        out[ok] = num[ok] / den[ok, None]
        have |= ok
        if have.all():
            return out
    total = float(weight.sum())
    out[~have] = num0.reshape(-1, num0.shape[-1]).sum(0) / total if total > 0 else img.reshape(-1, img.shape[-1]).mean(0)
    return out


def unmix(rgb: np.ndarray, raw_alpha: np.ndarray, screen: int, *, spill: float = 1.0,
          fallback: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(alpha float32 0..1, unpremultiplied despilled colour float32 0..255) of a keyed box.

    ``rgb``: uint8 plate pixels; ``raw_alpha``: the colour-difference matte (uint8, 255 = solid,
    0 = screen), used only to tell screen, actor and the band between; ``screen``: 1 green, 2 blue;
    ``spill``: how much of the spill to take out (0..1); ``fallback``: the classic matte (uint8)
    for the pixels the model cannot explain (default ``raw_alpha``).
    """
    cv2 = _cv2()
    o = [i for i in range(3) if i != screen]
    img = rgb[..., :3].astype(np.float32)
    solid0 = (raw_alpha == 255).astype(np.uint8)
    screen0 = (raw_alpha == 0).astype(np.uint8)
    solid = cv2.erode(solid0, _disk(BAND_PX)) > 0
    pure = cv2.erode(screen0, _disk(2)) > 0
    band = ~solid & ~pure
    if not band.any() or not pure.any() or not solid0.any():
        return raw_alpha.astype(np.float32) / 255.0, img
    # 1. the local screen colour, from pure-screen pixels near their own estimate
    S = fill(img, pure.astype(np.float32))
    for _ in range(2):
        S = fill(img, (pure & (np.abs(img - S).max(-1) < SCREEN_TOL)).astype(np.float32))
    v = img - S

    def project(F: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # 3. coverage: where c lies on the line S -> F
        d = F - S
        drb = (d[..., o] ** 2).sum(-1)
        a_rb = (v[..., o] * d[..., o]).sum(-1) / np.maximum(drb, 1e-6)
        a_all = (v * d).sum(-1) / np.maximum((d * d).sum(-1), 1e-6)
        spilled = (v[..., screen] - a_rb * d[..., screen] >= 0) & (drb > MIN_RB)
        return np.clip(np.where(spilled, a_rb, a_all), 0.0, 1.0), d

    # 2. the local actor colour: deep interior first, then what the model calls solid
    w_deep = sum(cv2.erode(solid0, _disk(r)).astype(np.float32) * wt for r, wt in SEED_ERODE)
    a, d = project(fill(img, w_deep))
    for _ in range(REFINE):
        seeds = cv2.erode(((solid0 > 0) & (a >= 0.98)).astype(np.uint8), _disk(1)).astype(np.float32)
        F = fill(img, w_deep + seeds)
        a, d = project(F)
    # pixels off the line (a colour edge inside the actor) keep the classic matte
    resid = np.abs(v[..., o] - a[..., None] * d[..., o]).max(-1)
    odd = (resid > MODEL_TOL) & (raw_alpha > 0)
    classic = (raw_alpha if fallback is None else np.where(raw_alpha == 255, 255, fallback)).astype(np.float32) / 255.0
    a = np.where(odd, classic, a)
    # 4. spill beyond the mix on the screen channel, then the unpremultiplied colour
    excess = np.where(odd, 0.0, np.maximum(0.0, v[..., screen] - a * d[..., screen]))
    P = img - (1.0 - a[..., None]) * S
    P[..., screen] -= spill * excess
    U = np.where(a[..., None] > 1e-3, P / np.maximum(a, 1e-3)[..., None], F)
    keep = band & ~odd
    alpha = np.where(solid, 1.0, np.where(pure, 0.0, a)).astype(np.float32)
    colour = np.where(keep[..., None], U, img)
    colour = np.where(pure[..., None], F, colour)  # beyond the matte: the actor's colour, so resampling never pulls in screen
    clamp = ~keep & ~pure  # classic despill where the model does not speak
    lim = colour[..., o].max(-1)
    clamped = colour[..., screen] - spill * np.maximum(0.0, colour[..., screen] - lim)
    colour[..., screen] = np.where(clamp, clamped, colour[..., screen])
    return alpha, np.clip(colour, 0.0, 255.0)

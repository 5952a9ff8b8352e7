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
FILL_SCALES = (2.0, 6.0, 18.0, 54.0)  # px: the actor's colour from the finest scale that has solid pixels

def _cv2():
    from .keyer import _cv2

    return _cv2()


def _disk(r: int) -> np.ndarray:
    return _cv2().getStructuringElement(_cv2().MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))


def _blurs(num0: np.ndarray, weight: np.ndarray, sigma: float | tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """(blurred ``num0`` = img * weight, blurred weight) at one scale (a sigma or (sigma x, sigma y)), full size."""
    cv2 = _cv2()
    h, w = weight.shape
    sx, sy = (sigma, sigma) if np.isscalar(sigma) else sigma
    fx, fy = max(1, int(sx // 3)), max(1, int(sy // 3))
    if fx == 1 and fy == 1:
        num, den = cv2.GaussianBlur(num0, (0, 0), sx, sigmaY=sy), cv2.GaussianBlur(weight, (0, 0), sx, sigmaY=sy)
    else:
        size = (max(1, w // fx), max(1, h // fy))
        num = cv2.resize(cv2.GaussianBlur(cv2.resize(num0, size, interpolation=cv2.INTER_AREA), (0, 0), sx / fx, sigmaY=sy / fy),
                         (w, h), interpolation=cv2.INTER_LINEAR)
        den = cv2.resize(cv2.GaussianBlur(cv2.resize(weight, size, interpolation=cv2.INTER_AREA), (0, 0), sx / fx, sigmaY=sy / fy),
                         (w, h), interpolation=cv2.INTER_LINEAR)
    return num.reshape(h, w, -1), den


def fill(img: np.ndarray, weight: np.ndarray, sigmas: tuple[float | tuple[float, float], ...] = (2.0, 6.0, 18.0, 54.0),
         at: np.ndarray | None = None) -> np.ndarray:
    """Normalised convolution of ``img`` (HxWxC float32) from pixels weighted by ``weight``: the
    finest scale with support wins, wider scales fill the rest (computed downsampled). A scale is
    a sigma in pixels or (sigma x, sigma y). ``at``: flat pixel indices to return (N x C) instead
    of the whole image."""
    h, w = weight.shape
    c = img.shape[-1] if img.ndim == 3 else 1
    out = np.empty((h * w if at is None else len(at), c), np.float32)
    todo = np.ones(len(out), bool)  # pixels no finer scale has spoken for yet
    num0 = img * weight[..., None] if img.ndim == 3 else img * weight
    for s in sigmas:  # fine to coarse, each pixel from the finest scale with support; stops once all have one
        num, den = _blurs(num0, weight, s)
        num, den = num.reshape(-1, num.shape[-1]), den.reshape(-1)
        if at is not None:
            num, den = num[at], den[at]
        here = todo & (den > 0.02)
        np.divide(num, den[:, None], out=out, where=here[:, None])  # in place: no full-size temporaries per scale
        todo &= ~here
        if not todo.any():
            return out.reshape(h, w, -1) if at is None else out
    # beyond every scale's reach: the weighted mean of the whole image (rare: only when the seeds are few and far)
    total = float(weight.sum())
    flat = img.reshape(-1, c)
    out[todo] = (weight.reshape(-1) @ flat / total if total > 0 else flat.mean(0)).astype(np.float32)
    return out.reshape(h, w, -1) if at is None else out


def fill_scaled(img: np.ndarray, weight: np.ndarray, q: int, sigmas: tuple[float | tuple[float, float], ...],
                at: np.ndarray | None = None) -> np.ndarray:
    """``fill`` computed at 1/q size (sigmas given in full-size pixels), brought back to full size."""
    cv2 = _cv2()
    h, w = weight.shape
    if q <= 1:
        out = fill(img, weight, sigmas, at=at)
        return out if at is not None else out.reshape(h * w, -1)
    size = (max(1, w // q), max(1, h // q))
    scaled = tuple(max(s / q, 0.5) if np.isscalar(s) else (max(s[0] / q, 0.5), max(s[1] / q, 0.5)) for s in sigmas)
    small = fill(cv2.resize(img, size, interpolation=cv2.INTER_AREA), cv2.resize(weight, size, interpolation=cv2.INTER_AREA), scaled)
    full = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR).reshape(h * w, -1)
    return full if at is None else full[at]


def _screen(img: np.ndarray, pure: np.ndarray, q: int = 4) -> np.ndarray:
    """The local screen colour (HxWx3) from pure-screen pixels, at 1/q size (a screen is smooth):
    blocks that are all screen, then only those near their own estimate (drops faint hair)."""
    cv2 = _cv2()
    h, w = pure.shape
    size = (max(1, w // q), max(1, h // q))
    small = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
    seeds = cv2.resize(pure.astype(np.float32), size, interpolation=cv2.INTER_AREA) > 0.999
    if not seeds.any():
        seeds = cv2.resize(pure.astype(np.float32), size, interpolation=cv2.INTER_AREA) > 0.5
    sig = tuple(s / q for s in (2.0, 6.0, 18.0, 54.0) if s / q >= 0.5) or (0.5,)
    S = fill(small, seeds.astype(np.float32), sig)
    for _ in range(2):
        near = seeds & (np.abs(small - S).max(-1) < SCREEN_TOL)
        if near.any():
            S = fill(small, near.astype(np.float32), sig)
    return cv2.resize(S, (w, h), interpolation=cv2.INTER_LINEAR)


def unmix(rgb: np.ndarray, raw_alpha: np.ndarray, screen: int, *, spill: float = 1.0,
          fallback: np.ndarray | None = None, classic: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(alpha uint8, the actor's colour uint8 RGB) of a keyed box, soft edges unmixed.

    ``rgb``: uint8 plate pixels; ``raw_alpha``: the colour-difference matte (uint8, 255 = solid,
    0 = screen), used only to tell screen, actor and the band between; ``screen``: 1 green, 2 blue;
    ``spill``: how much of the spill to take out (0..1); ``fallback``: the classic matte (uint8)
    for the pixels the model cannot explain (default ``raw_alpha``); ``classic``: the classic
    despilled colour (uint8) kept where the model does not speak (default: the plate).
    """
    cv2 = _cv2()
    o = [i for i in range(3) if i != screen]
    rgb = rgb[..., :3]
    alpha = raw_alpha.copy()
    colour = (rgb if classic is None else classic).copy()
    solid0 = cv2.compare(raw_alpha, 255, cv2.CMP_EQ) // 255
    screen0 = cv2.compare(raw_alpha, 0, cv2.CMP_EQ) // 255
    solid = cv2.erode(solid0, _disk(BAND_PX))
    pure = cv2.erode(screen0, _disk(2))
    band = np.flatnonzero(((solid | pure) == 0).ravel())
    if band.size == 0 or not pure.any() or not solid0.any():
        return alpha, colour
    img = rgb.astype(np.float32)
    c = img.reshape(-1, 3)[band]
    # 1. the local screen colour
    S_full = _screen(img, pure > 0)
    S = S_full.reshape(-1, 3)[band]
    v = c - S

    def project(F: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # 3. coverage: where c lies on the line S -> F
        d = F - S
        drb = (d[:, o] ** 2).sum(-1)
        a_rb = (v[:, o] * d[:, o]).sum(-1) / np.maximum(drb, 1e-6)
        a_all = (v * d).sum(-1) / np.maximum((d * d).sum(-1), 1e-6)
        spilled = (v[:, screen] - a_rb * d[:, screen] >= 0) & (drb > MIN_RB)
        return np.clip(np.where(spilled, a_rb, a_all), 0.0, 1.0), d

    # 2. the local actor colour: deep interior first, then what the model calls solid
    q = 2 if min(rgb.shape[:2]) >= 128 else 1  # big boxes: the actor's colour at half size (it is smooth)
    w_deep = sum(cv2.erode(solid0, _disk(r)).astype(np.float32) * wt for r, wt in SEED_ERODE)
    F = fill_scaled(img, w_deep, q, FILL_SCALES, at=band)
    a, d = project(F)
    for _ in range(REFINE):
        seeds = solid0.copy()
        seeds.reshape(-1)[band[a < 0.98]] = 0
        F = fill_scaled(img, w_deep + cv2.erode(seeds, _disk(1)).astype(np.float32), q, FILL_SCALES, at=band)
        a, d = project(F)
    # pixels off the line (a colour edge inside the actor) keep the classic matte
    raw = raw_alpha.reshape(-1)[band]
    resid = np.abs(v[:, o] - a[:, None] * d[:, o]).max(-1)
    odd = (resid > MODEL_TOL) & (raw > 0)
    fb = raw if fallback is None else np.where(raw == 255, 255, fallback.reshape(-1)[band])
    a = np.where(odd, fb.astype(np.float32) / 255.0, a)
    # 4. spill beyond the mix on the screen channel, then the unpremultiplied colour
    excess = np.where(odd, 0.0, np.maximum(0.0, v[:, screen] - a * d[:, screen]))
    P = c - (1.0 - a[:, None]) * S
    P[:, screen] -= spill * excess
    U = np.where(a[:, None] > 1e-3, P / np.maximum(a, 1e-3)[:, None], F)
    alpha.reshape(-1)[band] = (a * 255.0 + 0.5).astype(np.uint8)
    keep = ~odd
    colour.reshape(-1, 3)[band[keep]] = (np.clip(U[keep], 0, 255) + 0.5).astype(np.uint8)
    # beyond the matte: the actor's colour (coarse), so resampling never pulls screen into the edge
    h, w = raw_alpha.shape
    far = fill_scaled(img, w_deep, 4, (18.0, 54.0)).reshape(h, w, 3)
    cv2.copyTo((far + 0.5).clip(0, 255).astype(np.uint8), pure, colour)
    return alpha, colour

"""Poisson (seamless) cloning of a swapped face into its frame, as OpenCV's ``seamlessClone``
(``NORMAL_CLONE``) computes it, at a fraction of its cost.

Why not ``cv2.seamlessClone``: it solves the Poisson equation with discrete sine transforms done
as complex DFTs of length ``2 * (side - 1)`` of the mask's box, three channels one by one, and it
was 85 % of the whole merge without the network (cProfile, 1080p); its time follows the DFT
lengths' factors more than the box size. Here the same system is solved with scipy's DST-I
(pocketfft), all three channels at once: 2-7x faster on 1080p face boxes, one core
(``bench/seamless_clone.py``); without scipy, OpenCV's.

The discretisation is OpenCV's, step for step (``modules/photo/src/seamless_cloning*.cpp``):
the mask's outer pixel ring cleared; the box of what is left is the domain; the source's
gradients inside the mask eroded by 3 px, the destination's elsewhere; the destination on the
box's border as the boundary; the result truncated (not rounded) to uint8. The solve runs in
float32 as OpenCV's, in another order of operations, so a pixel may differ by 1 level (the tests
measure it).
"""

from __future__ import annotations

import importlib.util

import numpy as np

_HAVE_SCIPY = importlib.util.find_spec("scipy") is not None


def _solve(lap: np.ndarray, img: np.ndarray) -> np.ndarray:
    """The Poisson solution on ``img``'s interior (Dirichlet: ``img``'s border), as uint8 CxHxW:
    ``lap`` is the guidance field's divergence (CxHxW float32), ``img`` the destination box (CxHxW)."""
    import scipy.fft as sfft

    _, h, w = img.shape
    f = img.astype(np.float32)
    # the border's share of the 5-point Laplacian at the interior's outer ring (OpenCV: Laplacian of the border-only image)
    rhs = lap[:, 1:-1, 1:-1].copy()
    rhs[:, 0] -= f[:, 0, 1:-1]
    rhs[:, -1] -= f[:, -1, 1:-1]
    rhs[:, :, 0] -= f[:, 1:-1, 0]
    rhs[:, :, -1] -= f[:, 1:-1, -1]
    fx = 2.0 * np.cos(np.pi * np.arange(1, w - 1) / (w - 1))
    fy = 2.0 * np.cos(np.pi * np.arange(1, h - 1) / (h - 1))
    denom = (fy[:, None] + fx[None, :] - 4.0).astype(np.float32)
    coef = sfft.dstn(rhs, type=1, axes=(1, 2), workers=1, overwrite_x=True)
    coef /= denom
    u = sfft.idstn(coef, type=1, axes=(1, 2), workers=1, overwrite_x=True)
    out = img.copy()
    out[:, 1:-1, 1:-1] = np.clip(u, 0, 255).astype(np.uint8)  # truncated, as OpenCV does (not rounded)
    return out


def seamless_clone(src: np.ndarray, dst: np.ndarray, mask: np.ndarray, center: tuple[int, int]) -> np.ndarray:
    """``cv2.seamlessClone(src, dst, mask, center, cv2.NORMAL_CLONE)`` for uint8 RGB ``src`` and
    ``dst`` of one size and a 0/255 uint8 ``mask`` (left as it is: OpenCV's erodes the caller's
    mask in place). Raises ``ValueError`` where OpenCV raises (the clone's box leaves ``dst``)."""
    import cv2

    m = np.zeros_like(mask)
    m[1:-1, 1:-1] = mask[1:-1, 1:-1]  # OpenCV clears the mask's outer ring
    x, y, bw, bh = cv2.boundingRect(m)
    out = dst.copy()
    if bw == 0 or bh == 0:
        return out
    dx, dy = center[0] - bw // 2, center[1] - bh // 2
    if dx < 0 or dy < 0 or dx + bw > dst.shape[1] or dy + bh > dst.shape[0]:
        raise ValueError(f"the clone's box {bw}x{bh} at ({dx}, {dy}) leaves the {dst.shape[1]}x{dst.shape[0]} destination")
    if bw < 3 or bh < 3 or not _HAVE_SCIPY:
        return cv2.seamlessClone(src, dst, mask.copy(), center, cv2.NORMAL_CLONE)
    mroi = m[y:y + bh, x:x + bw]
    I = np.ascontiguousarray(dst[dy:dy + bh, dx:dx + bw].transpose(2, 0, 1))  # planar: each channel's transforms contiguous
    P = np.ascontiguousarray(src[y:y + bh, x:x + bw].transpose(2, 0, 1)).astype(np.float32)
    P *= (mroi > 0)
    # the source's gradients only 3 px inside the mask (outside the box counts as no mask, as in OpenCV's in-place erode)
    inner = cv2.erode(mroi, np.ones((3, 3), np.uint8), iterations=3, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    inner = inner.astype(np.float32) / 255.0
    outer = 1.0 - inner
    If = I.astype(np.float32)

    def field(a: np.ndarray, b: np.ndarray, axis: int) -> np.ndarray:
        """Forward differences of ``a`` outside and ``b`` inside the eroded mask (the last one
        reflected, as filter2D's default border)."""
        g = np.empty_like(a)
        for src_, wt, first in ((a, outer, True), (b, inner, False)):
            d = np.empty_like(a)
            if axis == 2:
                np.subtract(src_[:, :, 1:], src_[:, :, :-1], out=d[:, :, :-1])
                d[:, :, -1] = src_[:, :, -2] - src_[:, :, -1]
            else:
                np.subtract(src_[:, 1:], src_[:, :-1], out=d[:, :-1])
                d[:, -1] = src_[:, -2] - src_[:, -1]
            d *= wt
            if first:
                g[:] = d
            else:
                g += d
        return g

    gx = field(If, P, 2)
    gy = field(If, P, 1)
    lap = np.zeros_like(gx)  # backward differences of the field: its divergence (only the interior is used)
    np.subtract(gx[:, :, 1:], gx[:, :, :-1], out=lap[:, :, 1:])
    lap[:, 1:] += gy[:, 1:] - gy[:, :-1]
    out[dy:dy + bh, dx:dx + bw] = _solve(lap, I).transpose(1, 2, 0)
    return out

"""Control images for ControlNets, from exact render passes or from the image itself.

Pure functions on arrays (HxWx3 uint8 out, as ControlNets take them):

- ``depth_control``: planar depth in metres (the Blender depth pass) -> normalized inverse depth,
  near = bright, background = black: the MiDaS-style map depth ControlNets were trained on.
  Normalized over a fixed ``[near, far]`` range (the runner uses one range per shot, so the map
  does not breathe from frame to frame).
- ``normal_control``: camera-space normals in [-1, 1] -> RGB.
- ``mask_control``: a 0/255 mask -> 3-channel.
- ``canny_control``, ``lineart_control``, ``softedge_control``, ``luminance_normals``: image-derived
  controls for live action without passes (OpenCV; no weights needed). ``stylize.annotators``
  uses controlnet_aux's trained annotators instead where their weights are present, and these
  as the named fallback.
"""

from __future__ import annotations

import numpy as np

from machinima.passes import BACKGROUND_DEPTH

from .errors import ControlError

IMAGE_KINDS = ("canny", "lineart", "softedge", "rgb")
PASS_KINDS = {"depth": "depth", "pose": "pose", "normal": "normal"}


def _cv2():
    import machinima.imageseq  # noqa: F401  (sets OPENCV_IO_ENABLE_OPENEXR before cv2 loads)
    import cv2

    return cv2


def _rgb3(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim == 2:
        x = np.repeat(x[..., None], 3, axis=2)
    return np.ascontiguousarray(x[..., :3])


def depth_range(depths: list[np.ndarray], *, lo_pct: float = 1.0, hi_pct: float = 99.0) -> tuple[float, float]:
    """A [near, far] range (metres) covering the valid depth of several frames (one shot)."""
    vals = [np.asarray(d, np.float32)[_valid(d)] for d in depths]
    vals = [v for v in vals if v.size]
    if not vals:
        return 0.1, 100.0
    allv = np.concatenate(vals)
    near, far = float(np.percentile(allv, lo_pct)), float(np.percentile(allv, hi_pct))
    near = max(near, 1e-3)
    return near, max(far, near * 1.01)


def _valid(depth: np.ndarray) -> np.ndarray:
    d = np.asarray(depth)
    return np.isfinite(d) & (d > 0) & (d < BACKGROUND_DEPTH * 0.5)


def depth_control(depth: np.ndarray, near: float | None = None, far: float | None = None) -> np.ndarray:
    """Depth (HxW metres) -> HxWx3 uint8 inverse depth scaled to [0, 255] over [near, far]."""
    d = np.asarray(depth, np.float32)
    if d.ndim == 3:
        d = d[..., 0]
    if d.ndim != 2:
        raise ControlError(f"depth must be HxW, got shape {np.asarray(depth).shape}")
    valid = _valid(d)
    if near is None or far is None:
        near, far = depth_range([d])
    inv = np.zeros_like(d)
    inv[valid] = 1.0 / np.clip(d[valid], near, far)
    lo, hi = 1.0 / far, 1.0 / near
    out = np.clip((inv - lo) / max(hi - lo, 1e-12), 0.0, 1.0)
    out[~valid] = 0.0
    return _rgb3((out * 255.0 + 0.5).astype(np.uint8))


def normal_control(normal: np.ndarray) -> np.ndarray:
    n = np.asarray(normal, np.float32)[..., :3]
    return ((np.clip(n, -1, 1) * 0.5 + 0.5) * 255 + 0.5).astype(np.uint8)


def mask_control(mask: np.ndarray) -> np.ndarray:
    m = np.asarray(mask)
    if m.ndim == 3:
        m = m[..., 0]
    return _rgb3(np.where(m > 127, 255, 0).astype(np.uint8))


def canny_control(image: np.ndarray, low: int = 100, high: int = 200) -> np.ndarray:
    cv2 = _cv2()
    gray = cv2.cvtColor(_rgb3(image), cv2.COLOR_RGB2GRAY)
    return _rgb3(cv2.Canny(gray, int(low), int(high)))


def lineart_control(image: np.ndarray, sigma: float = 1.0, k: float = 1.6, gain: float = 12.0) -> np.ndarray:
    """White lines on black from a difference of Gaussians (an XDoG-like line drawing)."""
    cv2 = _cv2()
    gray = cv2.cvtColor(_rgb3(image), cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
    g1 = cv2.GaussianBlur(gray, (0, 0), sigma)
    g2 = cv2.GaussianBlur(gray, (0, 0), sigma * k)
    dog = np.clip((g2 - g1) * gain, 0.0, 1.0)
    return _rgb3((dog * 255 + 0.5).astype(np.uint8))


def softedge_control(image: np.ndarray, blur: float = 1.5) -> np.ndarray:
    """Soft edges (HED-like): blurred gradient magnitude normalized to [0, 255]."""
    cv2 = _cv2()
    gray = cv2.cvtColor(_rgb3(image), cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
    gray = cv2.GaussianBlur(gray, (0, 0), blur)
    gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3)
    mag = np.sqrt(gx * gx + gy * gy)
    mag = mag / max(float(mag.max()), 1e-6)
    return _rgb3((np.sqrt(mag) * 255 + 0.5).astype(np.uint8))


def luminance_normals(image: np.ndarray, blur: float = 2.0, strength: float = 2.0 * np.pi) -> np.ndarray:
    """Normals of the luminance read as a height field (bright = near), as RGB ``(n + 1) / 2``:
    the normal-map-from-photo trick, not geometry; the weight-free fallback of normal controls."""
    cv2 = _cv2()
    gray = cv2.cvtColor(_rgb3(image), cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
    gray = cv2.GaussianBlur(gray, (0, 0), blur)
    gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3)
    n = np.stack([-gx * strength, gy * strength, np.ones_like(gx)], axis=2)  # x right, y up, z toward the camera
    n /= np.linalg.norm(n, axis=2, keepdims=True)
    return normal_control(n)


def image_control(kind: str, image: np.ndarray, options: dict | None = None) -> np.ndarray:
    """A control derived from the frame itself."""
    o = dict(options or {})
    if kind == "canny":
        return canny_control(image, o.get("low", 100), o.get("high", 200))
    if kind == "lineart":
        return lineart_control(image, o.get("sigma", 1.0))
    if kind == "softedge":
        return softedge_control(image, o.get("blur", 1.5))
    if kind == "rgb":
        return _rgb3(image)
    raise ControlError(f"{kind!r} is not an image-derived control; those are {', '.join(IMAGE_KINDS)}")

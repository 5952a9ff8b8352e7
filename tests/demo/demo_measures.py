"""Measures the demo test takes on the demo's own frames; each has a trivial baseline beside it.

- ``face_error``: the swapped face's landmarks (found again by ``machinima.faces``) against the
  plate face's landmarks on the same frame, RMS pixels over the eye, nose and mouth points.
- ``edge_halo``: how much darker the composite is in the matte's soft edge than a straight
  alpha-over ``a * F + (1 - a) * B`` of the same frame (B: the rendered set, F: the composite's own
  solid foreground next to the edge), in 8-bit levels; positive = a dark halo.
- ``wall_noise``: high-pass residual (8-bit levels, median absolute deviation) of the render on
  flat, edge-free surfaces far back in the set (the back wall), chosen from the depth pass.
- ``mouth_opening``: inner-lip gap over face height from the face mesh.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

KEY_POINTS = [33, 133, 362, 263, 1, 61, 291, 13, 14, 152, 10]  # eye corners, nose tip, mouth corners, lips, chin, brow


def frames(folder: Path) -> dict[int, Path]:
    """Frame number -> file, whatever the step's intermediate format (QOI, PNG, EXR)."""
    from machinima.imageseq import list_frames

    return list_frames(folder)


def landmarks(search, img: np.ndarray) -> np.ndarray | None:
    face = search.biggest(img)
    return None if face is None or face.mesh is None else face.mesh[:, :2]


def face_error(search, plate: np.ndarray, other: np.ndarray) -> float | None:
    a, b = landmarks(search, plate), landmarks(search, other)
    if a is None or b is None:
        return None
    d = a[KEY_POINTS] - b[KEY_POINTS]
    return float(np.sqrt((d ** 2).sum(axis=1).mean()))


def luma(img: np.ndarray) -> np.ndarray:
    img = img[..., :3].astype(np.float64)
    return img @ np.array([0.299, 0.587, 0.114])


def edge_halo(comp: np.ndarray, render: np.ndarray, alpha: np.ndarray) -> tuple[float, int]:
    """(mean darkening in levels, edge pixels) of the composite against a straight alpha-over."""
    import cv2

    a = alpha.astype(np.float64)
    if a.ndim == 3:
        a = a[..., 0]
    a = a / (255.0 if alpha.dtype == np.uint8 else 1.0)
    solid = (a > 0.98).astype(np.float64)
    c, b = luma(comp), luma(render)
    # the foreground next to each edge pixel: the composite where the actor is solid, spread outwards
    num = cv2.GaussianBlur(c * solid, (0, 0), 2.0)
    den = cv2.GaussianBlur(solid, (0, 0), 2.0)
    band = (a > 0.05) & (a < 0.95) & (den > 0.05)
    if band.sum() == 0:
        return 0.0, 0
    fg = num[band] / den[band]
    straight = a[band] * fg + (1 - a[band]) * b[band]
    return float((straight - c[band]).mean()), int(band.sum())


def wall_noise(rgb: np.ndarray, depth: np.ndarray, near: float = 9.0, far: float = 30.0) -> tuple[float, int]:
    """(noise in levels, pixels measured) on far flat surfaces: depth between ``near`` and ``far``
    metres (the back wall seen by the wide camera), away from any depth edge."""
    import cv2

    d = depth.astype(np.float64)
    if d.ndim == 3:
        d = d[..., 0]
    flat = (d > near) & (d < far)
    edges = np.abs(cv2.Laplacian(np.nan_to_num(d, posinf=1e3), cv2.CV_64F)) > 0.05
    flat &= ~cv2.dilate(edges.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
    flat = cv2.erode(flat.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    y = luma(rgb)
    resid = y - cv2.GaussianBlur(y, (0, 0), 1.5)
    r = resid[flat]
    if r.size == 0:
        return 0.0, 0
    return float(1.4826 * np.median(np.abs(r - np.median(r)))), int(r.size)


def mouth_opening(search, img: np.ndarray) -> float | None:
    lm = landmarks(search, img)
    if lm is None:
        return None
    return float(np.linalg.norm(lm[13] - lm[14]) / np.linalg.norm(lm[10] - lm[152]))

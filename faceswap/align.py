"""Alignment: a similarity transform (Umeyama) from a face's landmarks to a mean face, then a
square crop whose extent depends on the face type (as in DeepFaceLab).

The mean face is 51 points (68-point indices 17..67: brows, nose, eyes, mouth; the jaw is left
out because it moves with the mouth) in a unit square (the widely used reference layout that
DeepFaceLab aligns to). Face types grow the crop around it and, for whole face and head, move
its centre up to take in the forehead / the whole head::

    type    half-side (unit square = 0.5)   centre shift up
    half    0.5                             0
    mid     0.5 + 0.0675 * sqrt(2)          0
    full    0.5 + 0.2109 * sqrt(2)          0
    whole   0.5 + 0.40 * sqrt(2)            0.07
    head    0.5 + 0.70 * sqrt(2)            0.50  (plus a sideways shift by yaw)

``face_transform(landmarks, face_type, size)`` gives the 2x3 matrix image -> aligned crop.
"""

from __future__ import annotations

import math

import numpy as np

from .errors import FaceswapError

FACE_TYPES: dict[str, tuple[float, float]] = {
    "half": (0.0, 0.0),
    "mid": (0.0675, 0.0),
    "full": (0.2109375, 0.0),
    "whole": (0.40, 0.07),
    "head": (0.70, 0.50),
}
MIN_SIZE, MAX_SIZE = 64, 1024

MEAN_FACE = np.array([
    [0.000213256, 0.106454], [0.0752622, 0.038915], [0.18113, 0.0187482], [0.29077, 0.0344891], [0.393397, 0.0773906],
    [0.586856, 0.0773906], [0.689483, 0.0344891], [0.799124, 0.0187482], [0.904991, 0.038915], [0.98004, 0.106454],
    [0.490127, 0.203352], [0.490127, 0.307009], [0.490127, 0.409805], [0.490127, 0.515625],
    [0.36688, 0.587326], [0.426036, 0.609345], [0.490127, 0.628106], [0.554217, 0.609345], [0.613373, 0.587326],
    [0.121737, 0.216423], [0.187122, 0.178758], [0.265825, 0.179852], [0.334606, 0.231733], [0.260918, 0.245099], [0.182743, 0.244077],
    [0.645647, 0.231733], [0.714428, 0.179852], [0.793132, 0.178758], [0.858516, 0.216423], [0.79751, 0.244077], [0.719335, 0.245099],
    [0.254149, 0.780233], [0.340985, 0.745405], [0.428858, 0.727388], [0.490127, 0.742578], [0.551395, 0.727388], [0.639268, 0.745405],
    [0.726104, 0.780233], [0.642159, 0.864805], [0.556721, 0.902192], [0.490127, 0.909281], [0.423532, 0.902192], [0.338094, 0.864805],
    [0.290379, 0.784792], [0.428096, 0.778746], [0.490127, 0.785343], [0.552157, 0.778746], [0.689874, 0.784792], [0.553364, 0.824182],
    [0.490127, 0.831803], [0.42689, 0.824182],
], np.float64)
MEAN_IDX = np.arange(17, 68)


def check_face_type(face_type: str) -> str:
    if face_type not in FACE_TYPES:
        raise FaceswapError(f"unknown face type {face_type!r}", hint=f"use one of {', '.join(FACE_TYPES)}")
    return face_type


def check_size(size: int) -> int:
    if not (MIN_SIZE <= int(size) <= MAX_SIZE):
        raise FaceswapError(f"face size {size} is out of range", hint=f"use {MIN_SIZE}..{MAX_SIZE} pixels")
    return int(size)


def umeyama(src: np.ndarray, dst: np.ndarray, scale: bool = True) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) mapping src -> dst, 3x3.

    Umeyama (1991), "Least-squares estimation of transformation parameters between two point
    patterns", eqs. 34-43; reflections are excluded.
    """
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    n, dim = src.shape
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s_c, d_c = src - mu_s, dst - mu_d
    cov = d_c.T @ s_c / n
    u, sv, vt = np.linalg.svd(cov)
    d = np.ones(dim)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[-1] = -1
    r = u @ np.diag(d) @ vt
    var_s = (s_c ** 2).sum() / n
    c = (sv * d).sum() / var_s if scale and var_s > 0 else 1.0
    t = np.eye(dim + 1)
    t[:dim, :dim] = c * r
    t[:dim, dim] = mu_d - c * r @ mu_s
    return t


def to_mean_face(landmarks: np.ndarray) -> np.ndarray:
    """2x3 similarity image -> unit mean-face space."""
    lm = np.asarray(landmarks, np.float64)
    if lm.shape != (68, 2) or not np.all(np.isfinite(lm)):
        raise FaceswapError(f"landmarks must be a finite (68, 2) array, got {lm.shape}")
    return umeyama(lm[MEAN_IDX], MEAN_FACE)[:2]


def estimate_yaw_pitch(landmarks: np.ndarray) -> tuple[float, float]:
    """Rough yaw and pitch in [-1, 1] from landmarks in mean-face space (0 = frontal).

    Yaw: where the nose tip sits between the jaw ends; pitch: where it sits between the
    brows and the chin. Good enough to sort and filter a faceset by pose.
    """
    m = to_mean_face(landmarks)
    lm = transform_points(landmarks, m)
    left, right = lm[0], lm[16]
    nose = lm[30]
    width = right[0] - left[0]
    yaw = 0.0 if abs(width) < 1e-9 else float(np.clip(((nose[0] - left[0]) / width - 0.5) * 2, -1, 1))
    brow = lm[17:27, 1].mean()
    chin = lm[8, 1]
    height = chin - brow
    # the nose tip sits at about 0.42 of the brow-chin span on a frontal face
    pitch = 0.0 if abs(height) < 1e-9 else float(np.clip(((nose[1] - brow) / height - 0.42) * 4, -1, 1))
    return yaw, pitch


def face_transform(landmarks: np.ndarray, face_type: str = "whole", size: int = 256) -> np.ndarray:
    """2x3 matrix mapping image pixels to the aligned ``size`` x ``size`` crop."""
    check_face_type(face_type)
    padding, up = FACE_TYPES[face_type]
    m = np.vstack([to_mean_face(landmarks), [0, 0, 1]])
    half = 0.5 + padding * math.sqrt(2.0)
    cx, cy = 0.5, 0.5 - up
    if face_type == "head":
        yaw, _ = estimate_yaw_pitch(landmarks)
        yaw *= abs(math.tanh(yaw * 2))  # damp near frontal
        cx += yaw * 0.5
    s = size / (2 * half)
    crop = np.array([[s, 0, -(cx - half) * s], [0, s, -(cy - half) * s], [0, 0, 1]])
    return (crop @ m)[:2]


def transform_points(points: np.ndarray, mat: np.ndarray, invert: bool = False) -> np.ndarray:
    m = np.asarray(mat, np.float64)
    if invert:
        m = invert_affine(m)
    p = np.asarray(points, np.float64)
    return p @ m[:, :2].T + m[:, 2]


def invert_affine(mat: np.ndarray) -> np.ndarray:
    """Inverse of a 2x3 affine (closed form: no LAPACK call in the per-frame path)."""
    m = np.asarray(mat, np.float64)
    a, b, c, d = m[0, 0], m[0, 1], m[1, 0], m[1, 1]
    det = a * d - b * c
    if abs(det) < 1e-12:
        raise FaceswapError("a degenerate face transform cannot be inverted")
    ia = np.array([[d, -b], [-c, a]]) / det
    return np.hstack([ia, -(ia @ m[:, 2])[:, None]])


def align(image: np.ndarray, landmarks: np.ndarray, face_type: str = "whole", size: int = 256, *,
          mat: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The aligned face crop and its 2x3 matrix (image -> crop)."""
    import cv2

    check_size(size)
    m = face_transform(landmarks, face_type, size) if mat is None else mat
    out = cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return out, m


def similarity_params(mat: np.ndarray) -> tuple[float, float, np.ndarray]:
    """(scale, rotation radians, translation) of a 2x3 similarity."""
    m = np.asarray(mat, np.float64)
    scale = float(math.hypot(m[0, 0], m[1, 0]))
    angle = float(math.atan2(m[1, 0], m[0, 0]))
    return scale, angle, m[:, 2].copy()

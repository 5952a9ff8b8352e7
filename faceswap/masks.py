"""Face masks: the landmark hull (with a forehead extension for whole-face and head types),
erode/dilate and feather, region weights for training (eyes and mouth), and an optional
occlusion segmenter (an ONNX model of yours, XSeg-like) that cuts hands, hair or a mic out.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .landmarks import BROWS, JAW, LEFT_EYE, MOUTH, RIGHT_EYE


def hull_points(landmarks: np.ndarray, face_type: str = "full") -> np.ndarray:
    """The points whose convex hull is the face; for whole/head the brows are lifted by
    a share of the brow-to-chin height so the forehead is inside."""
    lm = np.asarray(landmarks, np.float64)
    pts = [lm[JAW], lm[BROWS]]
    if face_type in ("whole", "head"):
        chin = lm[8]
        brow_c = lm[BROWS].mean(0)
        up = brow_c - chin
        lift = 0.35 if face_type == "whole" else 0.6
        pts.append(lm[BROWS] + up * lift)
    return np.concatenate(pts)


def hull_mask(landmarks: np.ndarray, shape: tuple[int, int], face_type: str = "full") -> np.ndarray:
    """float32 HxW mask in [0, 1]: 1 inside the face hull."""
    import cv2

    mask = np.zeros(shape[:2], np.uint8)
    hull = cv2.convexHull(np.round(hull_points(landmarks, face_type)).astype(np.int32))
    cv2.fillConvexPoly(mask, hull, 255)
    return mask.astype(np.float32) / 255.0


def erode_blur(mask: np.ndarray, erode: int = 0, blur: int = 0) -> np.ndarray:
    """Erode (positive) or dilate (negative) by ``erode`` px, then feather by ``blur`` px."""
    import cv2

    m = np.asarray(mask, np.float32)
    if erode:
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * abs(erode) + 1, 2 * abs(erode) + 1))
        m = cv2.erode(m, k) if erode > 0 else cv2.dilate(m, k)
    if blur > 0:
        # shrink by half the blur first so the feather stays inside the face
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (blur | 1, blur | 1))
        m = cv2.erode(m, k)
        m = cv2.GaussianBlur(m, (0, 0), sigmaX=blur / 2.0)
    return np.clip(m, 0, 1)


def priority_weights(landmarks: np.ndarray, shape: tuple[int, int], priority: float = 1.0) -> np.ndarray:
    """Loss weights: 1 everywhere, ``1 + priority`` on eyes and mouth (DFL's eyes/mouth priority)."""
    import cv2

    w = np.zeros(shape[:2], np.uint8)
    lm = np.asarray(landmarks, np.float64)
    for idx in (RIGHT_EYE, LEFT_EYE, MOUTH):
        hull = cv2.convexHull(np.round(lm[idx]).astype(np.int32))
        cv2.fillConvexPoly(w, hull, 255)
    w = cv2.dilate(w, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (max(3, shape[0] // 32) | 1,) * 2))
    return 1.0 + priority * (w.astype(np.float32) / 255.0)


class OnnxSegmenter:
    """Occlusion mask from an ONNX model: input ``1x3xSxS`` RGB [0, 1] aligned face, output
    ``(1, 1, S, S)`` or ``(1, S, S)`` face probability (1 = face, 0 = hand/hair/object)."""

    def __init__(self, path: str | Path) -> None:
        from .backends import _session

        self.sess = _session(path, "segmentation model", None)
        inp = self.sess.get_inputs()[0]
        self.name = inp.name
        self.size = inp.shape[2] if isinstance(inp.shape[2], int) else None

    def __call__(self, face: np.ndarray) -> np.ndarray:
        import cv2

        h, w = face.shape[:2]
        x = face if self.size is None else cv2.resize(face, (self.size, self.size), interpolation=cv2.INTER_AREA)
        x = x.astype(np.float32).transpose(2, 0, 1)[None] / (255.0 if face.dtype == np.uint8 else 1.0)
        out = np.asarray(self.sess.run(None, {self.name: x})[0], np.float32).reshape(x.shape[2], x.shape[3])
        if out.shape != (h, w):
            out = cv2.resize(out, (w, h), interpolation=cv2.INTER_LINEAR)
        return np.clip(out, 0, 1)

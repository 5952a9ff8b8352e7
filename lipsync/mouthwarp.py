"""Landmark-driven mouth re-sync for live-action faces without network weights.

The face mesh model inside the mediapipe wheel finds 478 landmarks; the lip landmarks are moved
toward each shape's target (opening, width, rounding), the inner mouth is darkened where it
opens, and the mouth region is warped by a smooth displacement field that fades to zero at the
edge of the region, so the rest of the face does not move.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import LipSyncError
from .visemes import SHAPE_OPENNESS

UPPER_OUTER = [61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291]
LOWER_OUTER = [146, 91, 181, 84, 17, 314, 405, 321, 375]
UPPER_INNER = [78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308]
LOWER_INNER = [95, 88, 178, 87, 14, 317, 402, 318, 324]
CORNERS = (61, 291)
EYE_CORNERS = (33, 263)
WIDTH_OF = {"B": 1.06, "F": 0.82, "E": 0.9, "A": 1.0, "C": 1.0, "D": 0.97, "G": 1.02, "H": 1.0, "X": 1.0}


class FaceMesh:
    """The 478-point face mesh of the biggest face, ``landmarks(img) -> (478, 2) px or None``.

    Faces are found at every shot size by ``machinima.faces`` (tiles when the face is small, the
    mesh on a crop around it), so a medium or wide shot is re-synced like a close-up;
    ``video=True`` follows the face from frame to frame instead of searching every frame."""

    def __init__(self, video: bool = False) -> None:
        from machinima.faces import FaceFollower, FaceSearch

        self._search = FaceSearch(refine=True)
        self._follow = FaceFollower(self._search) if video else None

    def landmarks(self, rgb: np.ndarray) -> np.ndarray | None:
        face = (self._follow(rgb) or [None])[0] if self._follow else self._search.biggest(rgb)
        return None if face is None or face.mesh is None else face.mesh[:, :2].astype(np.float32)

    def close(self) -> None:
        self._search.close()


def mouth_opening(lm: np.ndarray) -> float:
    """Inner-lip gap relative to the eye-corner distance (scale free)."""
    eye = np.linalg.norm(lm[EYE_CORNERS[0]] - lm[EYE_CORNERS[1]])
    return float(np.linalg.norm(lm[13] - lm[14]) / max(eye, 1e-6))


def mouth_width(lm: np.ndarray) -> float:
    eye = np.linalg.norm(lm[EYE_CORNERS[0]] - lm[EYE_CORNERS[1]])
    return float(np.linalg.norm(lm[CORNERS[0]] - lm[CORNERS[1]]) / max(eye, 1e-6))


@dataclass
class MouthWarp:
    max_open: float = 0.22  # inner-lip gap at shape D, as a share of the eye-corner distance
    interior: tuple[int, int, int] = (30, 10, 12)
    smoothing: float = 0.3  # RBF regularisation: near-duplicate lip points must not make the field ring

    def targets(self, lm: np.ndarray, shape: str, strength: float = 1.0) -> np.ndarray:
        """Landmarks moved toward ``shape``: lower lip down (and upper slightly up) to the shape's
        opening, corners in or out for width."""
        out = lm.copy()
        eye = np.linalg.norm(lm[EYE_CORNERS[0]] - lm[EYE_CORNERS[1]])
        centre = (lm[CORNERS[0]] + lm[CORNERS[1]]) / 2
        axis_x = (lm[CORNERS[1]] - lm[CORNERS[0]]) / max(np.linalg.norm(lm[CORNERS[1]] - lm[CORNERS[0]]), 1e-6)
        down = np.array([-axis_x[1], axis_x[0]])  # perpendicular, pointing down the face
        if down[1] < 0:
            down = -down
        want = SHAPE_OPENNESS.get(shape, 0.0) * self.max_open * eye
        have = float(np.dot(lm[14] - lm[13], down))
        extra = (want - max(have, 0.0)) * strength
        for i in LOWER_INNER + LOWER_OUTER:
            out[i] += down * extra * 0.75
        for i in UPPER_INNER[1:-1] + UPPER_OUTER[1:-1]:
            out[i] -= down * extra * 0.25
        widen = (WIDTH_OF.get(shape, 1.0) - 1.0) * strength
        for i in set(UPPER_OUTER + LOWER_OUTER + UPPER_INNER + LOWER_INNER):
            along = float(np.dot(lm[i] - centre, axis_x))
            out[i] += axis_x * along * widen
        return out

    def apply(self, rgb: np.ndarray, lm: np.ndarray, shape: str, strength: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """(warped image, target landmarks)."""
        import cv2

        tgt = self.targets(lm, shape, strength)
        idx = sorted(set(UPPER_OUTER + LOWER_OUTER + UPPER_INNER + LOWER_INNER))
        src_pts, dst_pts = lm[idx], tgt[idx]
        eye = np.linalg.norm(lm[EYE_CORNERS[0]] - lm[EYE_CORNERS[1]])
        centre = lm[list(CORNERS)].mean(axis=0)
        radius = 1.1 * eye
        h, w = rgb.shape[:2]
        x0, y0 = int(max(0, centre[0] - radius)), int(max(0, centre[1] - radius))
        x1, y1 = int(min(w, centre[0] + radius)), int(min(h, centre[1] + radius))
        if x1 - x0 < 8 or y1 - y0 < 8:
            raise LipSyncError("the face is too small or outside the frame for a mouth warp")
        out = rgb.copy()
        inner = tgt[UPPER_INNER + LOWER_INNER[::-1]]
        opened = inner.mean(axis=0) + (inner - inner.mean(axis=0)) * 0.75  # the smoothed warp opens less than the target
        roi = out[y0:y1, x0:x1]
        # backward map: destination pixel -> source pixel. The displacement field interpolates
        # the control points' displacements exactly (Gaussian RBF with solved weights), then
        # fades to zero toward the edge of the region.
        d = (dst_pts - src_pts).astype(np.float64)
        sigma = 0.12 * eye
        diff = dst_pts[:, None, :] - dst_pts[None, :, :]
        kmat = np.exp(-(diff**2).sum(-1) / (2 * sigma**2)) + self.smoothing * np.eye(len(dst_pts))
        coef = np.linalg.solve(kmat, d).astype(np.float32)
        # the field is smooth: evaluate it on a grid 4x coarser and upsample (16x fewer exps)
        step = 4
        gx = np.arange(x0, x1, step, dtype=np.float32)
        gy = np.arange(y0, y1, step, dtype=np.float32)
        k = np.exp(-((gx[None, None, :] - dst_pts[:, 0, None, None]) ** 2 + (gy[None, :, None] - dst_pts[:, 1, None, None]) ** 2)
                   / (2 * sigma**2))  # (P, gh, gw)
        coarse = np.einsum("pyx,pc->yxc", k, coef)
        disp = cv2.resize(coarse, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
        ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        r = np.sqrt((xs - centre[0]) ** 2 + (ys - centre[1]) ** 2) / radius
        fade = np.clip(1.0 - r, 0, 1) ** 0.5
        map_x = xs - disp[..., 0] * fade
        map_y = ys - disp[..., 1] * fade
        warped = cv2.remap(rgb, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        roi[:] = warped  # maps are ROI-sized with absolute coordinates: the output is the ROI
        if mouth_opening(tgt) > mouth_opening(lm) + 0.01:  # darken only where the mouth opens wider
            mask = np.zeros(roi.shape[:2], np.uint8)
            cv2.fillPoly(mask, [(opened - (x0, y0)).astype(np.int32)], 255)
            mask = cv2.GaussianBlur(mask, (7, 7), 0).astype(np.float32)[..., None] / 255 * 0.6
            roi[:] = (roi * (1 - mask) + np.array(self.interior, np.float32) * mask).astype(np.uint8)
        return out, tgt

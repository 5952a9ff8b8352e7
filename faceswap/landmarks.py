"""The 68-point layout (iBUG/dlib order) and the record of one detected face.

Indices: jaw 0-16, brows 17-21 / 22-26, nose 27-35, eyes 36-41 / 42-47, mouth 48-67.
``MP_TO_68`` picks, for each of the 68 points, the mediapipe face-mesh vertex that lies
closest to it; it was fitted on the two sample photos (grace_hopper, astronaut) against dlib's
68-point predictor (mean error 0.04 of the inter-ocular distance, worst 0.10 on the jaw).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from machinima.faces import box_of, iou  # noqa: F401  (re-exported: the 68-point code uses them)

MP_TO_68 = np.array([
    34, 123, 147, 58, 172, 169, 149, 148, 152, 377, 378, 394, 397, 435, 401, 366, 264,  # jaw
    156, 63, 105, 66, 107, 336, 296, 334, 293, 383,  # brows
    168, 197, 5, 4, 166, 20, 2, 326, 305,  # nose
    7, 160, 158, 154, 153, 144, 382, 385, 386, 249, 373, 380,  # eyes
    61, 39, 37, 11, 267, 269, 291, 404, 314, 17, 84, 180,  # outer lips
    183, 82, 13, 312, 407, 317, 14, 87,  # inner lips
])

JAW = list(range(0, 17))
BROWS = list(range(17, 27))
NOSE = list(range(27, 36))
RIGHT_EYE = list(range(36, 42))
LEFT_EYE = list(range(42, 48))
MOUTH = list(range(48, 68))


@dataclass
class Face:
    """One face in one image: box [x0, y0, x1, y1] and 68 landmarks in image pixels."""

    box: np.ndarray
    landmarks: np.ndarray | None = None
    score: float = 1.0
    track: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def center(self) -> np.ndarray:
        return np.array([(self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2])

    @property
    def size(self) -> float:
        return float(max(self.box[2] - self.box[0], self.box[3] - self.box[1]))


def from_mesh(mesh: np.ndarray) -> np.ndarray:
    """(478|468, 2) mediapipe mesh -> (68, 2)."""
    return np.asarray(mesh, np.float64)[MP_TO_68]


def eye_distance(landmarks: np.ndarray) -> float:
    lm = np.asarray(landmarks)
    return float(np.linalg.norm(lm[RIGHT_EYE].mean(0) - lm[LEFT_EYE].mean(0)))

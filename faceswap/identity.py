"""An identity measure: dlib's ResNet face embeddings (128-D; dlib's same-person threshold is
0.6), from the ``face-recognition-models`` package (extra ``identity``; nothing downloaded).

A good swap moves the face towards the source identity and away from the destination:
``distance(swapped, source) < distance(original, source)`` and ``distance(swapped, original)``
well above 0. The face is located by our own landmarks (its box), not by dlib's detector, so
soft or small swapped faces are still measured.
"""

from __future__ import annotations

import numpy as np

from .errors import BackendError
from .landmarks import box_of


class IdentityMeter:
    def __init__(self) -> None:
        try:
            import warnings

            import dlib

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # face_recognition_models imports pkg_resources
                import face_recognition_models as frm
        except Exception as exc:  # noqa: BLE001
            raise BackendError(f"the identity measure needs dlib and face-recognition-models ({exc})",
                               hint="pip install 'machinima[identity]'") from None
        self._dlib = dlib
        self.shape = dlib.shape_predictor(frm.pose_predictor_model_location())
        self.net = dlib.face_recognition_model_v1(frm.face_recognition_model_location())

    def embedding(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """128-D embedding of the face whose 68 landmarks are given (image pixels)."""
        x0, y0, x1, y1 = box_of(landmarks)
        rect = self._dlib.rectangle(int(x0), int(y0), int(x1), int(y1))
        img = np.ascontiguousarray(image[..., :3], dtype=np.uint8)
        return np.array(self.net.compute_face_descriptor(img, self.shape(img, rect)))

    @staticmethod
    def distance(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.linalg.norm(np.asarray(a) - np.asarray(b)))

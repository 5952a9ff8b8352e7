"""An identity measure for face-swap benches: dlib's ResNet face embeddings (128-D; dlib's
same-person threshold is 0.6), from the hub's ``machinima.identity`` (extra ``identity``).

A good swap moves the face towards the source identity and away from the destination:
``distance(swapped, source) < distance(original, source)`` and ``distance(swapped, original)``
well above 0. The face is located by our own landmarks (its box), not by dlib's detector, so
soft or small swapped faces are still measured.
"""

from __future__ import annotations

import numpy as np

from machinima.identity import DLIB, IdentityError, get_embedder
from machinima.identity import distance as _distance

from .errors import BackendError
from .landmarks import box_of


class IdentityMeter:
    def __init__(self) -> None:
        try:
            self._emb = get_embedder(DLIB)
        except IdentityError as exc:
            raise BackendError(str(exc), hint="pip install 'machinima[identity]'") from None

    def embedding(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """128-D embedding of the face whose 68 landmarks are given (image pixels)."""
        return np.asarray(self._emb.embed(image, box_of(landmarks)), np.float64)

    @staticmethod
    def distance(a: np.ndarray, b: np.ndarray) -> float:
        return _distance(a, b)

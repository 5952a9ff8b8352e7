"""Z-test: where the set is nearer than the actor, the actor is hidden, with an anti-aliased edge.

The hard test is one ``cv2.compare`` of the set depth against the actor's depth (a scalar for a
billboard, an array for a depth model) minus ``bias`` (metres the actor is treated as nearer,
so feet on the floor are not eaten by the floor). The edge is softened by a Gaussian of
``edge_px`` on the 8-bit result: OpenCV's fixed-point blur keeps 0 and 255 exact wherever the
whole kernel sees one side, so away from the edge the result is pixel-exact.
"""

from __future__ import annotations

import numpy as np

from .keyer import _cv2


def visibility(set_depth: np.ndarray, plate_depth: float | np.ndarray, *, bias: float = 0.25, edge_px: float = 1.0) -> np.ndarray:
    """uint8 0..255: how much of the actor shows at each pixel (255 = in front of the set)."""
    cv2 = _cv2()
    if np.isscalar(plate_depth) or np.ndim(plate_depth) == 0:
        vis = cv2.compare(set_depth, float(plate_depth) - bias, cv2.CMP_GT)
    else:
        vis = cv2.compare(set_depth, cv2.subtract(np.asarray(plate_depth, np.float32), bias), cv2.CMP_GT)
    if edge_px > 0:
        vis = cv2.GaussianBlur(vis, (0, 0), edge_px)
    return vis


def occlude(alpha: np.ndarray, vis: np.ndarray) -> np.ndarray:
    """The matte times visibility (uint8, 255 * 255 -> 255 exactly)."""
    return _cv2().multiply(alpha, vis, scale=1.0 / 255.0)

"""Z-test: where the set is nearer than the actor, the actor is hidden, with an anti-aliased edge.

The hard test is one ``cv2.compare`` of the set depth against the actor's depth (a scalar for a
billboard, an array for a depth model) minus ``bias`` (metres the actor is treated as nearer,
so feet on the floor are not eaten by the floor). The edge is softened by a Gaussian of
``edge_px`` on the 8-bit result: OpenCV's fixed-point blur keeps 0 and 255 exact wherever the
whole kernel sees one side, so away from the edge the result is pixel-exact.
"""

from __future__ import annotations

import numpy as np

from machinima.passes import CameraFrame

from .keyer import _cv2


def ground_depth(cam: CameraFrame, rect: tuple[int, int, int, int], ground_y: float) -> np.ndarray:
    """Planar depth of the ground plane ``y = ground_y`` at each pixel of ``rect`` (inf above the horizon)."""
    x0, y0, x1, y1 = rect
    K, M = cam.K, cam.world_to_camera
    R, t = M[:3, :3], M[:3, 3]
    oy = float((-R.T @ t)[1])
    # world Y of the ray direction (x, y, -1) in camera space is linear in the pixel: a*u + b*v + c
    a = R[0, 1] / K[0, 0]
    b = -R[1, 1] / K[1, 1]
    c = -R[2, 1] - a * K[0, 2] - b * K[1, 2]
    u = np.arange(x0, x1, dtype=np.float32) + 0.5
    v = np.arange(y0, y1, dtype=np.float32) + 0.5
    dy = (a * u)[None, :] + (b * v + c)[:, None]
    with np.errstate(divide="ignore"):
        s = np.where(dy * (ground_y - oy) > 0, (ground_y - oy) / dy, np.inf)
    return s.astype(np.float32)


def visibility(set_depth: np.ndarray, plate_depth: float | np.ndarray, *, bias: float = 0.25, edge_px: float = 1.0,
               ground: np.ndarray | None = None, ground_tolerance: float = 0.02) -> np.ndarray:
    """uint8 0..255: how much of the actor shows at each pixel (255 = in front of the set).

    ``ground`` (the ground plane's depth per pixel) marks set pixels that are the floor the
    actor stands on: those never hide the actor, so the floor just below the feet (a little
    nearer than the billboard) does not eat the feet through the soft edge.
    """
    cv2 = _cv2()
    if np.isscalar(plate_depth) or np.ndim(plate_depth) == 0:
        vis = cv2.compare(set_depth, float(plate_depth) - bias, cv2.CMP_GT)
    else:
        vis = cv2.compare(set_depth, cv2.subtract(np.asarray(plate_depth, np.float32), bias), cv2.CMP_GT)
    if ground is not None:
        on_ground = cv2.compare(set_depth, ground * (1.0 - ground_tolerance) - 0.05, cv2.CMP_GE)
        vis = cv2.bitwise_or(vis, on_ground)
    if edge_px > 0:
        vis = cv2.GaussianBlur(vis, (0, 0), edge_px)
    return vis


def occlude(alpha: np.ndarray, vis: np.ndarray) -> np.ndarray:
    """The matte times visibility (uint8, 255 * 255 -> 255 exactly)."""
    return _cv2().multiply(alpha, vis, scale=1.0 / 255.0)

"""Contact shadow: a soft dark ellipse on the ground under the actor's feet.

The ellipse is a disc of ``radius_m`` on the ground plane around the contact point, projected
through the set camera (so it foreshortens with the camera's pitch), blurred, and multiplied
into the set where the set is the ground (its depth within ``tolerance`` of the ground plane's),
never onto geometry in front of the actor.
"""

from __future__ import annotations

import numpy as np

from machinima.passes import CameraFrame

from .keyer import _cv2

Rect = tuple[int, int, int, int]


def shadow_matte(cam: CameraFrame, contact_world: np.ndarray, size: tuple[int, int], *, radius_m: float = 0.35, softness: float = 0.5) -> tuple[Rect, np.ndarray] | None:
    """(rect, uint8 matte) of the shadow in frame pixels, or None when off screen."""
    cv2 = _cv2()
    w, h = size
    g = np.asarray(contact_world, float)
    ring = np.array([g + [radius_m * np.cos(a), 0.0, radius_m * np.sin(a)] for a in np.linspace(0, 2 * np.pi, 24, endpoint=False)])
    px, depth = cam.project(ring)
    if np.any(depth <= 0):
        return None
    pad = int(max(4, (px[:, 0].max() - px[:, 0].min()) * softness)) + 2
    x0, y0 = int(np.floor(px[:, 0].min())) - pad, int(np.floor(px[:, 1].min())) - pad
    x1, y1 = int(np.ceil(px[:, 0].max())) + pad + 1, int(np.ceil(px[:, 1].max())) + pad + 1
    cx0, cy0, cx1, cy1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    if cx0 >= cx1 or cy0 >= cy1:
        return None
    # drawn and blurred at 1/k size (a soft shadow has no detail), then scaled up
    k = max(1, pad // 6)
    sw, sh = max(1, (x1 - x0 + k - 1) // k), max(1, (y1 - y0 + k - 1) // k)
    m = np.zeros((sh, sw), np.uint8)
    cv2.fillPoly(m, [np.round((px - [x0, y0]) / k * 16).astype(np.int32)], 255, lineType=cv2.LINE_AA, shift=4)
    m = cv2.GaussianBlur(m, (0, 0), max(pad / 2.5 / k, 0.5))
    m = cv2.resize(m, (sw * k, sh * k), interpolation=cv2.INTER_LINEAR)
    return (cx0, cy0, cx1, cy1), m[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0]


def apply_shadow(rgb: np.ndarray, set_depth: np.ndarray, ground_depth: float, rect: Rect, matte: np.ndarray, *, opacity: float = 0.5, tolerance: float = 0.6) -> None:
    """Darken ``rgb`` in place under the shadow matte where the set is near the ground depth."""
    if opacity <= 0:
        return
    cv2 = _cv2()
    x0, y0, x1, y1 = rect
    d = set_depth[y0:y1, x0:x1]
    on_ground = cv2.compare(d, ground_depth - tolerance, cv2.CMP_GE)
    m = cv2.multiply(matte, on_ground, scale=opacity / 255.0)
    keep = 1.0 - m.astype(np.float32) * (1.0 / 255.0)
    roi = rgb[y0:y1, x0:x1]
    roi[...] = cv2.multiply(roi, cv2.merge([keep, keep, keep]), dtype=cv2.CV_8U)

"""Light wrap: the background's light bleeding over the actor's edge, as in every comp.

``wrap = strength * blur(background) * (alpha * blur(1 - alpha))`` blended onto the plate. The
blurs run at half resolution on the actor's bounding box (the wrap is soft by nature).
"""

from __future__ import annotations

import numpy as np

from .keyer import _cv2


def light_wrap(fg: np.ndarray, bg: np.ndarray, alpha: np.ndarray, *, radius: float = 8.0, strength: float = 0.5) -> np.ndarray:
    """uint8 RGB plate with the background wrapped onto its edge (all arrays the same HxW)."""
    if strength <= 0 or radius <= 0:
        return fg
    cv2 = _cv2()
    h, w = alpha.shape[:2]
    k = 4 if radius >= 6 else 2
    hw, hh = max(1, w // k), max(1, h // k)
    sigma = max(radius / k, 0.5)
    bg_s = cv2.GaussianBlur(cv2.resize(bg, (hw, hh), interpolation=cv2.INTER_AREA), (0, 0), sigma)
    a_s = cv2.resize(alpha, (hw, hh), interpolation=cv2.INTER_AREA)
    outside = cv2.GaussianBlur(cv2.bitwise_not(a_s), (0, 0), sigma)
    edge = cv2.multiply(a_s, outside, scale=strength / 255.0)  # uint8: alpha * blurred outside
    bg_b = cv2.resize(bg_s, (w, h), interpolation=cv2.INTER_LINEAR)
    wmap = cv2.resize(edge, (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float32) * (1.0 / 255.0)
    return cv2.blendLinear(bg_b, fg, wmap, 1.0 - wmap)

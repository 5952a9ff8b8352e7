"""Blender's render passes converted to the formats of ``machinima.passes`` (pure numpy, no bpy).

- ``motion``: Cycles' Vector pass holds, per pixel, where the surface seen there was in the
  previous frame and will be in the next, relative to the pixel, in pixels with Y up
  (X, Y: to the previous frame; Z, W: to the next). The agreed ``motion`` pass is backward flow in
  image coordinates (x right, y down): the content at (x, y) of frame N was at (x + dx, y + dy)
  in frame N-1. So dx = X and dy = -Y. (Checked against a moving object in the tests.)
- ``light``: the light falling on each surface, as a white matte surface would reflect it:
  Cycles' diffuse direct + indirect passes (linear, the colour pass left out). A plate pixel of
  linear colour c lit by it is what Blender would render for a surface of that colour.
"""

from __future__ import annotations

import numpy as np

MOTION_INFO = {"channels": ["dx", "dy"], "units": "px", "axes": "x right, y down",
               "flow": "backward: the content at (x, y) of frame N was at (x + dx, y + dy) in frame N-1; first frame zeros"}
LIGHT_INFO = {"kind": "irradiance", "linear": True, "from": "Cycles diffuse direct + indirect (a white matte surface)"}


def motion_from_vector(vector: np.ndarray) -> np.ndarray:
    """(H, W, 2) float32 backward flow (dx, dy) from a Cycles Vector pass (H, W, 4)."""
    v = np.asarray(vector, np.float32)
    flow = np.empty(v.shape[:2] + (2,), np.float32)
    flow[..., 0] = v[..., 0]
    flow[..., 1] = -v[..., 1]
    return flow


def light_from_diffuse(direct: np.ndarray, indirect: np.ndarray | None) -> np.ndarray:
    """(H, W, 3) float32 linear light from the diffuse direct (+ indirect) passes."""
    light = np.asarray(direct, np.float32)[..., :3].copy()
    if indirect is not None:
        light += np.asarray(indirect, np.float32)[..., :3]
    return np.maximum(light, 0.0)

"""Clips whose motion is known exactly, for temporal tests and benchmarks: a picture seen through
a camera that pans and zooms along a path, with the motion pass it would have rendered.

Frame n shows the picture at ``s_n * (x - c) + c + p_n`` (``c`` the frame centre, ``p_n`` the
pan, ``s_n`` the zoom), so the backward motion (the ``motion`` pass: frame n at x was at x + m in
frame n-1) is ``c + (s_n (x - c) + p_n - p_{n-1}) / s_{n-1} - x``: a spatially varying field,
exact to float precision, that no flow estimator produced.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class CameraPath:
    """Pan (pixels of the picture per frame) and zoom (scale change per frame) from a start."""

    start: tuple[float, float] = (20.0, 30.0)
    pan: tuple[float, float] = (1.5, 0.7)
    zoom: float = 0.01

    def at(self, n: int) -> tuple[float, float, float]:
        return self.start[0] + self.pan[0] * n, self.start[1] + self.pan[1] * n, 1.0 + self.zoom * n


def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    return np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))


def moving_picture(picture: np.ndarray, n: int, size: tuple[int, int], path: CameraPath | None = None) -> list[np.ndarray]:
    """``n`` frames (h x w = ``size``) of ``picture`` along ``path`` (bilinear resampling)."""
    import cv2

    path = path or CameraPath()
    h, w = size
    gx, gy = _grid(h, w)
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    out = []
    for i in range(n):
        px, py, s = path.at(i)
        out.append(cv2.remap(np.ascontiguousarray(picture), s * (gx - cx) + cx + px, s * (gy - cy) + cy + py,
                             cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101))
    return out


def flow_between(t: int, k: int, size: tuple[int, int], path: CameraPath | None = None) -> np.ndarray:
    """The exact flow t -> k (``frame_t(x) = frame_k(x + F(x))``) for any two frames."""
    path = path or CameraPath()
    h, w = size
    gx, gy = _grid(h, w)
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    pt, pk = path.at(t), path.at(k)
    fx = cx + (pt[2] * (gx - cx) + pt[0] - pk[0]) / pk[2] - gx
    fy = cy + (pt[2] * (gy - cy) + pt[1] - pk[1]) / pk[2] - gy
    return np.stack([fx, fy], axis=-1).astype(np.float32)


def motion_pass(n: int, size: tuple[int, int], path: CameraPath | None = None) -> list[np.ndarray]:
    """The ``motion`` pass of the clip: backward motion per frame, frame 0 zeros."""
    return [np.zeros((*size, 2), np.float32)] + [flow_between(i, i - 1, size, path) for i in range(1, n)]


def temporal_error(outputs: list[np.ndarray], motion: list[np.ndarray]) -> float:
    """Mean warp error (0..255) of consecutive outputs under the exact motion."""
    from .flow import warp_error

    return float(np.mean([warp_error(outputs[i - 1], outputs[i], motion=motion[i]) for i in range(1, len(outputs))]))

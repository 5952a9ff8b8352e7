"""Camera-motion warps for dream sequences: 2D affine (zoom, angle, translation) and 3D from
depth (rotation and translation of a pinhole camera), plus camera motion derived from a take's
recorded camera track, so a dream follows the real shot.

Conventions: images HxWx3; translation in pixels for 2D; for 3D, camera space is OpenGL-style
(x right, y up, looking down -z), translations in metres (depth in metres, from the take's depth
pass) and rotations in degrees, as in Deforum's ``translation_x/y/z`` and ``rotation_3d_x/y/z``.
"""

from __future__ import annotations

import numpy as np

from .dream_schedule import ScheduleError


def affine_2d(img: np.ndarray, *, zoom: float = 1.0, angle: float = 0.0, tx: float = 0.0, ty: float = 0.0,
              border: str = "reflect") -> np.ndarray:
    """Zoom about the centre, rotate by ``angle`` degrees (counter-clockwise), then translate."""
    import cv2

    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D(((w - 1) / 2.0, (h - 1) / 2.0), angle, zoom)  # the true centre of the pixel grid
    m[:, 2] += (tx, ty)
    mode = {"reflect": cv2.BORDER_REFLECT_101, "replicate": cv2.BORDER_REPLICATE, "black": cv2.BORDER_CONSTANT}[border]
    return cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=mode)


def rotation_matrix(rx: float, ry: float, rz: float) -> np.ndarray:
    """R = Rz @ Ry @ Rx from degrees."""
    ax, ay, az = np.radians([rx, ry, rz])
    cx, sx, cy, sy, cz, sz = np.cos(ax), np.sin(ax), np.cos(ay), np.sin(ay), np.cos(az), np.sin(az)
    rxm = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    rym = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rzm = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rzm @ rym @ rxm


def intrinsics_from_fov(width: int, height: int, fov_deg: float) -> np.ndarray:
    f = 0.5 * width / np.tan(np.radians(fov_deg) / 2)
    return np.array([[f, 0, width / 2.0], [0, f, height / 2.0], [0, 0, 1.0]])


def warp_3d(img: np.ndarray, depth: np.ndarray, K: np.ndarray, R: np.ndarray, t: np.ndarray,
            *, border: str = "reflect") -> np.ndarray:
    """The view from a camera moved by (R, t) (new-from-old: x_new = R x_old + t), rendered by
    backward warping: each new pixel is unprojected with the depth found at that pixel, taken
    back into the old camera, and sampled there. Exact for a scene whose depth varies slowly.
    """
    import cv2

    h, w = img.shape[:2]
    if depth.shape[:2] != (h, w):
        raise ScheduleError(f"depth map is {depth.shape[1]}x{depth.shape[0]}, the frame is {w}x{h}")
    d = np.asarray(depth, np.float32)  # float32 throughout: 1080p in a few tens of ms
    if not np.isfinite(d).all() or (d <= 0).any():
        d = np.where(np.isfinite(d) & (d > 0), d, np.nanmax(np.where(np.isfinite(d) & (d > 0), d, 0)) or 1.0)
    fx, fy, cx, cy = (np.float32(v) for v in (K[0, 0], K[1, 1], K[0, 2], K[1, 2]))
    # pixel -> camera (OpenGL): x right, y up, z = -depth
    px = ((np.arange(w, dtype=np.float32) + 0.5 - cx) / fx)[None, :] * d
    py = -((np.arange(h, dtype=np.float32) + 0.5 - cy) / fy)[:, None] * d
    R32, t32 = np.asarray(R, np.float32), np.asarray(t, np.float32)
    # R^T (p - t), written out per component (no (h, w, 3) temporaries)
    qx, qy, qz = px - t32[0], py - t32[1], -d - t32[2]
    ox = R32[0, 0] * qx + R32[1, 0] * qy + R32[2, 0] * qz
    oy = R32[0, 1] * qx + R32[1, 1] * qy + R32[2, 1] * qz
    z = -(R32[0, 2] * qx + R32[1, 2] * qy + R32[2, 2] * qz)
    np.maximum(z, np.float32(1e-6), out=z)
    map_x = ox / z * fx + (cx - np.float32(0.5))
    map_y = -oy / z * fy + (cy - np.float32(0.5))
    mode = {"reflect": cv2.BORDER_REFLECT_101, "replicate": cv2.BORDER_REPLICATE, "black": cv2.BORDER_CONSTANT}[border]
    return cv2.remap(img, map_x, map_y, cv2.INTER_LINEAR, borderMode=mode)


def relative_motion(world_to_camera_a: np.ndarray, world_to_camera_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(R, t) taking camera-A coordinates to camera-B coordinates (for ``warp_3d``), from two
    world_to_camera matrices of the take's camera track (``machinima.passes.CameraFrame``)."""
    a = np.asarray(world_to_camera_a, float)
    b = np.asarray(world_to_camera_b, float)
    m = b @ np.linalg.inv(a)
    return m[:3, :3], m[:3, 3]

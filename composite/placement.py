"""Where the actor stands in the set: the plate's 2D placement and the actor's depth per frame.

A placement is a world position (the actor's feet on the set's ground, canonical Y-up metres)
and the plate pixel of the ground contact (the feet). The plate is scaled so the actor is
``height_m`` tall at that depth and moved so the contact pixel lands where the position projects
through the frame's camera (a moving set camera keeps the actor nailed to the set). Each frame,
the actor's own feet (the lowest point of the matte) are cast through the camera onto the
ground plane ``y = ground_y``: where the ray hits gives the actor's planar depth, so an actor who
walks towards the plate camera comes nearer in the set too (``track``). The actor is then a
billboard at that depth (or the depth model's relief around it).

Without a position the plate is fitted to the frame as shot (plate camera = set camera) and
the depth comes from the feet on the ground plane alone.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from machinima.passes import CameraFrame

from .errors import PlacementError, SettingsError
from .keyer import Rect, _cv2


@dataclass(frozen=True)
class PlacementSettings:
    position: tuple[float, float, float] | None = None  # world XYZ of the feet
    ground_y: float | None = None  # ground plane height (default: position's Y, else 0)
    contact: tuple[float, float] | None = None  # plate pixel of the feet (default: lowest matte point of the reference frame)
    height_m: float = 1.75  # actor height, sets the plate scale when a position is given
    scale: float | None = None  # explicit plate->frame scale (overrides height_m)
    track: bool = True  # follow the feet along the ground plane each frame

    def __post_init__(self) -> None:
        if self.position is not None and len(self.position) != 3:
            raise SettingsError(f"--place needs X,Y,Z, got {self.position}")
        if not 0.1 <= self.height_m <= 10:
            raise SettingsError(f"actor height must be in [0.1, 10] m, got {self.height_m}")
        if self.scale is not None and not 0.01 <= self.scale <= 100:
            raise SettingsError(f"plate scale must be in [0.01, 100], got {self.scale}")

    @property
    def plane_y(self) -> float:
        if self.ground_y is not None:
            return float(self.ground_y)
        return float(self.position[1]) if self.position is not None else 0.0

    def to_doc(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Transform:
    """frame = scale * plate + (tx, ty)."""

    scale: float
    tx: float
    ty: float

    def point(self, xy: tuple[float, float]) -> tuple[float, float]:
        return self.scale * xy[0] + self.tx, self.scale * xy[1] + self.ty

    @property
    def is_integer_shift(self) -> bool:
        return self.scale == 1.0 and float(self.tx).is_integer() and float(self.ty).is_integer()

    def warp(self, images: list[np.ndarray], rect: Rect, frame_size: tuple[int, int]) -> tuple[Rect, list[np.ndarray]] | None:
        """Move plate-rect images into the frame: (frame rect, warped images) or None if off screen."""
        cv2 = _cv2()
        w, h = frame_size
        x0, y0, x1, y1 = rect
        fx0, fy0 = int(np.floor(self.scale * x0 + self.tx)), int(np.floor(self.scale * y0 + self.ty))
        fx1, fy1 = int(np.ceil(self.scale * x1 + self.tx)), int(np.ceil(self.scale * y1 + self.ty))
        cx0, cy0, cx1, cy1 = max(0, fx0), max(0, fy0), min(w, fx1), min(h, fy1)
        if cx0 >= cx1 or cy0 >= cy1:
            return None
        if self.is_integer_shift:
            sx0, sy0 = cx0 - fx0, cy0 - fy0
            return (cx0, cy0, cx1, cy1), [im[sy0:sy0 + cy1 - cy0, sx0:sx0 + cx1 - cx0] for im in images]
        m = np.array([[self.scale, 0.0, self.scale * x0 + self.tx - cx0], [0.0, self.scale, self.scale * y0 + self.ty - cy0]], np.float32)
        interp = cv2.INTER_AREA if self.scale < 1 else cv2.INTER_LINEAR
        out = [cv2.warpAffine(im, m, (cx1 - cx0, cy1 - cy0), flags=interp, borderMode=cv2.BORDER_CONSTANT, borderValue=0) for im in images]
        return (cx0, cy0, cx1, cy1), out


@dataclass
class FrameGeometry:
    transform: Transform
    depth: float  # planar metres of the actor (billboard)
    contact_xy: tuple[float, float]  # frame pixel of the feet
    contact_world: np.ndarray  # (3,) world point of the feet on the ground
    ground_y: float = 0.0  # the ground plane's height


def contact_point(alpha: np.ndarray, rect: Rect = (0, 0, 0, 0), *, threshold: int = 128) -> tuple[float, float] | None:
    """Plate pixel of the feet: the lowest matte row's centre (in the plate, offset by ``rect``)."""
    rows = np.flatnonzero(alpha.max(axis=1) >= threshold)
    if len(rows) == 0:
        return None
    bottom = rows[-1]
    band = alpha[max(bottom - 2, rows[0]):bottom + 1]
    cols = np.flatnonzero(band.max(axis=0) >= threshold)
    return float(cols.mean() + rect[0]), float(bottom + rect[1])


def matte_height(alpha: np.ndarray, *, threshold: int = 128) -> int:
    rows = np.flatnonzero(alpha.max(axis=1) >= threshold)
    return int(rows[-1] - rows[0] + 1) if len(rows) else 0


def ray_ground(cam: CameraFrame, xy: tuple[float, float], ground_y: float) -> tuple[float, np.ndarray] | None:
    """Planar depth and world point where the ray through pixel ``xy`` meets ``y = ground_y``."""
    K, M = cam.K, cam.world_to_camera
    d_cam = np.array([(xy[0] - K[0, 2]) / K[0, 0], -(xy[1] - K[1, 2]) / K[1, 1], -1.0])
    R, t = M[:3, :3], M[:3, 3]
    origin = -R.T @ t
    d_world = R.T @ d_cam
    if abs(d_world[1]) < 1e-9:
        return None
    s = (ground_y - origin[1]) / d_world[1]
    if s <= 0:
        return None
    return float(s), origin + s * d_world  # d_cam has z = -1, so s is the planar depth


class Placer:
    """Per-frame geometry for one take, from the settings and the reference frame's matte."""

    def __init__(self, settings: PlacementSettings, plate_size: tuple[int, int], frame_size: tuple[int, int],
                 ref_contact: tuple[float, float] | None, ref_height_px: int) -> None:
        self.s = settings
        self.plate_size = plate_size
        self.frame_size = frame_size
        self.ref_contact = settings.contact or ref_contact
        self.ref_height_px = ref_height_px
        if settings.position is not None and self.ref_contact is None:
            raise PlacementError("cannot find the actor's feet in the reference plate frame", hint="pass --ground-contact U,V (plate pixel of the feet)")

    def geometry(self, cam: CameraFrame, frame: int, contact_plate: tuple[float, float] | None) -> FrameGeometry:
        s = self.s
        pw, ph = self.plate_size
        fw, fh = self.frame_size
        if s.position is not None:
            pix, depth = cam.project(np.asarray(s.position, float))
            d0 = float(depth)
            if d0 <= cam.clip[0]:
                raise PlacementError(f"the placement {tuple(s.position)} is behind the set camera at frame {frame}", hint="choose a position in front of the camera")
            if s.scale is not None:
                scale = s.scale
            elif self.ref_height_px > 0:
                scale = (s.height_m * cam.K[1, 1] / d0) / self.ref_height_px
            else:
                scale = min(fw / pw, fh / ph)
            transform = Transform(scale, float(pix[0]) - scale * self.ref_contact[0], float(pix[1]) - scale * self.ref_contact[1])
            fallback = (d0, np.asarray(s.position, float), (float(pix[0]), float(pix[1])))
        else:
            scale = s.scale if s.scale is not None else min(fw / pw, fh / ph)
            transform = Transform(scale, (fw - scale * pw) / 2.0, (fh - scale * ph) / 2.0)
            if scale == 1.0:
                transform = Transform(1.0, float(round(transform.tx)), float(round(transform.ty)))
            fallback = None
        feet = contact_plate if (s.track or fallback is None) and contact_plate is not None else None
        if feet is None and fallback is None:
            raise PlacementError(f"no actor feet in the plate at frame {frame} and no --place position to fall back on", hint="pass --place X,Y,Z")
        if feet is not None:
            xy = transform.point(feet)
            hit = ray_ground(cam, xy, s.plane_y)
            if hit is not None and hit[0] > cam.clip[0]:
                return FrameGeometry(transform, hit[0], xy, hit[1], s.plane_y)
            if fallback is None:
                raise PlacementError(f"the actor's feet at frame {frame} (pixel {xy[0]:.0f},{xy[1]:.0f}) do not meet the ground plane y={s.plane_y:g}",
                                     hint="pass --place X,Y,Z or --ground-y")
        return FrameGeometry(transform, fallback[0], fallback[2], fallback[1], s.plane_y)

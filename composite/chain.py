"""One frame of the composite, stage by stage, on the actor's bounding box.

Everything here is pure array work on arrays already in memory (the pipeline does the I/O):
the plate's matte and despilled colour (in plate pixels, cropped to the actor), moved into the
frame, colour matched, lit, depth tested against the set, light wrapped, grained, then laid
over the set with its contact shadow. Only the bounding box is touched, so the cost follows the
actor's size, not the frame's.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, Iterator

import numpy as np

from machinima.passes import CameraFrame

from . import colormatch, lighting, shadow, ztest
from .errors import SettingsError
from .grain import GrainBank
from .keyer import Rect, _cv2
from .lightwrap import light_wrap
from .placement import FrameGeometry


@dataclass(frozen=True)
class ChainSettings:
    depth_bias: float = 0.25  # metres the actor counts as nearer (feet on the floor stay visible)
    edge_px: float = 1.0  # anti-aliasing of the occlusion edge (Gaussian sigma, px)
    wrap_radius: float = 8.0  # light wrap blur (px)
    wrap_strength: float = 0.4
    shadow_opacity: float = 0.45  # contact shadow (0 = none)
    shadow_radius_m: float = 0.35

    def __post_init__(self) -> None:
        if not 0 <= self.edge_px <= 20 or not 0 <= self.wrap_strength <= 1 or not 0 <= self.shadow_opacity <= 1:
            raise SettingsError("edge_px must be in [0, 20], wrap strength and shadow opacity in [0, 1]")
        if self.wrap_radius < 0 or self.shadow_radius_m <= 0:
            raise SettingsError("wrap radius must be >= 0 and shadow radius > 0")

    def to_doc(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class FrameInputs:
    set_rgb: np.ndarray  # uint8 HxWx3 (composited in place)
    set_depth: np.ndarray  # float32 HxW planar metres
    plate_rect: Rect | None  # actor's box in plate pixels (None: no actor this frame)
    alpha: np.ndarray | None  # uint8 matte in the box
    fg: np.ndarray | None  # uint8 RGB plate in the box (despilled)
    geometry: FrameGeometry | None
    camera: CameraFrame | None = None
    light: np.ndarray = field(default_factory=lambda: np.ones(3))  # RGB factor (at the feet: the fallback of a light map)
    light_map: np.ndarray | None = None  # the set's light pass as read (uint8/uint16/float), factors per pixel via lighting.as_factors
    light_linear: bool = False  # the light map is linear light (Blender's diffuse passes): multiply in linear
    plate_depth: np.ndarray | None = None  # float32 metres in the box (depth model), else billboard
    frame: int = 0


@dataclass
class FrameResult:
    rgb: np.ndarray
    alpha: np.ndarray  # uint8 HxW: the actor's final coverage in the frame
    rect: Rect | None
    timings: dict[str, float] = field(default_factory=dict)


class _Timer:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.t: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        if not self.enabled:
            yield
            return
        t0 = time.perf_counter()
        yield
        self.t[name] = self.t.get(name, 0.0) + time.perf_counter() - t0


class Chain:
    """The per-frame composite with its take-wide state (colour LUT, grain banks)."""

    def __init__(self, settings: ChainSettings, *, color_lut: np.ndarray | None = None,
                 plate_grain: GrainBank | None = None, set_grain: GrainBank | None = None) -> None:
        self.s = settings
        self.color_lut = color_lut
        self.plate_grain = plate_grain
        self.set_grain = set_grain
        self.cv2 = _cv2()

    def __call__(self, x: FrameInputs, *, timings: bool = False) -> FrameResult:
        cv2, s = self.cv2, self.s
        tm = _Timer(timings)
        h, w = x.set_depth.shape[:2]
        out = x.set_rgb
        cover = np.zeros((h, w), np.uint8)
        # 1. grain on the set (when the plate is the grainier one)
        if self.set_grain is not None:
            with tm("grain"):
                out = self.set_grain.add(out, x.frame)
        if x.plate_rect is None or x.geometry is None:
            return FrameResult(out, cover, None, tm.t)
        # 2. move the actor's box from plate to frame pixels
        with tm("place"):
            imgs = [x.fg, x.alpha] + ([x.plate_depth] if x.plate_depth is not None else [])
            placed = x.geometry.transform.warp(imgs, x.plate_rect, (w, h))
        if placed is None:
            return FrameResult(out, cover, None, tm.t)
        rect, imgs = placed
        fg, alpha = imgs[0], imgs[1]
        x0, y0, x1, y1 = rect
        bg = out[y0:y1, x0:x1]
        # 3. colour match to the set (LAB LUT)
        with tm("color"):
            fg = colormatch.apply_lut(fg, self.color_lut)
        pd = imgs[2] if x.plate_depth is not None else x.geometry.depth
        # 4. the set's light: per pixel from the light pass at the actor's depth, else the factor at the feet
        with tm("light"):
            if x.light_map is not None:
                # the pass converted to factors only in the actor's box (a 1080p frame of float factors is 25 MB)
                lmap = lighting.light_on_actor(lighting.as_factors(x.light_map[y0:y1, x0:x1]), x.set_depth[y0:y1, x0:x1], pd, x.light)
                fg = lighting.apply_light_map(fg, lmap, linear=x.light_linear)
            else:
                fg = lighting.apply_light(fg, x.light)
        # 5. z-test against the set depth, soft edge
        with tm("depth"):
            ground = ztest.ground_depth(x.camera, rect, x.geometry.ground_y) if x.camera is not None else None
            vis = ztest.visibility(x.set_depth[y0:y1, x0:x1], pd, bias=s.depth_bias, edge_px=s.edge_px, ground=ground)
            alpha = ztest.occlude(alpha, vis)
        # 6. light wrap from the set behind the actor
        with tm("wrap"):
            fg = light_wrap(fg, bg, alpha, radius=s.wrap_radius, strength=s.wrap_strength)
        # 7. grain on the plate (when the set is the grainier one)
        if self.plate_grain is not None:
            with tm("grain"):
                fg = self.plate_grain.add(fg, x.frame, rect)
        # 8. contact shadow on the set's ground, then the actor over the set
        with tm("over"):
            if s.shadow_opacity > 0 and x.camera is not None:
                sh = shadow.shadow_matte(x.camera, x.geometry.contact_world, (w, h), radius_m=s.shadow_radius_m)
                if sh is not None:
                    shadow.apply_shadow(out, x.set_depth, x.geometry.depth, sh[0], sh[1], opacity=s.shadow_opacity)
            bg = out[y0:y1, x0:x1]
            a = alpha.astype(np.float32) * (1.0 / 255.0)
            out[y0:y1, x0:x1] = cv2.blendLinear(fg, bg, a, 1.0 - a)
            cover[y0:y1, x0:x1] = alpha
        return FrameResult(out, cover, rect, tm.t)

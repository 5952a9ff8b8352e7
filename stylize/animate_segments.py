"""A take cut into the segments AnimateDiff makes whole (motion never runs across a shot's cut),
and the control images of each frame (exact passes where the take has them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from . import controls as C
from .look import Look
from .sources import Source


@dataclass
class Segment:
    frames: list[int]
    seed: int
    strength: float
    shot: str | None


def plan_segments(look: Look, frames: Sequence[int], step: int = 1) -> list[Segment]:
    """Maximal runs of consecutive chosen frames inside one shot (or outside all shots);
    ``step``: the source's frame step (passes every 2nd frame: frames 2 apart are consecutive)."""
    segs: list[Segment] = []
    for f in frames:
        shot = look.shot_of(f)
        name = shot.name if shot else None
        if segs and segs[-1].shot == name and 0 < f - segs[-1].frames[-1] <= step:
            segs[-1].frames.append(f)
            continue
        seed = shot.seed if shot and shot.seed is not None else look.seed
        strength = shot.strength if shot and shot.strength is not None else look.model.strength
        segs.append(Segment([f], int(seed), float(strength), name))
    return segs


def control_images(look: Look, source: Source, frames: Sequence[int]) -> list[list[np.ndarray]]:
    """Control ``c`` of every frame: exact passes (depth, pose, normal, masks) or from the image."""
    out = []
    for c in look.controls:
        if c.kind == "depth":
            near, far = c.options.get("near"), c.options.get("far")
            if near is None or far is None:
                probe = [frames[0], frames[len(frames) // 2], frames[-1]]
                near, far = C.depth_range([source.raw("depth", f) for f in probe])
            seq = [C.depth_control(source.raw("depth", f), float(near), float(far)) for f in frames]
        elif c.kind == "pose":
            seq = [_rgb(source.raw("pose", f)) for f in frames]
        elif c.kind == "normal":
            seq = [C.normal_control(source.raw("normal", f)) for f in frames]
        elif c.kind == "mask":
            seq = [C.mask_control(source.raw(f"mask/{c.options.get('mask', '')}", f)) for f in frames]
        else:
            seq = [C.image_control(c.kind, source.image(f), c.options) for f in frames]
        out.append(seq)
    return out


def _rgb(x: np.ndarray) -> np.ndarray:
    a = np.asarray(x)
    if a.dtype != np.uint8:
        a = (np.clip(a, 0, 1) * 255 + 0.5).astype(np.uint8)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    return np.ascontiguousarray(a[..., :3])


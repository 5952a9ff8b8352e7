"""Synthetic scenes for the composite tests: a tiny take with passes built with PassSet and numpy,
plates as RGBA frames, and a soft-edged actor on a green screen."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from composite.chain import ChainSettings
from composite.pipeline import CompositeSettings
from composite.placement import PlacementSettings
from machinima.imageseq import write_image
from machinima.passes import BACKGROUND_DEPTH, CameraFrame, PassSet, look_at
from machinima.take import Take

W, H = 96, 64
K = np.array([[100.0, 0, 48], [0, 100.0, 32], [0, 0, 1]])
# camera 1 m above the floor looking straight down -Z: the floor row 52 is 5 m away (32 + 100 * 1/5)
CAM = CameraFrame(K, look_at(np.array([0.0, 1.0, 0.0]), np.array([0.0, 1.0, -1.0])), W, H)
WALL_X = 44  # the wall covers columns < 44, 3 m away (nearer than the actor at 5 m)
ACTOR_RGB = (200, 60, 40)


def make_take(tmp: Path, *, frames: int = 2, passes: tuple[str, ...] = ("rgb", "depth"), light: np.ndarray | None = None,
              depth_size: tuple[int, int] | None = None, timecode_in: str | None = None) -> Path:
    take = Take.create(tmp / "takes", production="t", scene="s", shot="c", fps=24, timecode_in=timecode_in)
    take.finalize()
    ps = PassSet.create(take.passes_dir(), width=W, height=H, fps="24")
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[:] = (90, 110, 130)
    rgb[:, :WALL_X] = (30, 160, 30)
    depth = np.full((H, W), BACKGROUND_DEPTH, np.float32)
    depth[:, :WALL_X] = 3.0
    rows = np.arange(H, dtype=np.float32)[:, None] + 0.5
    with np.errstate(divide="ignore"):
        floor = np.where(rows > 32, 100.0 / (rows - 32), BACKGROUND_DEPTH)  # the floor y=0, seen from 1 m up
    depth = np.minimum(depth, np.broadcast_to(floor, depth.shape)).astype(np.float32)
    for f in range(frames):
        if "rgb" in passes:
            ps.write("rgb", f, rgb)
        if "depth" in passes:
            d = depth if depth_size is None else np.full((depth_size[1], depth_size[0]), 10.0, np.float32)
            ps.write("depth", f, d)
        if light is not None:
            ps.write("light", f, light)
    ps.save()
    ps.write_cameras({f: CAM for f in range(frames)})
    path = take.path
    take.close()
    return path


def make_plate(tmp: Path, feet_x: list[int], *, alpha: bool = True, name: str = "plate", colors: list | None = None) -> Path:
    """RGBA frames: an actor rectangle 16 px wide whose bottom row (the feet) is row 52."""
    folder = tmp / name
    for i, fx in enumerate(feet_x):
        img = np.zeros((H, W, 4 if alpha else 3), np.uint8)
        img[..., :3] = (40, 190, 60)
        img[10:53, fx - 8:fx + 8, :3] = colors[i] if colors else ACTOR_RGB
        if alpha:
            img[10:53, fx - 8:fx + 8, 3] = 255
        write_image(folder / f"{i:06d}.png", img)
    return folder


def plain(plate: Path, **kw) -> CompositeSettings:
    """Everything that changes colours off, so pixels can be compared exactly."""
    chain = ChainSettings(wrap_strength=0.0, shadow_opacity=0.0, edge_px=1.0)
    base = dict(plate=plate, matte="alpha", placement=PlacementSettings(position=(0.0, 0.0, -5.0), contact=(48.0, 52.0), scale=1.0),
                light="none", color_match="none", grain="none", chain=chain, video=False)
    base.update(kw)
    return CompositeSettings(**base)


def green_screen(h=240, w=320, *, seed=0, screen=(45, 185, 65)):
    """A soft-edged actor (ellipse head, body, limbs) on an uneven, noisy green screen with spill."""
    rng = np.random.default_rng(seed)
    truth = np.zeros((h, w), np.uint8)
    cv2.ellipse(truth, (160, 50), (18, 24), 0, 0, 360, 255, -1, cv2.LINE_AA)
    cv2.rectangle(truth, (135, 75), (185, 170), 255, -1, cv2.LINE_AA)
    cv2.line(truth, (150, 170), (140, 230), 255, 12, cv2.LINE_AA)
    cv2.line(truth, (170, 170), (182, 230), 255, 12, cv2.LINE_AA)
    cv2.line(truth, (135, 80), (100, 140), 255, 8, cv2.LINE_AA)
    yy, xx = np.mgrid[0:h, 0:w]
    falloff = (1.0 - 0.25 * ((xx - w / 2) ** 2 + (yy - h / 2) ** 2) / (w * w / 4)).astype(np.float32)[..., None]
    bg = np.array(screen, np.float32) * falloff
    actor = np.zeros((h, w, 3), np.float32)
    actor[...] = (170, 120, 100)
    actor[yy > 170] = (50, 50, 90)
    actor += rng.normal(0, 10, actor.shape)
    a = truth.astype(np.float32)[..., None] / 255.0
    img = actor * a + bg * (1 - a)
    img[..., 1] += 18 * a[..., 0] * (1 - a[..., 0]) * 4  # green spill on the edge
    img += rng.normal(0, 3, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8), truth

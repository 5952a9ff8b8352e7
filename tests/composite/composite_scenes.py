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


def make_take(tmp: Path, *, frames: int | list[int] = 2, passes: tuple[str, ...] = ("rgb", "depth"), light: np.ndarray | None = None,
              depth_size: tuple[int, int] | None = None, timecode_in: str | None = None) -> Path:
    """A take with passes for ``frames`` (a count from 0, or the frame numbers: every Nth, a range)."""
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
    frame_list = list(range(frames)) if isinstance(frames, int) else list(frames)
    for f in frame_list:
        if "rgb" in passes:
            ps.write("rgb", f, rgb)
        if "depth" in passes:
            d = depth if depth_size is None else np.full((depth_size[1], depth_size[0]), 10.0, np.float32)
            ps.write("depth", f, d)
        if light is not None:
            ps.write("light", f, light)
    ps.save()
    ps.write_cameras({f: CAM for f in frame_list})
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


def soft_actor(screen: str = "green", *, h: int = 120, w: int = 160, seed: int = 0, spill: float = 12.0, noise: float = 0.5):
    """An actor with a known coverage shot on an uneven screen: (plate uint8, alpha float 0..1,
    actor colour F float HxWx3, screen colour).

    Head (hair on top, skin below) and torso anti-aliased at 4x; 14 hair strands 0.75 px wide at
    80 % coverage; an arm motion-blurred by an 11 px box (a coverage ramp). The actor's colour is
    smooth at the scale of an edge (shading across the body). The plate is the exact mix
    ``alpha * F + (1 - alpha) * S`` over a screen falling off 20 % to the corners, plus green/blue
    spill on the edge (``spill * 4 a (1 - a)`` on the screen channel), sensor noise and 8-bit
    rounding.
    """
    rng = np.random.default_rng(seed)
    big = np.zeros((h * 4, w * 4), np.uint8)
    cv2.ellipse(big, (320, 152), (64, 80), 0, 0, 360, 255, -1, cv2.LINE_AA)  # head
    cv2.rectangle(big, (248, 232), (392, 472), 255, -1)  # torso
    body = cv2.resize(big, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    hair = np.zeros((h * 4, w * 4), np.uint8)
    for k in range(14):
        ang = np.pi * (0.1 + 0.8 * k / 13)
        p0 = (320 + int(60 * np.cos(ang)), 152 - int(76 * np.sin(ang)))
        p1 = (320 + int(108 * np.cos(ang + 0.1)), 152 - int(120 * np.sin(ang + 0.1)))
        cv2.line(hair, p0, p1, 255, 3, cv2.LINE_AA)
    strands = cv2.resize(hair, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255 * 0.8
    arm = np.zeros((h, w), np.float32)
    arm[70:80, 20:62] = 1
    arm = cv2.filter2D(arm, -1, np.ones((1, 11), np.float32) / 11)  # motion blur
    alpha = np.clip(body + strands * (1 - body) + arm * (1 - body), 0, 1)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    skin, shirt, hair_c = (np.array(c, np.float32) for c in ((200, 150, 125), (170, 55, 50), (90, 60, 40)))
    F = np.where((yy < 58)[..., None], skin, shirt) * (0.85 + 0.15 * xx / w)[..., None]
    F = np.where(((strands > body) | (yy < 40))[..., None] & (yy < 58)[..., None], hair_c, F)
    screen_rgb = np.array((45, 185, 65) if screen == "green" else (30, 60, 200), np.float32)
    S = screen_rgb * (1.0 - 0.2 * ((xx - w / 2) ** 2 + (yy - h / 2) ** 2) / (w * w / 4))[..., None]
    c = 1 if screen == "green" else 2
    plate = alpha[..., None] * F + (1 - alpha[..., None]) * S + rng.normal(0, noise, (h, w, 3))
    plate[..., c] += spill * 4 * alpha * (1 - alpha)
    return np.clip(np.round(plate), 0, 255).astype(np.uint8), alpha, F, screen_rgb

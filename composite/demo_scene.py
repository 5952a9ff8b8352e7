"""A synthetic set and a green-screen plate to try the composite without a render or a shoot.

The set: a floor (checker), a back wall, a pillar nearer the camera than the actor's path and a
crate behind it, a shadow band on the floor, ray-cast in numpy into a take's passes (rgb, depth
in metres, a ``light`` pass, camera.json). The plate: a stick-figure actor walking left to right
on a green screen, drawn through the same camera, as an mp4. Composited with ``--place`` at the
actor's first position, the actor passes behind the pillar, in front of the crate, and darkens
in the shadow band.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from machinima.imageseq import write_image, write_video
from machinima.passes import BACKGROUND_DEPTH, CameraFrame, PassSet, intrinsics, look_at
from machinima.take import Take

from .keyer import _cv2

EYE = np.array([0.0, 1.6, 6.0])
TARGET = np.array([0.0, 1.0, 0.0])
PILLAR = ((-0.35, 0.0, 0.6), (0.35, 3.0, 1.3))  # min, max corners: nearer than the path at z=0
CRATE = ((1.6, 0.0, -2.6), (2.6, 1.0, -1.6))  # behind the path
WALL_Z = -4.0
SHADOW_X = (1.2, 3.6)  # shadow band on the floor (and wall)
SHADOW_FACTOR = 0.4
START, END = np.array([-3.0, 0.0, 0.0]), np.array([3.0, 0.0, 0.0])


def camera(width: int, height: int) -> CameraFrame:
    return CameraFrame(intrinsics(width, height, 35.0), look_at(EYE, TARGET), width, height, 35.0, 36.0, (0.1, 1000.0))


def _box_hit(o, d, lo, hi):
    with np.errstate(divide="ignore", invalid="ignore"):
        t1 = (np.asarray(lo)[None] - o[None]) / d
        t2 = (np.asarray(hi)[None] - o[None]) / d
    tmin = np.nanmax(np.minimum(t1, t2), axis=1)
    tmax = np.nanmin(np.maximum(t1, t2), axis=1)
    hit = (tmax >= tmin) & (tmax > 0)
    return np.where(hit, np.maximum(tmin, 0), np.inf)


def render_set(cam: CameraFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rgb uint8, planar depth float32, light uint8 RGB) of the demo set through ``cam``."""
    w, h = cam.width, cam.height
    K, M = cam.K, cam.world_to_camera
    u, v = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    d_cam = np.stack([(u - K[0, 2]) / K[0, 0], -(v - K[1, 2]) / K[1, 1], -np.ones_like(u)], -1).reshape(-1, 3)
    R, t = M[:3, :3], M[:3, 3]
    o = -R.T @ t
    d = d_cam @ R  # = (R.T @ d_cam.T).T ; planar depth = ray parameter since d_cam.z = -1
    with np.errstate(divide="ignore", invalid="ignore"):
        t_floor = np.where(d[:, 1] < 0, (0.0 - o[1]) / d[:, 1], np.inf)
        t_wall = np.where(d[:, 2] < 0, (WALL_Z - o[2]) / d[:, 2], np.inf)
    t_pillar = _box_hit(o, d, *PILLAR)
    t_crate = _box_hit(o, d, *CRATE)
    ts = np.stack([t_floor, t_wall, t_pillar, t_crate], 1)
    which = np.argmin(ts, 1)
    tt = ts[np.arange(len(ts)), which]
    p = o[None] + tt[:, None] * d
    colors = np.array([[150, 140, 120], [110, 120, 150], [170, 80, 60], [120, 100, 60]], float)
    rgb = colors[which]
    checker = ((np.floor(p[:, 0]) + np.floor(p[:, 2])) % 2 == 0) & (which == 0)
    rgb[checker] *= 0.8
    shade = np.where(which == 2, 0.85, 1.0)
    in_band = (p[:, 0] > SHADOW_X[0]) & (p[:, 0] < SHADOW_X[1]) & (which != 2)
    light = np.where(in_band, SHADOW_FACTOR, 1.0)
    finite = np.isfinite(tt)
    rgb = np.where(finite[:, None], rgb * (shade * light)[:, None], np.array([170, 200, 230.0]))
    depth = np.where(finite, tt, BACKGROUND_DEPTH).astype(np.float32)
    light_img = np.repeat(np.round(np.where(finite, light, 1.0) * 255).astype(np.uint8)[:, None], 3, 1)
    return (np.clip(rgb, 0, 255).astype(np.uint8).reshape(h, w, 3), depth.reshape(h, w), light_img.reshape(h, w, 3))


def actor_frame(cam: CameraFrame, feet_world: np.ndarray, phase: float, screen=(40, 190, 60), height_m: float = 1.75,
                noise: float = 2.0, rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(plate RGB, true matte) of a stick-figure actor standing at ``feet_world`` on a green screen."""
    cv2 = _cv2()
    w, h = cam.width, cam.height
    img = np.empty((h, w, 3), np.uint8)
    img[:] = screen
    matte = np.zeros((h, w), np.uint8)
    (fx, fy), depth = cam.project(np.asarray(feet_world, float))
    s = height_m * cam.K[1, 1] / float(depth)  # pixels per actor height
    def P(x, y):
        return int(round(fx + x * s)), int(round(fy - y * s))
    swing = 0.12 * np.sin(phase)
    parts = [  # (draw fn, colour)
        (lambda m, c: cv2.line(m, P(0, 0.5), P(-0.05 + swing, 0.0), c, max(2, int(0.07 * s)), cv2.LINE_AA), (60, 60, 140)),
        (lambda m, c: cv2.line(m, P(0, 0.5), P(0.05 - swing, 0.0), c, max(2, int(0.07 * s)), cv2.LINE_AA), (60, 60, 140)),
        (lambda m, c: cv2.ellipse(m, P(0, 0.68), (max(2, int(0.11 * s)), max(3, int(0.2 * s))), 0, 0, 360, c, -1, cv2.LINE_AA), (200, 70, 40)),
        (lambda m, c: cv2.line(m, P(0, 0.82), P(-0.15 - swing, 0.5), c, max(2, int(0.045 * s)), cv2.LINE_AA), (220, 170, 140)),
        (lambda m, c: cv2.line(m, P(0, 0.82), P(0.15 + swing, 0.5), c, max(2, int(0.045 * s)), cv2.LINE_AA), (220, 170, 140)),
        (lambda m, c: cv2.circle(m, P(0, 0.93), max(2, int(0.07 * s)), c, -1, cv2.LINE_AA), (225, 180, 150)),
    ]
    for draw, colour in parts:
        layer = np.zeros((h, w), np.uint8)
        draw(layer, 255)
        a = layer.astype(np.float32)[..., None] / 255.0
        img[:] = (img * (1 - a) + np.array(colour, float) * a).astype(np.uint8)
        np.maximum(matte, layer, out=matte)
    if noise > 0:
        rng = rng or np.random.default_rng(0)
        img = np.clip(img + rng.normal(0, noise, img.shape), 0, 255).astype(np.uint8)
    return img, matte


def make_demo(out: str | Path, *, width: int = 640, height: int = 360, frames: int = 48, fps: int = 24,
              plate_as: str = "mp4") -> tuple[Path, Path, tuple[float, float, float]]:
    """Write a take with passes and a plate; returns (take folder, plate path, --place position)."""
    out = Path(out)
    take = Take.create(out / "takes", production="demo", scene="composite", shot="walk", fps=fps)
    take.finalize()
    cam = camera(width, height)
    ps = PassSet.create(take.passes_dir(), width=width, height=height, fps=str(fps), engine="composite-demo")
    rgb, depth, light = render_set(cam)
    for f in range(frames):
        ps.write("rgb", f, rgb)
        ps.write("depth", f, depth)
        ps.write("light", f, light)
    ps.save()
    ps.write_cameras({f: cam for f in range(frames)})
    rng = np.random.default_rng(1)
    plates = []
    for f in range(frames):
        k = f / max(frames - 1, 1)
        img, _ = actor_frame(cam, START + k * (END - START), phase=f * 0.5, rng=rng)
        plates.append(img)
    if plate_as == "mp4":
        plate = write_video(out / "plate.mp4", plates, fps)
    else:
        plate = out / "plate"
        for f, img in enumerate(plates):
            write_image(plate / f"{f:06d}.png", img)
    path = take.path
    take.close()
    return path, plate, tuple(float(v) for v in START)


def plate_for_take(take_path: str | Path, out: str | Path, *, ground_y: float = 0.0, walk_m: float = 3.0) -> tuple[Path, tuple[float, float, float]]:
    """A green-screen plate of the stick-figure actor for any rendered take, drawn through its cameras.

    The actor walks ``walk_m`` metres across the ground point seen at the lower third of the first
    frame, left to right; returns (plate mp4, --place position of the first frame).
    """
    from .errors import PlacementError
    from .placement import ray_ground

    take = Take.open(take_path)
    ps = PassSet.open(take.passes_dir())
    cams = ps.cameras()
    frames = [f for f in ps.frames if f in cams]
    if not frames:
        raise PlacementError(f"take {take.id} has no cameras for its frames")
    cam0 = cams[frames[0]]
    hit = ray_ground(cam0, (cam0.width / 2, cam0.height * 0.7), ground_y)
    if hit is None:
        raise PlacementError(f"the camera of take {take.id} does not see the ground plane y={ground_y:g}", hint="pass --ground-y")
    right = cam0.world_to_camera[0, :3].copy()
    right[1] = 0.0
    right /= np.linalg.norm(right) + 1e-12
    start, end = hit[1] - right * walk_m / 2, hit[1] + right * walk_m / 2
    rng = np.random.default_rng(1)
    imgs = [actor_frame(cams[f], start + (i / max(len(frames) - 1, 1)) * (end - start), phase=i * 0.5, rng=rng)[0] for i, f in enumerate(frames)]
    plate = write_video(Path(out) / f"{take.id}_plate.mp4", imgs, take.fps)
    return plate, tuple(float(v) for v in start)

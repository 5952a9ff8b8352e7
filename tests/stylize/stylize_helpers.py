"""Helpers for stylize tests: synthetic textures, translating clips, a real photo moved along a
known camera path, takes with passes (PassSet) including the render's motion pass."""

from __future__ import annotations

from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parent.parent / "data"


def photo() -> np.ndarray:
    """A real photo (tests/data/chelsea_small.png, CC0; source in chelsea_small.md)."""
    from machinima.imageseq import read_image

    return read_image(DATA / "chelsea_small.png")[..., :3]


def add_motion_pass(ps, motion: list[np.ndarray]) -> None:
    """Write the motion pass in the agreed format (2-channel float32 EXR, backward) and declare it."""
    from stylize.motion import write_motion

    for f, m in enumerate(motion):
        write_motion(ps.path("motion", f, "exr"), m)
    ps.meta.setdefault("passes", {})["motion"] = {"format": "exr", "channels": ["dx", "dy"], "units": "px", "direction": "backward"}


def texture(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth random colour texture (uint8 HxWx3) that optical flow can track."""
    import cv2

    rng = np.random.default_rng(seed)
    noise = rng.random((h, w, 3)).astype(np.float32)
    tex = cv2.GaussianBlur(noise, (0, 0), 2.0)
    tex = (tex - tex.min()) / (tex.max() - tex.min())
    return (tex * 255).astype(np.uint8)


def translating(n: int, h: int = 32, w: int = 32, dx: int = 1, seed: int = 0) -> list[np.ndarray]:
    """n frames of a window sliding over a texture by dx pixels a frame (no wrap-around)."""
    big = texture(h, w + n * abs(dx) + 2, seed)
    return [np.ascontiguousarray(big[:, i * dx:i * dx + w]) for i in range(n)]


def make_take(root, n: int = 8, size: int = 32, *, pose: bool = True, masks: tuple[str, ...] = ("ada",), seed: int = 0,
              frames: list[np.ndarray] | None = None, motion: list[np.ndarray] | None = None):
    """A finalized take whose passes hold rgb, depth (metres), pose and masks for n frames
    (a translating texture, or ``frames``), and a motion pass when ``motion`` is given."""
    from machinima.passes import PassSet
    from machinima.take import Take

    take = Take.create(root, production="p", scene="1", shot="1", fps=24)
    take.finalize()
    take.close()
    ps = PassSet.create(take.passes_dir(), width=size, height=size, fps="24", engine="test")
    frames = frames if frames is not None else translating(n, size, size, seed=seed)
    yy, xx = np.indices((size, size))
    for f, img in enumerate(frames):
        ps.write("rgb", f, img)
        depth = (2.0 + xx / size * 3.0).astype(np.float32)
        depth[:3] = 1.0e4  # sky
        ps.write("depth", f, depth)
        if pose:
            p = np.zeros((size, size, 3), np.uint8)
            p[size // 4: 3 * size // 4, size // 2 + f % 3] = (255, 0, 0)
            ps.write("pose", f, p)
        for m in masks:
            mk = np.zeros((size, size), np.uint8)
            mk[8:24, 8 + f % 4: 20 + f % 4] = 255
            ps.write(f"mask/{m}", f, mk, mask_kind="performer")
    if motion is not None:
        add_motion_pass(ps, motion)
    ps.save()
    return take.path



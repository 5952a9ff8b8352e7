"""Helpers for stylize tests: synthetic textures, translating clips, takes with passes (PassSet)."""

from __future__ import annotations

import numpy as np


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


def make_take(root, n: int = 8, size: int = 32, *, pose: bool = True, masks: tuple[str, ...] = ("ada",), seed: int = 0):
    """A finalized take whose passes hold rgb, depth (metres), pose and masks for n frames."""
    from machinima.passes import PassSet
    from machinima.take import Take

    take = Take.create(root, production="p", scene="1", shot="1", fps=24)
    take.finalize()
    take.close()
    ps = PassSet.create(take.passes_dir(), width=size, height=size, fps="24", engine="test")
    frames = translating(n, size, size, seed=seed)
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
    ps.save()
    return take.path



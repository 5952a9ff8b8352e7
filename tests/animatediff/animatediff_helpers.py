"""Helpers for the AnimateDiff tests (a uniquely named module: every test folder has a conftest)."""

from __future__ import annotations

import numpy as np


def translating(n: int, h: int = 32, w: int = 32, dx: int = 1, seed: int = 0) -> list[np.ndarray]:
    """n frames of a window sliding over a smooth random colour texture."""
    import cv2

    rng = np.random.default_rng(seed)
    tex = cv2.GaussianBlur(rng.random((h, w + n * abs(dx) + 2, 3)).astype(np.float32), (0, 0), 2.0)
    tex = ((tex - tex.min()) / (tex.max() - tex.min()) * 255).astype(np.uint8)
    return [np.ascontiguousarray(tex[:, i * dx:i * dx + w]) for i in range(n)]


def make_take(root, n: int = 12, size: int = 32):
    from machinima.passes import PassSet
    from machinima.take import Take

    take = Take.create(root, production="p", scene="1", shot="1", fps=24)
    take.finalize()
    take.close()
    ps = PassSet.create(take.passes_dir(), width=size, height=size, fps="24", engine="test")
    for f, img in enumerate(translating(n, size, size)):
        ps.write("rgb", f, img)
    ps.save()
    return take.path


def look_doc(**over) -> dict:
    ad = {"motion_adapter": "motion/tiny", "context_length": 8, "context_overlap": 4}
    ad.update(over.pop("animatediff", {}))
    model = {"base": "tiny", "steps": 4, "strength": 0.5, "guidance": 1.0}
    model.update(over.pop("model", {}))
    return {"engine": "diffusion", "prompt": "a painted street", "negative": "blurry", "seed": 7,
            "model": model, "animatediff": ad, **over}

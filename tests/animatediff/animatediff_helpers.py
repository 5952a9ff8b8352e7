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


def make_take(root, n: int = 12, size: int = 32, depth: bool = False):
    from machinima.passes import PassSet
    from machinima.take import Take

    take = Take.create(root, production="p", scene="1", shot="1", fps=24)
    take.finalize()
    take.close()
    ps = PassSet.create(take.passes_dir(), width=size, height=size, fps="24", engine="test")
    for f, img in enumerate(translating(n, size, size)):
        ps.write("rgb", f, img)
        if depth:
            ps.write("depth", f, np.tile(np.linspace(2.0, 6.0, size, dtype=np.float32), (size, 1)))
    ps.save()
    return take.path


def look_doc(**over) -> dict:
    ad = {"motion_adapter": "motion/tiny", "context_length": 8, "context_overlap": 4}
    ad.update(over.pop("animatediff", {}))
    model = {"base": "tiny", "steps": 4, "strength": 0.5, "guidance": 1.0}
    model.update(over.pop("model", {}))
    return {"engine": "diffusion", "prompt": "a painted street", "negative": "blurry", "seed": 7,
            "model": model, "animatediff": ad, **over}


def write_tiny_models(models, *, seed: int = 0) -> None:
    """Tiny random models saved where the shipped look animatediff-sd15 expects them."""
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    from stylize.animatediff import tiny_motion_components
    from stylize.tiny import tiny_components, tiny_text_encoder

    comps = tiny_motion_components(1, seed=seed)
    te, tok = tiny_text_encoder(models / "_tok")
    unet2d = tiny_components(0, seed=seed)["unet"]
    StableDiffusionPipeline(vae=comps["vae"], text_encoder=te, tokenizer=tok, unet=unet2d, scheduler=DDIMScheduler(clip_sample=False, steps_offset=1),
                            safety_checker=None, feature_extractor=None, requires_safety_checker=False).save_pretrained(models / "sd15")
    comps["motion_adapter"].save_pretrained(models / "motion" / "animatediff-v1-5-3")
    comps["controlnets"][0].save_pretrained(models / "controlnets" / "sd15-depth")

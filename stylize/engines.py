"""Engines behind one interface: diffusion pipelines (local weights) and a classical painter.

An engine turns a batch of frames (HxWx3 uint8, already blended with their warped init) and
their control images into stylized frames::

    engine.stylize(images, controls, prompts=[(prompt, negative)...], seeds=[...], strengths=[...],
                   noises=[latent noise or None...], guidances=[cfg or None...])
    engine.noise(seed, h, w) -> the starting noise of a frame (C x h' x w' latent grid), None if
                                the engine draws none (the pipeline carries it along the motion)
    engine.describe()  -> what made the frames (for params.json): engine, models + fingerprints
    engine.batch       -> frames per call the runtime preset asks for

``ClassicalEngine`` needs no weights (OpenCV edge-preserving smoothing, colour quantization, ink
lines from the edge controls, haze from exact depth): the demo shows something real without
models. ``DiffusionEngine`` wraps diffusers' (ControlNet) img2img / txt2img pipelines for SD 1.5
and SDXL, loaded only from local paths.

The engines live in modules of one job each (``engine_base``: the interface and memory presets;
``diffusion_engine``; ``torch_setup``: device, dtype, scheduler); every name stays importable
from here.
"""

from __future__ import annotations

import hashlib
from typing import Any, Callable

import numpy as np

from .diffusion_engine import AnchorAttnProcessor, DiffusionEngine
from .engine_base import PRESETS, Engine, resolve_runtime
from .look import Look

__all__ = ["EDGE_KINDS", "PRESETS", "AnchorAttnProcessor", "ClassicalEngine", "DiffusionEngine", "Engine", "build_engine",
           "hash_embedder", "resolve_runtime"]

EDGE_KINDS = ("canny", "lineart", "softedge")


# --- classical ------------------------------------------------------------------------------
class ClassicalEngine(Engine):
    """A painted look with OpenCV only: deterministic, temporally stable, no weights."""

    name = "classical"

    def __init__(self, look: Look) -> None:
        self.spec = look.classical
        # frames are painted one by one, so a batch gains nothing; with batch 1 each keyframe's init
        # is the keyframe just before it (in a batch of 4 all four started from the one before the
        # batch, and keyframe init at cadence 4 lost its effect: warp error 1.11 with and without)
        self.batch = 1

    def describe(self) -> dict[str, Any]:
        import cv2

        return {"engine": "classical", "method": self.spec.method, "opencv": cv2.__version__,
                "note": "no diffusion weights: OpenCV painted look; point [model] base at local SD weights and set engine = 'diffusion' for the diffusion look"}

    def stylize(self, images, controls, *, prompts=(), seeds=(), strengths=(), noises=None, guidances=None):
        return [self._one(np.asarray(img), ctl) for img, ctl in zip(images, controls)]

    def _one(self, img: np.ndarray, ctl: dict[str, np.ndarray]) -> np.ndarray:
        import cv2

        s = self.spec
        img = np.ascontiguousarray(img[..., :3])
        if s.method == "stylization":
            out = cv2.stylization(img, sigma_s=s.sigma_s, sigma_r=s.sigma_r)
        elif s.method == "edge_preserving":
            out = cv2.edgePreservingFilter(img, flags=cv2.RECURS_FILTER, sigma_s=s.sigma_s, sigma_r=s.sigma_r)
        elif s.method == "ink":
            _, out = cv2.pencilSketch(img, sigma_s=s.sigma_s, sigma_r=min(s.sigma_r, 0.2), shade_factor=0.05)
        else:  # painted: smooth, posterize in Lab with a fixed palette grid (no per-frame palette = no flicker)
            out = cv2.edgePreservingFilter(img, flags=cv2.RECURS_FILTER, sigma_s=s.sigma_s, sigma_r=s.sigma_r)
            lab = cv2.cvtColor(out, cv2.COLOR_RGB2LAB).astype(np.float32)
            levels = max(2, int(s.colors))
            step_l, step_ab = 255.0 / levels, 255.0 / (2 * levels)  # fine chroma steps keep skin tones
            lab[..., 0] = (np.floor(lab[..., 0] / step_l) + 0.5) * step_l
            lab[..., 1:] = (np.floor(lab[..., 1:] / step_ab) + 0.5) * step_ab
            out = cv2.cvtColor(np.clip(lab, 0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB)
            out = cv2.medianBlur(out, 3)
        out = out.astype(np.float32)
        if "depth" in ctl:  # exact depth: aerial perspective, far things fade toward a pale haze
            near = ctl["depth"][..., 0].astype(np.float32) / 255.0
            haze = (1.0 - near)[..., None] * 0.35
            out = out * (1 - haze) + np.array([225, 228, 235], np.float32) * haze
        edges = [ctl[k] for k in EDGE_KINDS if k in ctl]
        if edges and s.edges > 0:
            line = np.max(np.stack([e[..., 0] for e in edges]), axis=0).astype(np.float32) / 255.0
            out = out * (1.0 - s.edges * line[..., None])
        return np.clip(out + 0.5, 0, 255).astype(np.uint8)



def hash_embedder(dim: int, length: int = 8, pooled: int = 0) -> Callable[[str], Any]:
    """Deterministic stand-in text embeddings (tests, benchmarks): a prompt's hash seeds them.
    ``pooled`` > 0 (SDXL) returns ``(embeds, pooled embeds)``."""
    import torch

    def embed(text: str):
        seed = int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)
        g = torch.Generator().manual_seed(seed)
        e = torch.randn(1, length, dim, generator=g)
        return (e, torch.randn(1, pooled, generator=g)) if pooled else e

    return embed



def build_engine(look: Look, config: Any = None) -> Engine:
    """The engine a look asks for."""
    if look.engine == "classical":
        return ClassicalEngine(look)
    return DiffusionEngine.from_look(look, config)

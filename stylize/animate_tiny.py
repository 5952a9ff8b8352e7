"""Tiny random AnimateDiff models built in code (tests, benchmarks, smoke runs): they prove
plumbing and speed, not looks, and need no download."""

from __future__ import annotations

from typing import Any

from .animate_engine import AnimateDiffEngine
from .animate_look import MotionSpec
from .look import Look


def tiny_motion_components(n_controls: int = 0, *, seed: int = 0, max_frames: int = 32) -> dict[str, Any]:
    """The tiny UNet/VAE/ControlNets of ``stylize.tiny`` + a tiny random MotionAdapter -> UNetMotionModel."""
    import torch
    from diffusers import MotionAdapter, UNetMotionModel

    from .tiny import tiny_components

    comps = tiny_components(n_controls, seed=seed)
    torch.manual_seed(seed + 100)
    adapter = MotionAdapter(block_out_channels=(32, 64), motion_layers_per_block=1, motion_transformer_layers_per_block=1,
                            motion_mid_block_layers_per_block=1, motion_num_attention_heads=2, motion_norm_num_groups=8,
                            motion_max_seq_length=max_frames, use_motion_mid_block=False)
    with torch.no_grad():  # diffusers zero-inits the motion output projections: randomize so motion matters
        for name, p in adapter.named_parameters():
            if "proj_out" in name:
                p.normal_(0, 0.05)
    comps["unet"] = UNetMotionModel.from_unet2d(comps["unet"], adapter)
    comps["motion_adapter"] = adapter
    return comps


def tiny_engine(look: Look, motion: MotionSpec, comps: dict[str, Any] | None = None, **kw: Any) -> AnimateDiffEngine:
    from .engines import hash_embedder

    comps = comps or tiny_motion_components(len(look.controls))
    return AnimateDiffEngine.from_components(look, motion, unet=comps["unet"], motion_adapter=comps["motion_adapter"], vae=comps["vae"],
                                             controlnets=comps["controlnets"][: len(look.controls)],
                                             embed=hash_embedder(comps["cross_dim"]), **kw)

"""Tiny random-weight SD-1.x-shaped base models built in code (tests, benchmarks, smoke runs).

Random weights paint noise: these prove the plumbing and measure overheads, never a look.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Callable

CROSS_DIM = 32


def tiny_unet_vae(seed: int = 0, cross_dim: int = CROSS_DIM):
    """UNet (2 blocks, one with cross-attention) and a 2-block VAE (scale factor 2)."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=16, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=cross_dim, norm_num_groups=8, attention_head_dim=4)
    vae = AutoencoderKL(
        block_out_channels=[16, 32], in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 2,
        up_block_types=["UpDecoderBlock2D"] * 2, latent_channels=4, norm_num_groups=8)
    return unet, vae


def sd15_unet_vae():
    """SD 1.5 shapes (860M UNet, 4-block VAE), random weights: real timing and memory, noise pictures."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    unet = UNet2DConditionModel(
        sample_size=64, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=(320, 640, 1280, 1280),
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",), up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        cross_attention_dim=768, attention_head_dim=8)
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2, block_out_channels=(128, 256, 512, 512),
                        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4, sample_size=512)
    return unet, vae


def save_base(folder: str | Path, unet: Any, vae: Any) -> Path:
    """A diffusers folder (model_index.json, unet/, vae/, scheduler/) without a text encoder."""
    from diffusers import DDPMScheduler

    folder = Path(folder)
    unet.save_pretrained(str(folder / "unet"))
    vae.save_pretrained(str(folder / "vae"))
    DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, clip_sample=False).save_pretrained(str(folder / "scheduler"))
    (folder / "model_index.json").write_text(json.dumps({
        "_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.42.1",
        "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"],
        "scheduler": ["diffusers", "DDPMScheduler"], "text_encoder": [None, None], "tokenizer": [None, None],
        "safety_checker": [None, None], "feature_extractor": [None, None]}))
    return folder


def tiny_base(folder: str | Path, seed: int = 0) -> Path:
    return save_base(folder, *tiny_unet_vae(seed))


def hash_embedder(dim: int = CROSS_DIM, length: int = 8) -> Callable[[str], Any]:
    """Deterministic stand-in prompt embeddings: a prompt's hash seeds them."""
    import torch

    def embed(text: str):
        seed = int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)
        return torch.randn(1, length, dim, generator=torch.Generator().manual_seed(seed))

    return embed

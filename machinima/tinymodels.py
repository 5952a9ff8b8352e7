"""Random-weight diffusion models built in code, shared by the spokes' tests and benchmarks
(stylize, AnimateDiff, LoRA training): tiny ones that run in milliseconds on a CPU, and SD 1.5
shapes (real cost, noise pictures) for GPU timings. Random weights prove plumbing and measure
speed, never a look; the tiny VAE is made SD-like where it matters (``sd_like_vae``) so that
what reaches a pipeline's input shows in its output. diffusers is imported inside the functions.
"""

from __future__ import annotations

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
    return unet, sd_like_vae(vae)


def sd_like_vae(vae, *, seed: int = 0):
    """Give a random VAE the two statistics of SD's trained one that decide whether a picture
    survives img2img. SD's posterior is nearly a point (tiny variance) and its ``scaling_factor``
    (0.18215) makes the scaled latents of real pictures unit-variance, like the noise added to
    them. A random VAE has posterior std ~1 against latent means of std ~0.26, so with the default
    factor the frame's latents are ~1/20 of the noise: img2img output ignores its input (a black
    frame and a photo came out 2.7 levels of 255 apart, against 44 between two seeds), and no
    test of what reaches the input (keyframe init, controls) could see anything."""
    import numpy as np
    import torch

    with torch.no_grad():
        c = vae.quant_conv.weight.shape[0] // 2  # first half: mean, second half: log-variance
        vae.quant_conv.weight[c:] = 0.0
        vae.quant_conv.bias[c:] = -12.0           # posterior std e^-6
        rng = np.random.default_rng(seed)          # a smooth random picture in [-1, 1]
        x = torch.from_numpy(rng.random((1, 3, 16, 16), dtype=np.float32))
        x = torch.nn.functional.interpolate(x, size=(64, 64), mode="bicubic", align_corners=False)
        x = (x - x.min()) / (x.max() - x.min()) * 2 - 1
        std = float(vae.encode(x).latent_dist.mean.std())
    vae.register_to_config(scaling_factor=1.0 / std)
    return vae


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

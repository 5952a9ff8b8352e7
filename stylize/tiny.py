"""Tiny random-weight diffusion models built in code (tests, benchmarks, smoke runs) and the
SD 1.5-shaped ones (same cost as the real model) for GPU timings. Random weights paint noise:
these prove the plumbing and measure speed, never the look.
"""

from __future__ import annotations

from typing import Any

from .look import Look


def tiny_components(n_controls: int = 1, *, seed: int = 0, cross_dim: int = 32) -> dict[str, Any]:
    """UNet (2 blocks), a 2-block VAE (scale factor 2) and ControlNets matching it."""
    import torch
    from diffusers import ControlNetModel

    from machinima.tinymodels import tiny_unet_vae

    unet, vae = tiny_unet_vae(seed, cross_dim)
    cns = []
    for i in range(n_controls):
        torch.manual_seed(seed + 1 + i)
        cn = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(8, 16))
        with torch.no_grad():  # from_unet zero-inits the output convs: randomize so controls matter
            for m in [*cn.controlnet_down_blocks, cn.controlnet_mid_block, cn.controlnet_cond_embedding.conv_out]:
                m.weight.normal_(0, 0.05)
        cns.append(cn)
    return {"unet": unet, "vae": vae, "controlnets": cns, "cross_dim": cross_dim}


def tiny_sdxl_components(n_controls: int = 1, *, seed: int = 0) -> dict[str, Any]:
    """A tiny SDXL-shaped UNet (text_time conditioning, pooled embeddings) + VAE + ControlNets."""
    import torch
    from diffusers import ControlNetModel, UNet2DConditionModel

    base = tiny_components(0, seed=seed)
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=16, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4), use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=8,
        transformer_layers_per_block=(1, 1), projection_class_embeddings_input_dim=80, cross_attention_dim=64, norm_num_groups=8)
    cns = [ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(8, 16)) for _ in range(n_controls)]
    return {"unet": unet, "vae": base["vae"], "controlnets": cns, "cross_dim": 64, "pooled_dim": 32}


def sd15_components(n_controls: int = 1) -> dict[str, Any]:
    """SD 1.5 shapes (860M UNet, 4-block VAE), random weights: real timing, noise pictures."""
    from diffusers import ControlNetModel

    from machinima.tinymodels import sd15_unet_vae

    unet, vae = sd15_unet_vae()
    return {"unet": unet, "vae": vae, "controlnets": [ControlNetModel.from_unet(unet) for _ in range(n_controls)], "cross_dim": 768}


def tiny_engine(look: Look, comps: dict[str, Any] | None = None, runtime: dict[str, Any] | None = None):
    """A DiffusionEngine on tiny models with hash-seeded stand-in text embeddings."""
    from .engines import DiffusionEngine, hash_embedder

    comps = comps or (tiny_sdxl_components if look.model.family == "sdxl" else tiny_components)(len(look.controls))
    return DiffusionEngine.from_components(look, unet=comps["unet"], vae=comps["vae"], controlnets=comps["controlnets"][: len(look.controls)],
                                           embed=hash_embedder(comps["cross_dim"], pooled=comps.get("pooled_dim", 0)), runtime=runtime)


def tiny_text_encoder(workdir: Any, cross_dim: int = 32) -> tuple[Any, Any]:
    """A tiny CLIP text encoder + tokenizer (letters as tokens) so the real prompt path runs."""
    import json
    from pathlib import Path

    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    d = Path(workdir)
    d.mkdir(parents=True, exist_ok=True)
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1, "!": 2}
    for i, ch in enumerate("abcdefghijklmnopqrstuvwxyz"):
        vocab[ch] = 3 + 2 * i
        vocab[ch + "</w>"] = 4 + 2 * i
    (d / "vocab.json").write_text(json.dumps(vocab))
    (d / "merges.txt").write_text("#version: 0.2\n")
    tok = CLIPTokenizer(str(d / "vocab.json"), str(d / "merges.txt"), model_max_length=16)
    te = CLIPTextModel(CLIPTextConfig(vocab_size=len(vocab) + 2, hidden_size=cross_dim, intermediate_size=37, num_attention_heads=4,
                                      num_hidden_layers=2, max_position_embeddings=16, bos_token_id=0, eos_token_id=1, pad_token_id=1))
    return te, tok


def tiny_depth_model(folder: Any, *, seed: int = 0) -> Any:
    """A tiny random Depth Anything (DINOv2 backbone of 4 layers x 32) saved as a transformers
    folder with its image processor: what ``stylize.depth.DepthModel`` loads from a local path."""
    from pathlib import Path

    import torch
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config, DPTImageProcessor

    torch.manual_seed(seed)
    backbone = Dinov2Config(hidden_size=32, num_hidden_layers=4, num_attention_heads=4, intermediate_size=37, image_size=56,
                            patch_size=14, out_features=["stage1", "stage2", "stage3", "stage4"], reshape_hidden_states=False)
    model = DepthAnythingForDepthEstimation(DepthAnythingConfig(backbone_config=backbone, reassemble_hidden_size=32,
                                                                neck_hidden_sizes=[16, 32, 64, 64], fusion_hidden_size=16, head_hidden_size=16))
    folder = Path(folder)
    model.save_pretrained(folder)
    DPTImageProcessor(size={"height": 56, "width": 56}, keep_aspect_ratio=True, ensure_multiple_of=14).save_pretrained(folder)
    return folder

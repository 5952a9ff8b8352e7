"""LoRA training figures for bench/gpu_figures.py: the plain diffusers + peft loop vs the trainer.

Both loops are bench/lora_train.py's: the plain one reads its batch's PNGs, VAE-encodes them
every step (fp16 frozen UNet and VAE, LoRA in fp32, AdamW, GradScaler); ours is
``lora.train.Trainer`` with the ``24gb`` preset (latents and prompt embeddings cached once,
fused AdamW): as the preset says, with the channels_last option on, and with cuDNN's autotuner
on (a lead for later, not the project's path). SD 1.5 shapes with random weights, 512 px, batch 4, rank 16, prompt
embeddings of 77 tokens on both sides.
"""

from __future__ import annotations

from typing import Any

GOAL_SPEEDUP = 1.5


def train(run: Any, shared: dict[str, Any]) -> None:
    import torch
    from diffusers import DDPMScheduler

    from gpu_figures import bench_module
    from lora.tiny import hash_embedder
    from lora.train import BaseModel
    from machinima.tinymodels import sd15_unet_vae, tiny_unet_vae

    put = run.fig.put
    lt = bench_module("lora_train")
    res, batch, rank, steps, n_img = (32, 2, 4, 4, 4) if run.smoke else (512, 4, 16, 14, 16)
    cuda = run.dev == "cuda"
    put("lora.settings", {"res": res, "batch": batch, "rank": rank, "steps_timed": steps - 2, "images": n_img,
                          "preset": "24gb" if cuda else "cpu", "model": "tiny random" if run.smoke else "SD 1.5 shapes, random weights"})
    images = lt.make_images(run.tmp / "lora-images", n_img, max(res, 48))
    ds = lt.make_dataset(run.tmp / "lora-ds", images)

    def base() -> tuple[Any, Any]:
        with torch.device(run.dev):
            return tiny_unet_vae() if run.smoke else sd15_unet_vae()

    def reset() -> None:
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()

    unet, vae = base()
    cross = unet.config.cross_attention_dim
    reset()
    plain = lt.plain_loop(run.tmp, images, steps=steps, res=res, batch=batch, rank=rank, device=run.dev, unet=unet, vae=vae,
                          fp16=cuda, embed=hash_embedder(cross, 77))
    plain["peak_gib"] = run.peak_gib()
    put("lora.plain", plain)
    del unet, vae
    ours: dict[str, Any] = {}
    # the trainer as its preset says; with channels_last; with cuDNN's autotuner (a lead, not the project's path)
    for name, over, tune in (("ours", {}, False), ("ours_channels_last", {"channels_last": True}, False),
                             ("ours_cudnn_benchmark", {}, True)):
        if tune and not cuda:
            continue
        unet, vae = base()
        bm = BaseModel(run.tmp, unet, vae, DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012), hash="random")
        reset()
        torch.backends.cudnn.benchmark = tune
        try:
            ours[name] = put(f"lora.{name}", lt.ours(bm, ds, run.tmp / f"lora-{name}", steps=steps, res=res, batch=batch, rank=rank,
                                                      preset="24gb" if cuda else "cpu", embed=hash_embedder(cross, 77), **over))
        finally:
            torch.backends.cudnn.benchmark = False
        del unet, vae, bm
    speed = round(ours["ours"]["it_per_s"] / plain["it_per_s"], 2)
    put("lora.speedup", speed)
    put("lora.goals", {"speedup_vs_plain": {"goal": GOAL_SPEEDUP, "got": speed, "met": speed >= GOAL_SPEEDUP}})

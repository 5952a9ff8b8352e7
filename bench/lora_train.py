"""Benchmark: machinima's LoRA trainer vs a plain diffusers + peft training loop, same settings.

    .venv/bin/python bench/lora_train.py [--quick] [--steps N] [--res PX] [--batch B] [--rank R]

CPU section (always): the tiny random-weight SD-shaped base (lora.tiny), 8 images, CPU preset.
The baseline is the loop of diffusers' DreamBooth-LoRA example reduced to its core: peft LoRA on
the same attention projections, AdamW, for each step read the batch's PNGs, resize, VAE-encode
(latent_dist.sample), add noise, UNet, MSE, backward, step. Ours: ``lora.train.Trainer`` (buckets,
cached latents and prompt embeddings, checkpoints off, samples off). Each side runs in its own
subprocess so peak RSS is its own. Figures: it/s, peak RSS (MiB), our data-loading share of step
time (batch assembly / step wall time), speedup.

GPU section (only where CUDA is available): SD 1.5-shaped random weights at 512 px, rank 16,
batch 4, fp16 frozen weights: plain loop vs ours with the 24gb and 8gb presets; it/s and
``torch.cuda.max_memory_allocated``.

Prints ONE JSON object on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def make_images(folder: Path, n: int, size: int) -> list[Path]:
    import cv2

    from machinima.imageseq import write_image

    out = []
    for i in range(n):
        rng = np.random.default_rng(i)
        img = cv2.resize(rng.random((size // 4, size // 4, 3)).astype(np.float32), (size, size), interpolation=cv2.INTER_NEAREST)
        out.append(write_image(folder / f"{i:03d}.png", (img * 200 + 25).astype(np.uint8)))
    return out


def make_dataset(root: Path, images: list[Path]) -> Path:
    from lora.dataset import caption_dataset, open_dataset
    from machinima.imageseq import read_image

    ds = open_dataset(root, create=True, trigger="ohwx")
    for p in images:
        ds.add(read_image(p), rights=["bench"])
    caption_dataset(ds, template="photo of {trigger}")
    ds.close()
    return root


def plain_loop(base_dir: Path, images: list[Path], *, steps: int, res: int, batch: int, rank: int, device: str = "cpu",
               unet=None, vae=None, fp16: bool = False, embed=None) -> dict:
    """The reference loop (what a user writes from the diffusers docs). ``embed``: prompt ->
    embeddings (default: 8 hash-seeded tokens; give 77 to match a real CLIP prompt)."""
    import torch
    import torch.nn.functional as F
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from peft import LoraConfig

    from lora.tiny import hash_embedder
    from machinima.imageseq import read_image

    if unet is None:
        unet = UNet2DConditionModel.from_pretrained(str(base_dir), subfolder="unet")
        vae = AutoencoderKL.from_pretrained(str(base_dir), subfolder="vae")
    sched = DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    wdt = torch.float16 if fp16 else torch.float32
    unet.requires_grad_(False)
    vae.requires_grad_(False)
    unet.to(device, wdt)
    vae.to(device, wdt)
    torch.manual_seed(0)
    unet.add_adapter(LoraConfig(r=rank, lora_alpha=rank, init_lora_weights="gaussian", target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    params = [p for p in unet.parameters() if p.requires_grad]
    for p in params:
        p.data = p.data.float()
    opt = torch.optim.AdamW(params, lr=1e-4)
    embed = embed or hash_embedder(unet.config.cross_attention_dim)
    scaler = torch.amp.GradScaler("cuda") if fp16 else None
    unet.train()
    t_start = None
    for step in range(steps):
        if step == 2:
            if device == "cuda":
                torch.cuda.synchronize()
            t_start = time.perf_counter()
        idx = [(step * batch + k) % len(images) for k in range(batch)]
        import cv2

        px = np.stack([cv2.resize(read_image(images[i]), (res, res), interpolation=cv2.INTER_AREA) for i in idx])
        x = torch.from_numpy(px).permute(0, 3, 1, 2).float().div(127.5).sub(1).to(device, wdt)
        with torch.no_grad():
            lat = vae.encode(x).latent_dist.sample() * vae.config.scaling_factor
        enc = torch.cat([embed("photo of ohwx") for _ in idx]).to(device, wdt)
        noise = torch.randn_like(lat)
        t = torch.randint(0, 1000, (lat.shape[0],), device=device)
        with torch.autocast(device, dtype=torch.float16, enabled=fp16):
            pred = unet(sched.add_noise(lat, noise, t), t, enc).sample
        loss = F.mse_loss(pred.float(), noise.float())
        if scaler:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            opt.step()
        opt.zero_grad(set_to_none=True)
    if device == "cuda":
        torch.cuda.synchronize()
    dt = time.perf_counter() - t_start
    return {"it_per_s": round((steps - 2) / dt, 3)}


def ours(base, dataset: Path, work: Path, *, steps: int, res: int, batch: int, rank: int, preset: str = "cpu", embed=None,
         **overrides) -> dict:
    """``overrides``: TrainConfig fields over the preset (e.g. ``channels_last=True``)."""
    from lora.tiny import hash_embedder
    from lora.train import TrainConfig, Trainer

    cfg = TrainConfig.from_preset(preset, rank=rank, resolution=res, bucket_step=8 if res < 64 else 64, steps=steps, batch_size=batch,
                                  lr=1e-4, eval_draws=0, save_every=0, sample_prompts=(), trigger="", **overrides)
    tr = Trainer(dataset, base, work / "out.safetensors", cfg, embed=embed or hash_embedder(), rights_override="benchmark", progress=False)
    tr.check_inputs()
    tr.load_models()
    tr.prepare_data()
    tr.setup_training(fresh=True)
    import torch

    data_s = step_s = 0.0
    for i in range(steps):
        if tr.device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        _, ds = tr.train_step()
        if tr.device.type == "cuda":
            torch.cuda.synchronize()
        if i >= 2:
            step_s += time.perf_counter() - t0
            data_s += ds
    out = {"it_per_s": round((steps - 2) / step_s, 3), "data_share": round(data_s / step_s, 4)}
    if tr.device.type == "cuda":
        out["peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return out


def _child(args) -> None:
    import torch

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "1")))
    tmp = Path(args.tmp)
    images = sorted((tmp / "images").glob("*.png"))
    t0 = time.perf_counter()
    if args.child == "plain":
        r = plain_loop(tmp / "base", images, steps=args.steps, res=args.res, batch=args.batch, rank=args.rank)
    else:
        r = ours(tmp / "base", tmp / "ds", tmp / "work", steps=args.steps, res=args.res, batch=args.batch, rank=args.rank)
    r["wall_s"] = round(time.perf_counter() - t0, 2)
    r["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(r))


def gpu_section(steps: int) -> dict:
    import torch

    from lora.tiny import hash_embedder
    from machinima.tinymodels import sd15_unet_vae
    from lora.train import BaseModel

    out: dict = {"device": torch.cuda.get_device_name(0), "res": 512, "rank": 16, "batch": 4}
    with tempfile.TemporaryDirectory() as td:
        td = Path(td)
        images = make_images(td / "images", 16, 512)
        ds = make_dataset(td / "ds", images)
        unet, vae = sd15_unet_vae()
        torch.cuda.reset_peak_memory_stats()
        out["plain"] = plain_loop(td, images, steps=steps, res=512, batch=4, rank=16, device="cuda", unet=unet, vae=vae, fp16=True)
        out["plain"]["peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        del unet, vae
        for preset in ("24gb", "8gb"):
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            unet, vae = sd15_unet_vae()
            from diffusers import DDPMScheduler

            base = BaseModel(td, unet, vae, DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012), hash="random")
            out[f"ours_{preset}"] = ours(base, ds, td / f"w{preset}", steps=steps, res=512, batch=4 if preset == "24gb" else 1, rank=16,
                                         preset=preset, embed=hash_embedder(768, 77))
            del unet, vae, base
        out["speedup_24gb"] = round(out["ours_24gb"]["it_per_s"] / out["plain"]["it_per_s"], 2)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--res", type=int, default=32)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--rank", type=int, default=4)
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--child", default=None)
    ap.add_argument("--tmp", default=None)
    args = ap.parse_args()
    if args.steps is None:
        args.steps = 12 if args.quick else 60
    if args.child:
        _child(args)
        return
    from lora.tiny import tiny_base

    result: dict = {"bench": "lora_train", "cpu": {"model": "tiny random SD-shaped (lora.tiny)", "res": args.res, "batch": args.batch,
                                                   "rank": args.rank, "steps": args.steps, "images": args.images,
                                                   "threads": int(os.environ.get("BENCH_THREADS", "1"))}}
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        tiny_base(tmp / "base")
        images = make_images(tmp / "images", args.images, max(args.res, 48))
        make_dataset(tmp / "ds", images)
        for side in ("plain", "ours"):
            cmd = [sys.executable, __file__, "--child", side, "--tmp", str(tmp), "--steps", str(args.steps), "--res", str(args.res),
                   "--batch", str(args.batch), "--rank", str(args.rank)]
            p = subprocess.run(cmd, capture_output=True, text=True)
            if p.returncode:
                raise SystemExit(f"{side} failed:\n{p.stderr[-3000:]}")
            result["cpu"][side] = json.loads(p.stdout.strip().splitlines()[-1])
    c = result["cpu"]
    c["speedup"] = round(c["ours"]["it_per_s"] / c["plain"]["it_per_s"], 2)
    c["data_share_ours"] = c["ours"]["data_share"]
    try:
        import torch

        cuda = torch.cuda.is_available()
    except Exception:  # noqa: BLE001
        cuda = False
    result["gpu"] = gpu_section(20 if args.quick else 40) if cuda else "skipped: no CUDA on this machine"
    print(json.dumps(result))


if __name__ == "__main__":
    main()

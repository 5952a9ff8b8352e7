"""LoRA training on a local Stable Diffusion 1.x base: one readable pipeline with numbered steps.

``train(dataset, base, out, config)``:

1. check inputs: output path, dataset (every image readable and captioned), batch vs dataset
   size, optional prior-preservation set, rights for training (``machinima.rights``);
2. load the base (a diffusers folder or a single-file checkpoint; never a download);
3. aspect-ratio buckets (kohya style: area about ``resolution``², sides multiples of
   ``bucket_step``), images resized to cover their bucket and centre-cropped;
4. caches: VAE latents (distribution mean) and prompt embeddings computed once;
5. LoRA adapters (peft) on the UNet attention projections (and the text encoder if asked),
   AdamW, LR schedule; resume from the newest checkpoint in the work folder if its settings match;
6. the loop: deterministic data order (a permutation per epoch from the seed), noise and
   timesteps from a generator seeded by (seed, step), noise offset, prior loss; rich progress bar
   with it/s and loss; checkpoints every N steps and on Ctrl-C; sample images with fixed seeds;
7. outputs: kohya-layout ``.safetensors`` (A1111 / ComfyUI / diffusers read it) with metadata,
   the diffusers layout beside it, the loss curve PNG and ``params.json``.

Exact resume: a checkpoint holds the LoRA weights, optimizer and LR scheduler state, the step,
the loss history and the RNG states; data order and noise are functions of (seed, step), so an
interrupted run continued from its checkpoint ends with the same weights as one that ran through.

The work folder (default ``<out>.work/``)::

    checkpoints/step-000100/{adapter.safetensors, state.pt, state.json}
    samples/step-000100.png      loss.png      params.json

The pieces live in modules of one job each: ``train_config`` (settings, result), ``base_model``,
``buckets``, ``checkpoints``, ``train_outputs``; every name stays importable from here.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import threading
import time
from pathlib import Path
from typing import Any, Callable

from machinima.fsutil import atomic_write_json

from .base_model import BaseModel, base_hash, check_base, load_base
from .buckets import Sample, assign_bucket, epoch_batches, fit_to_bucket, make_buckets
from .checkpoints import KEEP_CHECKPOINTS, Checkpoints
from .dataset import TrainEntry, dataset_hash, open_dataset, training_entries
from .errors import TrainConfigError
from .train_config import TE_TARGETS, UNET_TARGETS, TrainConfig, TrainResult
from .train_outputs import TrainOutputs

__all__ = ["KEEP_CHECKPOINTS", "TE_TARGETS", "UNET_TARGETS", "BaseModel", "Sample", "TrainConfig", "TrainResult", "Trainer",
           "assign_bucket", "base_hash", "check_base", "epoch_batches", "fit_to_bucket", "load_base", "make_buckets", "train"]


# --- the trainer ---------------------------------------------------------------------------------

class _Stop:
    """SIGINT sets a flag; the loop finishes the step, checkpoints and returns."""

    def __init__(self) -> None:
        self.requested = False
        self._old: Any = None

    def __enter__(self) -> "_Stop":
        if threading.current_thread() is threading.main_thread():
            self._old = signal.getsignal(signal.SIGINT)

            def handler(signum: int, frame: Any) -> None:
                if self.requested:  # a second Ctrl-C: stop now
                    raise KeyboardInterrupt
                self.requested = True

            signal.signal(signal.SIGINT, handler)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)


def _device(name: str):
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise TrainConfigError("this preset needs a CUDA GPU and none is available", hint="use --preset cpu")
    return torch.device(name)


class Trainer(Checkpoints, TrainOutputs):
    """Holds the models and state of one training run; ``train()`` below is the usual entry."""

    def __init__(self, dataset: str | Path, base: str | Path | BaseModel, out: str | Path, config: TrainConfig, *,
                 embed: Callable[[str], Any] | None = None, prior: str | Path | None = None, work: str | Path | None = None,
                 production: str | None = None, rights_override: str | None = None, rights_store: Any = None,
                 base_config: str | Path | None = None, progress: bool = True,
                 on_step: Callable[["Trainer", int, float], None] | None = None) -> None:
        self.dataset_path = Path(dataset)
        self.base_arg = base
        self.base_config = base_config
        self.out = Path(out)
        self.cfg = config
        self.embed = embed
        self.prior_path = Path(prior) if prior else None
        self.work = Path(work) if work else self.out.with_name(self.out.stem + ".work")
        self.production = production
        self.rights_override = rights_override
        self.rights_store = rights_store
        self.show_progress = progress
        self.on_step = on_step
        self.stop = _Stop()

    # 1. check inputs (reads only: nothing is written before every check has passed)
    def check_inputs(self) -> None:
        from machinima import rights

        self.cfg.check()
        if self.out.suffix != ".safetensors":
            raise TrainConfigError(f"output {self.out} must end in .safetensors")
        ds = open_dataset(self.dataset_path)
        try:
            self.entries = training_entries(ds)
            self.trigger = self.cfg.trigger or str(ds.info.get("trigger") or "")
            self.prior_entries: list[TrainEntry] = []
            if self.prior_path:
                pds = open_dataset(self.prior_path)
                try:
                    self.prior_entries = training_entries(pds)
                finally:
                    pds.close()
            if len(self.entries) < self.cfg.batch_size:
                raise TrainConfigError(f"the dataset has {len(self.entries)} usable image(s), fewer than the batch size {self.cfg.batch_size}",
                                       hint="add images or lower --batch")
            from machinima.config import load_config

            production = self.production or load_config().production
            faces = rights.faces_in_collection(self.dataset_path) + (rights.faces_in_collection(self.prior_path) if self.prior_path else [])
            self.clearance = rights.require_cleared(production, "training", faces, override=self.rights_override,  # every face, not item labels
                                                    store=self.rights_store, what="the dataset")
            self.dataset_hash = dataset_hash(self.entries)
        finally:
            ds.close()
        if isinstance(self.base_arg, BaseModel):
            self.base_dir = self.base_arg.path
        else:
            self.base_dir = check_base(self.base_arg)

    # 2. load the base model
    def load_models(self) -> None:
        import torch

        base = self.base_arg if isinstance(self.base_arg, BaseModel) else load_base(self.base_dir, config=self.base_config,
                                                                                      need_text_encoder=self.embed is None)
        self.base = base
        if self.cfg.train_text_encoder and base.text_encoder is None:
            raise TrainConfigError("--train-text-encoder needs a base with a text encoder")
        self.device = _device(self.cfg.device)
        mp = self.cfg.mixed_precision if self.device.type == "cuda" else "no"
        self.weight_dtype = {"no": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[mp]
        self.mp = mp
        for m in (base.unet, base.text_encoder):
            if m is not None:
                m.requires_grad_(False)
                m.to(self.device) if self.weight_dtype == torch.float32 else m.to(self.device, self.weight_dtype)
        base.vae.requires_grad_(False)
        base.vae.to(self.device)  # the VAE encodes the cache once, in fp32 (SD's VAE overflows in fp16)

    # 3 + 4. buckets and caches
    def prepare_data(self) -> None:
        import torch

        from machinima.imageseq import read_image

        cfg = self.cfg
        buckets = make_buckets(cfg.resolution, cfg.bucket_step) if cfg.buckets else [(cfg.resolution, cfg.resolution)]
        scale = float(getattr(self.base.vae.config, "scaling_factor", 0.18215))

        def build(entries: list[TrainEntry]) -> list[Sample]:
            out = []
            for e in entries:
                img = read_image(e.path)
                b = assign_bucket(img.shape[1], img.shape[0], buckets)
                px = torch.from_numpy(fit_to_bucket(img, b)).permute(2, 0, 1).float() / 127.5 - 1.0
                s = Sample(e.item.file, b, e.caption.replace("{trigger}", self.trigger))
                if cfg.cache_latents:
                    with torch.no_grad():
                        s.latent = (self.base.vae.encode(px[None].to(self.device)).latent_dist.mean[0] * scale).float().cpu()
                else:
                    s.pixels = px
                out.append(s)
            return out

        self.samples = build(self.entries)
        self.prior_samples = build(self.prior_entries)
        self.latent_scale = scale
        self.embeds: dict[str, Any] = {}
        if not cfg.train_text_encoder:
            for s in self.samples + self.prior_samples:
                if s.caption not in self.embeds:
                    self.embeds[s.caption] = self._encode([s.caption]).detach()
        if cfg.offload_frozen and self.device.type == "cuda":
            if cfg.cache_latents:
                self.base.vae.to("cpu")
            if self.base.text_encoder is not None and not cfg.train_text_encoder:
                self.base.text_encoder.to("cpu")
            torch.cuda.empty_cache()
        self.batches_per_epoch = len(epoch_batches(self.samples, cfg.batch_size, cfg.seed, 0))

    def _encode(self, captions: list[str]):
        import torch

        if self.embed is not None:
            return torch.cat([self.embed(c) for c in captions]).to(self.device, self.weight_dtype)
        te, tok = self.base.text_encoder, self.base.tokenizer
        ids = tok(captions, padding="max_length", max_length=tok.model_max_length, truncation=True, return_tensors="pt").input_ids
        te.to(self.device)
        return te(ids.to(self.device))[0]

    # 5. adapters, optimizer, schedule, resume
    def setup_training(self, fresh: bool = False) -> None:
        import torch
        from diffusers.optimization import get_scheduler
        from peft import LoraConfig

        cfg = self.cfg
        alpha = float(cfg.alpha if cfg.alpha is not None else cfg.rank)
        self.alpha = alpha
        torch.manual_seed(cfg.seed)
        unet = self.base.unet
        unet.add_adapter(LoraConfig(r=cfg.rank, lora_alpha=alpha, init_lora_weights="gaussian", target_modules=list(cfg.targets)))
        params = [{"params": [], "lr": cfg.lr}]
        self.trainable: dict[str, Any] = {}
        for n, p in unet.named_parameters():
            if p.requires_grad:
                p.data = p.data.float()
                params[0]["params"].append(p)
                self.trainable[f"unet.{n}"] = p
        if cfg.train_text_encoder:
            te = self.base.text_encoder
            # peft's own injection: transformers' add_adapter asks for a newer peft than diffusers does
            from peft import inject_adapter_in_model

            inject_adapter_in_model(LoraConfig(r=cfg.rank, lora_alpha=alpha, init_lora_weights="gaussian", target_modules=list(TE_TARGETS)), te)
            params.append({"params": [], "lr": cfg.text_encoder_lr})
            for n, p in te.named_parameters():
                if p.requires_grad:
                    p.data = p.data.float()
                    params[1]["params"].append(p)
                    self.trainable[f"text_encoder.{n}"] = p
            te.train()
        if cfg.channels_last and self.device.type == "cuda":
            unet.to(memory_format=torch.channels_last)  # 4-D conv weights only; activations follow them
        if cfg.gradient_checkpointing:
            unet.enable_gradient_checkpointing()
            if cfg.train_text_encoder:
                self.base.text_encoder.gradient_checkpointing_enable()
        unet.train()
        self.optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=1e-2, fused=self.device.type == "cuda")
        self.lr_sched = get_scheduler(cfg.lr_scheduler, self.optimizer, num_warmup_steps=cfg.warmup_steps, num_training_steps=cfg.steps)
        self.scaler = torch.amp.GradScaler("cuda") if self.mp == "fp16" else None
        self.step = 0
        self.losses: list[float] = []
        self.resumed_from = None
        self.settings_key = {"config": cfg.result_key(), "dataset_hash": self.dataset_hash, "base_hash": self.base.hash,
                             "prior": len(self.prior_entries)}
        if fresh and (self.work / "checkpoints").exists():
            shutil.rmtree(self.work / "checkpoints")
        ck = self.latest_checkpoint()
        if ck is not None:
            self.load_checkpoint(ck)

    # checkpoints: ``Checkpoints`` (lora/checkpoints.py)

    # 6. the loop
    def _batch(self, samples: list[Sample], idx: list[int]):
        import torch

        if self.cfg.cache_latents:
            lat = torch.stack([samples[i].latent for i in idx]).to(self.device)
        else:
            px = torch.stack([samples[i].pixels for i in idx]).to(self.device)
            with torch.no_grad():
                self.base.vae.to(self.device)
                lat = self.base.vae.encode(px).latent_dist.mean.float() * self.latent_scale
        caps = [samples[i].caption for i in idx]
        return lat, caps

    def _loss(self, lat, caps: list[str], gen):
        import torch
        import torch.nn.functional as F

        sched = self.base.scheduler
        noise = torch.randn(lat.shape, generator=gen).to(self.device)
        if self.cfg.noise_offset:
            noise = noise + self.cfg.noise_offset * torch.randn((lat.shape[0], lat.shape[1], 1, 1), generator=gen).to(self.device)
        t = torch.randint(0, sched.config.num_train_timesteps, (lat.shape[0],), generator=gen).to(self.device)
        noisy = sched.add_noise(lat, noise, t)
        if sched.config.prediction_type == "v_prediction":
            target = sched.get_velocity(lat, noise, t)
        else:
            target = noise
        if self.cfg.train_text_encoder:
            enc = self._encode(caps)
        else:
            enc = torch.cat([self.embeds[c] for c in caps])
        ctx = torch.autocast(self.device.type, dtype=self.weight_dtype) if self.mp != "no" else contextlib.nullcontext()
        with ctx:
            pred = self.base.unet(noisy.to(self.weight_dtype), t, enc.to(self.weight_dtype)).sample
        return F.mse_loss(pred.float(), target.float())

    def train_step(self) -> tuple[float, float]:
        """One optimizer step; returns (loss, seconds spent assembling the batch)."""
        import torch

        cfg = self.cfg
        epoch, pos = divmod(self.step, self.batches_per_epoch)
        idx = epoch_batches(self.samples, cfg.batch_size, cfg.seed, epoch)[pos]
        gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + self.step)
        t0 = time.perf_counter()
        lat, caps = self._batch(self.samples, idx)
        data_s = time.perf_counter() - t0
        loss = self._loss(lat, caps, gen)
        if self.prior_samples:
            pidx = [(self.step * cfg.batch_size + k) % len(self.prior_samples) for k in range(cfg.batch_size)]
            # the prior batch must share one bucket: take the first one's bucket mates
            b0 = self.prior_samples[pidx[0]].bucket
            pidx = [i for i in pidx if self.prior_samples[i].bucket == b0]
            t1 = time.perf_counter()
            plat, pcaps = self._batch(self.prior_samples, pidx)
            data_s += time.perf_counter() - t1
            loss = loss + cfg.prior_weight * self._loss(plat, pcaps, gen)
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        if self.scaler:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
            self.optimizer.step()
        self.lr_sched.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        return float(loss.detach()), data_s

    def evaluate(self) -> float | None:
        """Mean loss over every image with fixed (noise, timestep) draws: comparable across steps."""
        import torch

        if not self.cfg.eval_draws:
            return None
        gen = torch.Generator().manual_seed(12345)
        total, n = 0.0, 0
        self.base.unet.eval()
        try:
            with torch.no_grad():
                for _ in range(self.cfg.eval_draws):
                    for i in range(len(self.samples)):
                        lat, caps = self._batch(self.samples, [i])
                        total += float(self._loss(lat, caps, gen))
                        n += 1
        finally:
            self.base.unet.train()
        return total / max(1, n)

    # 7. outputs: ``TrainOutputs`` (lora/train_outputs.py)
    def run(self, *, fresh: bool = False) -> TrainResult:
        import torch
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        # 1-5
        self.check_inputs()
        self.load_models()
        self.prepare_data()
        self.setup_training(fresh=fresh)
        self.work.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.work / "params.json", {"schema": "machinima.lora-train", "version": 1, "dataset": str(self.dataset_path),
                                                      "base": str(self.base_dir), "out": str(self.out), "config": self.cfg.to_doc(),
                                                      "settings": self.settings_key, "rights": self.clearance.to_provenance(),
                                                      "device": str(self.device)})
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        cfg = self.cfg
        res = TrainResult("done", self.step, cfg.steps, None, self.work, resumed_from=self.resumed_from)
        if self.step == 0:
            self.eval_start = self.evaluate()
        data_s = step_s = 0.0
        n_timed = 0
        start_step = self.step
        # 6
        with self.stop, Progress(TextColumn("[bold]lora[/]"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
                                 TextColumn("loss {task.fields[loss]}"), TimeRemainingColumn(), disable=not self.show_progress) as bar:
            task = bar.add_task("train", total=cfg.steps, completed=self.step, rate="", loss="-")
            while self.step < cfg.steps:
                t0 = time.perf_counter()
                loss, ds = self.train_step()
                dt = time.perf_counter() - t0
                if self.step - start_step > 1:  # the first step warms up kernels and allocators
                    data_s += ds
                    step_s += dt
                    n_timed += 1
                self.losses.append(loss)
                bar.update(task, completed=self.step, loss=f"{loss:.4f}", rate=f"{n_timed / step_s:.2f} it/s" if step_s else "")
                if self.on_step:
                    self.on_step(self, self.step, loss)
                if cfg.sample_every and self.step % cfg.sample_every == 0 and self.step < cfg.steps:
                    p = self.sample_images()
                    if p:
                        res.samples.append(p)
                if self.stop.requested:
                    self.save_checkpoint()
                    self.write_loss_curve()
                    res.status = "interrupted"
                    break
                if cfg.save_every and self.step % cfg.save_every == 0 and self.step < cfg.steps:
                    self.save_checkpoint()
                    self.write_loss_curve()
        res.step = self.step
        res.losses = list(self.losses)
        res.it_per_s = n_timed / step_s if step_s else 0.0
        res.data_share = data_s / step_s if step_s else 0.0
        if self.device.type == "cuda":
            res.peak_memory_bytes = int(torch.cuda.max_memory_allocated())
        if res.status == "interrupted":
            return res
        # 7
        self.save_checkpoint()
        self.write_loss_curve()
        res.eval_loss_start = getattr(self, "eval_start", None)
        res.eval_loss_end = self.evaluate()
        p = self.sample_images()
        if p:
            res.samples.append(p)
        res.out = self.save_outputs()
        return res


def train(dataset: str | Path, base: str | Path | BaseModel, out: str | Path, config: TrainConfig | None = None, *,
          fresh: bool = False, **kw: Any) -> TrainResult:
    """Train a LoRA; see the module docstring. ``kw`` goes to ``Trainer`` (embed, prior, work,
    production, rights_override, rights_store, base_config, progress, on_step)."""
    return Trainer(dataset, base, out, config or TrainConfig(), **kw).run(fresh=fresh)

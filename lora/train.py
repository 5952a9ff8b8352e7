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
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import shutil
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from machinima.fsutil import atomic_write_json

from .dataset import TrainEntry, dataset_hash, open_dataset, training_entries
from .errors import BaseModelError, TrainConfigError
from .kohya import kohya_metadata, peft_to_kohya
from .presets import PRESETS

UNET_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")
TE_TARGETS = ("q_proj", "k_proj", "v_proj", "out_proj")
KEEP_CHECKPOINTS = 2


@dataclass
class TrainConfig:
    rank: int = 16
    alpha: float | None = None            # None = rank (scale 1.0)
    resolution: int = 512
    bucket_step: int = 64
    buckets: bool = True
    batch_size: int = 1
    steps: int = 1000
    lr: float = 1e-4
    text_encoder_lr: float = 5e-5
    lr_scheduler: str = "constant"        # diffusers.optimization names: constant, cosine, linear, constant_with_warmup...
    warmup_steps: int = 0
    seed: int = 0
    noise_offset: float = 0.0
    prior_weight: float = 1.0
    train_text_encoder: bool = False
    targets: tuple[str, ...] = UNET_TARGETS
    max_grad_norm: float = 1.0
    cache_latents: bool = True
    mixed_precision: str = "no"           # no | fp16 | bf16 (GPU only; CPU trains in fp32)
    gradient_checkpointing: bool = False
    offload_frozen: bool = False          # move VAE / text encoder to the CPU once the caches are built
    channels_last: bool = False           # GPU: the UNet in NHWC layout (slower on an H200: docs/performance.md)
    device: str = "auto"
    save_every: int = 0                   # checkpoint every N steps (0: only on Ctrl-C and at the end)
    sample_every: int = 0                 # sample images every N steps (0: only at the end, if prompts)
    sample_prompts: tuple[str, ...] = ()  # "{trigger}" is replaced; default: the trigger alone
    sample_seeds: tuple[int, ...] = (0, 1)
    sample_steps: int = 20
    sample_guidance: float = 7.5
    eval_draws: int = 2                   # held loss before/after: every image x N fixed (noise, t) draws (0: off)
    save_precision: str = "fp32"          # fp32 | fp16 | bf16 for the output files
    trigger: str = ""

    # what changes the trained weights (resume refuses a checkpoint made with other values)
    _RESULT_FIELDS = ("rank", "alpha", "resolution", "bucket_step", "buckets", "batch_size", "steps", "lr", "text_encoder_lr",
                      "lr_scheduler", "warmup_steps", "seed", "noise_offset", "prior_weight", "train_text_encoder", "targets",
                      "max_grad_norm", "mixed_precision")

    @classmethod
    def from_preset(cls, preset: str, **overrides: Any) -> "TrainConfig":
        if preset not in PRESETS:
            raise TrainConfigError(f"unknown memory preset {preset!r}", hint=f"use one of {', '.join(PRESETS)}")
        return cls(**{**PRESETS[preset], **{k: v for k, v in overrides.items() if v is not None}})

    def to_doc(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    def result_key(self) -> dict[str, Any]:
        d = self.to_doc()
        return {k: d[k] for k in self._RESULT_FIELDS}

    def check(self) -> None:
        if self.rank < 1:
            raise TrainConfigError(f"rank must be >= 1 (got {self.rank})")
        if self.batch_size < 1 or self.steps < 1:
            raise TrainConfigError("batch size and steps must be >= 1")
        if self.resolution % self.bucket_step:
            raise TrainConfigError(f"resolution {self.resolution} is not a multiple of the bucket step {self.bucket_step}")
        if self.mixed_precision not in ("no", "fp16", "bf16"):
            raise TrainConfigError(f"mixed precision {self.mixed_precision!r}: use no, fp16 or bf16")
        if self.save_precision not in ("fp32", "fp16", "bf16"):
            raise TrainConfigError(f"save precision {self.save_precision!r}: use fp32, fp16 or bf16")


@dataclass
class TrainResult:
    status: str                  # done | interrupted
    step: int
    steps: int
    out: Path | None
    work: Path
    losses: list[float] = field(default_factory=list)
    it_per_s: float = 0.0
    data_share: float = 0.0      # share of step wall time spent assembling batches
    peak_memory_bytes: int = 0
    resumed_from: int | None = None
    eval_loss_start: float | None = None  # held loss (fixed noise and timesteps) with the LoRA at step 0
    eval_loss_end: float | None = None    # ... and at the end
    samples: list[Path] = field(default_factory=list)


# --- base model --------------------------------------------------------------------------------

@dataclass
class BaseModel:
    path: Path
    unet: Any
    vae: Any
    scheduler: Any
    text_encoder: Any = None
    tokenizer: Any = None
    hash: str = ""


_BASE_HINT = ("put a diffusers folder there (model_index.json, unet/, vae/, scheduler/, text_encoder/, tokenizer/) "
              "or a single .safetensors/.ckpt checkpoint (with --config DIR, its diffusers config folder); nothing is downloaded")


def base_hash(path: Path) -> str:
    """SHA-256 of the weights a LoRA depends on: the UNet (and text encoder) files of a folder, or
    the single checkpoint file. (Cached beside the weights' sizes and times in ``.machinima-hash``
    files is not done: the hash is recomputed each run, a few seconds for SD 1.5.)"""
    h = hashlib.sha256()
    if path.is_file():
        files = [path]
    else:
        files = sorted(p for sub in ("unet", "text_encoder") if (path / sub).is_dir() for p in (path / sub).iterdir()
                       if p.suffix in (".safetensors", ".bin", ".json"))
    for p in files:
        h.update(p.name.encode())
        with open(p, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 22), b""):
                h.update(chunk)
    return h.hexdigest()


def check_base(path: str | Path) -> Path:
    path = Path(path).expanduser()
    if not path.exists():
        raise BaseModelError(f"base model not found at {path}", hint=_BASE_HINT)
    if path.is_dir():
        if not (path / "model_index.json").exists():
            raise BaseModelError(f"{path} is not a diffusers model folder (no model_index.json)", hint=_BASE_HINT)
        for sub in ("unet", "vae"):
            if not (path / sub / "config.json").exists():
                raise BaseModelError(f"{path} has no {sub}/ model (no {sub}/config.json)", hint=_BASE_HINT)
    elif path.suffix.lower() not in (".safetensors", ".ckpt"):
        raise BaseModelError(f"{path} is not a model checkpoint (expected .safetensors or .ckpt)", hint=_BASE_HINT)
    return path


def load_base(path: str | Path, *, config: str | Path | None = None, need_text_encoder: bool = True) -> BaseModel:
    """Load UNet, VAE, noise scheduler and (when present) text encoder + tokenizer from local files."""
    path = check_base(path)
    try:
        from diffusers import AutoencoderKL, DDPMScheduler, StableDiffusionPipeline, UNet2DConditionModel

        if path.is_file():
            kw: dict[str, Any] = {"local_files_only": True, "safety_checker": None, "requires_safety_checker": False}
            if config:
                kw["config"] = str(config)
            pipe = StableDiffusionPipeline.from_single_file(str(path), **kw)
            base = BaseModel(path, pipe.unet, pipe.vae, DDPMScheduler.from_config(pipe.scheduler.config), pipe.text_encoder, pipe.tokenizer)
        else:
            index = json.loads((path / "model_index.json").read_text())
            unet = UNet2DConditionModel.from_pretrained(str(path), subfolder="unet", local_files_only=True)
            vae = AutoencoderKL.from_pretrained(str(path), subfolder="vae", local_files_only=True)
            sched = (DDPMScheduler.from_pretrained(str(path), subfolder="scheduler", local_files_only=True)
                     if (path / "scheduler").is_dir() else DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012))
            te = tok = None
            if (index.get("text_encoder") or [None])[0] and (path / "text_encoder").is_dir():
                from transformers import CLIPTextModel, CLIPTokenizer

                te = CLIPTextModel.from_pretrained(str(path), subfolder="text_encoder", local_files_only=True)
                tok = CLIPTokenizer.from_pretrained(str(path), subfolder="tokenizer", local_files_only=True)
            base = BaseModel(path, unet, vae, sched, te, tok)
    except BaseModelError:
        raise
    except Exception as exc:  # noqa: BLE001 - any loader failure means the files are not a usable model
        msg = str(exc).splitlines()[0][:240] if str(exc) else type(exc).__name__
        extra = " (a single-file checkpoint needs --config DIR offline)" if path.is_file() and not config else ""
        raise BaseModelError(f"cannot load the base model at {path}: {msg}{extra}", hint=_BASE_HINT) from None
    if need_text_encoder and base.text_encoder is None:
        raise BaseModelError(f"{path} has no text encoder", hint="use a full diffusers folder (text_encoder/ and tokenizer/) or a checkpoint that contains one")
    base.hash = base_hash(path)
    return base


# --- buckets -----------------------------------------------------------------------------------

def make_buckets(resolution: int, step: int, *, max_ratio: float = 2.0) -> list[tuple[int, int]]:
    """(width, height) pairs, multiples of ``step``, area <= resolution², aspect within max_ratio."""
    area = resolution * resolution
    out = {(resolution, resolution)}
    w = step
    while w <= resolution * max_ratio:
        h = (area // w) // step * step
        if h >= step and max(w / h, h / w) <= max_ratio:
            out.add((w, h))
        w += step
    return sorted(out)


def assign_bucket(width: int, height: int, buckets: Sequence[tuple[int, int]]) -> tuple[int, int]:
    ar = math.log(width / height)
    return min(buckets, key=lambda b: (abs(math.log(b[0] / b[1]) - ar), -b[0] * b[1]))


def fit_to_bucket(img: np.ndarray, bucket: tuple[int, int]) -> np.ndarray:
    """Resize to cover the bucket, centre-crop to it."""
    import cv2

    bw, bh = bucket
    h, w = img.shape[:2]
    s = max(bw / w, bh / h)
    nw, nh = max(bw, round(w * s)), max(bh, round(h * s))
    img = cv2.resize(np.ascontiguousarray(img[..., :3]), (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC)
    x0, y0 = (nw - bw) // 2, (nh - bh) // 2
    return img[y0:y0 + bh, x0:x0 + bw]


@dataclass
class Sample:
    """One training image in its bucket: cached latent (or pixels) + caption."""

    name: str
    bucket: tuple[int, int]
    caption: str
    pixels: Any = None     # (3, H, W) float in [-1, 1] when latents are not cached
    latent: Any = None     # (4, h, w) float32, scaled


def epoch_batches(samples: Sequence[Sample], batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """The batches of one epoch: items shuffled within their bucket, batches in a shuffled order.
    A function of (seed, epoch) alone, so resume sees the same order."""
    rng = np.random.default_rng([seed, epoch])
    by_bucket: dict[tuple[int, int], list[int]] = {}
    for i, s in enumerate(samples):
        by_bucket.setdefault(s.bucket, []).append(i)
    batches = []
    for b in sorted(by_bucket):
        idx = [by_bucket[b][j] for j in rng.permutation(len(by_bucket[b]))]
        batches += [idx[k:k + batch_size] for k in range(0, len(idx), batch_size)]
    return [batches[j] for j in rng.permutation(len(batches))]


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


def _state_dict_to(sd: dict[str, Any], precision: str) -> dict[str, Any]:
    import torch

    dt = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]
    return {k: v.detach().to("cpu", dt).contiguous() for k, v in sd.items()}


class Trainer:
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

    def latest_checkpoint(self) -> Path | None:
        d = self.work / "checkpoints"
        cks = sorted(p for p in d.glob("step-*") if (p / "state.json").exists()) if d.is_dir() else []
        return cks[-1] if cks else None

    def save_checkpoint(self) -> Path:
        import random

        import torch
        from safetensors.torch import save_file

        d = self.work / "checkpoints"
        final = d / f"step-{self.step:06d}"
        tmp = d / f".tmp-step-{self.step:06d}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        save_file(_state_dict_to(self.trainable, "fp32"), str(tmp / "adapter.safetensors"))
        torch.save({"optimizer": self.optimizer.state_dict(), "lr_scheduler": self.lr_sched.state_dict(),
                    "scaler": self.scaler.state_dict() if self.scaler else None,
                    "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate(),
                            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}},
                   str(tmp / "state.pt"))
        atomic_write_json(tmp / "state.json", {"schema": "machinima.lora-checkpoint", "version": 1, "step": self.step,
                                               "settings": self.settings_key, "losses": self.losses,
                                               "eval_start": getattr(self, "eval_start", None)})
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        for old in sorted(p for p in d.glob("step-*") if p != final)[:-(KEEP_CHECKPOINTS - 1) or None]:
            shutil.rmtree(old, ignore_errors=True)
        return final

    def load_checkpoint(self, ck: Path) -> None:
        import random

        import torch
        from safetensors.torch import load_file

        doc = json.loads((ck / "state.json").read_text())
        if doc.get("settings") != self.settings_key:
            old = doc.get("settings", {})
            diff = [k for k in set(old.get("config", {})) | set(self.settings_key["config"])
                    if old.get("config", {}).get(k) != self.settings_key["config"].get(k)]
            for k in ("dataset_hash", "base_hash", "prior"):
                if old.get(k) != self.settings_key[k]:
                    diff.append(k.replace("_hash", ""))
            raise TrainConfigError(f"the checkpoint in {ck.parent} was made with other settings ({', '.join(sorted(diff))})",
                                   hint="rerun with the same settings to resume, or pass --fresh to start over (its checkpoints are deleted)")
        weights = load_file(str(ck / "adapter.safetensors"))
        with torch.no_grad():
            for k, p in self.trainable.items():
                p.copy_(weights[k].to(p.device, p.dtype))
        st = torch.load(str(ck / "state.pt"), weights_only=False)
        self.optimizer.load_state_dict(st["optimizer"])
        self.lr_sched.load_state_dict(st["lr_scheduler"])
        if self.scaler and st.get("scaler"):
            self.scaler.load_state_dict(st["scaler"])
        torch.set_rng_state(st["rng"]["torch"])
        np.random.set_state(st["rng"]["numpy"])
        random.setstate(st["rng"]["python"])
        if st["rng"].get("cuda") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(st["rng"]["cuda"])
        self.step = int(doc["step"])
        self.losses = list(doc.get("losses", []))
        self.eval_start = doc.get("eval_start")
        self.resumed_from = self.step

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

    def sample_images(self) -> Path | None:
        """Images from the sample prompts with fixed seeds -> samples/step-NNNNNN.png."""
        import torch
        from diffusers import DDIMScheduler, StableDiffusionPipeline

        from machinima.imageseq import contact_sheet, write_image

        prompts = [p.replace("{trigger}", self.trigger) for p in (self.cfg.sample_prompts or ((self.trigger,) if self.trigger else ()))]
        if not prompts:
            return None
        b = self.base
        vae_dev = next(b.vae.parameters()).device
        b.vae.to(self.device)
        if b.text_encoder is not None:
            b.text_encoder.to(self.device)
        pipe = StableDiffusionPipeline(vae=b.vae, text_encoder=b.text_encoder, tokenizer=b.tokenizer, unet=b.unet,
                                       scheduler=DDIMScheduler.from_config(b.scheduler.config, steps_offset=1), safety_checker=None,
                                       feature_extractor=None, requires_safety_checker=False)
        pipe.set_progress_bar_config(disable=True)
        b.unet.eval()
        imgs, labels = [], []
        amp = torch.autocast(self.device.type, dtype=self.weight_dtype) if self.mp != "no" else contextlib.nullcontext()
        try:
            with torch.no_grad(), amp:
                for p in prompts:
                    for seed in self.cfg.sample_seeds:
                        kw: dict[str, Any] = {}
                        if self.embed is not None:
                            kw = {"prompt_embeds": self._encode([p]), "negative_prompt_embeds": self._encode([""])}
                        else:
                            kw = {"prompt": p}
                        out = pipe(num_inference_steps=self.cfg.sample_steps, guidance_scale=self.cfg.sample_guidance,
                                   height=self.cfg.resolution, width=self.cfg.resolution, output_type="np",
                                   generator=torch.Generator("cpu").manual_seed(int(seed)), **kw).images[0]
                        imgs.append((np.clip(out, 0, 1) * 255).astype(np.uint8))
                        labels.append(f"{seed}")
        finally:
            b.unet.train()
            b.vae.to(vae_dev)
        path = self.work / "samples" / f"step-{self.step:06d}.png"
        write_image(path, contact_sheet(imgs, columns=len(self.cfg.sample_seeds), width=max(256, 128 * len(self.cfg.sample_seeds)), labels=labels))
        return path

    def write_loss_curve(self) -> Path:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 3.2), dpi=100)
        x = np.arange(1, len(self.losses) + 1)
        ax.plot(x, self.losses, lw=0.8, alpha=0.5, label="loss")
        if len(self.losses) >= 5:
            k = max(2, len(self.losses) // 20)
            ma = np.convolve(self.losses, np.ones(k) / k, mode="valid")
            ax.plot(x[k - 1:], ma, lw=1.6, label=f"mean of {k}")
        ax.set_xlabel("step")
        ax.set_ylabel("MSE")
        ax.set_title(f"{self.out.name}: loss")
        ax.legend(loc="upper right")
        fig.tight_layout()
        path = self.work / "loss.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(".loss.tmp.png")
        fig.savefig(tmp)
        plt.close(fig)
        os.replace(tmp, path)
        return path

    # 7. outputs
    def lora_state_dicts(self) -> tuple[dict[str, Any], dict[str, Any]]:
        from peft.utils import get_peft_model_state_dict

        unet_sd = get_peft_model_state_dict(self.base.unet)
        te_sd = ({k.replace(".default.", "."): v for k, v in self.base.text_encoder.state_dict().items() if ".lora_" in k}
                 if self.cfg.train_text_encoder else {})
        return unet_sd, te_sd

    def save_outputs(self) -> Path:
        from diffusers import StableDiffusionPipeline
        from diffusers.utils import convert_state_dict_to_diffusers
        from safetensors.torch import save_file

        unet_sd, te_sd = self.lora_state_dicts()
        prec = self.cfg.save_precision
        kohya = peft_to_kohya(_state_dict_to(unet_sd, prec), alpha=self.alpha, part="unet")
        if te_sd:
            kohya.update(peft_to_kohya(_state_dict_to(te_sd, prec), alpha=self.alpha, part="text_encoder"))
        meta = kohya_metadata(rank=self.cfg.rank, alpha=self.alpha, steps=self.step, trigger=self.trigger, base_hash=self.base.hash,
                              dataset_hash=self.dataset_hash, resolution=self.cfg.resolution, name=self.out.stem,
                              extra={"rights": self.clearance.to_provenance(), "config": self.cfg.to_doc()})
        self.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.out.with_name(f".{self.out.name}.tmp")
        save_file(kohya, str(tmp), metadata=meta)
        os.replace(tmp, self.out)
        ddir = self.out.with_name(self.out.stem + ".diffusers")
        adapter_meta = {"r": self.cfg.rank, "lora_alpha": self.alpha, "target_modules": list(self.cfg.targets)}
        StableDiffusionPipeline.save_lora_weights(
            str(ddir), unet_lora_layers=convert_state_dict_to_diffusers(_state_dict_to(unet_sd, prec)),
            text_encoder_lora_layers=convert_state_dict_to_diffusers(_state_dict_to(te_sd, prec)) if te_sd else None,
            unet_lora_adapter_metadata=adapter_meta, safe_serialization=True)
        return self.out

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

"""The settings of a LoRA training run (``TrainConfig``: presets, checks, the key a checkpoint must
match to resume) and what a run reports back (``TrainResult``)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import TrainConfigError
from .presets import PRESETS

UNET_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")
TE_TARGETS = ("q_proj", "k_proj", "v_proj", "out_proj")


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

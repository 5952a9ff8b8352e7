"""What a face-model training run is told (``TrainConfig``, the named ``PRESETS`` of ``train
--preset``) and what it reports (``TrainReport``): plain data, saved in model.json and read back
on resume, so it lives apart from the loop that uses it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Named settings (``train --preset``): "cpu" makes the demo's pair recognisable as the source
# after 1,000 iterations, 7 minutes of one CPU core (bench/faceswap.py --identity, figures in
# docs/faceswap.md). A small 64 px model; a high learning rate made stable by Adam's usual beta1 (0.9: a gradient spike moves the weights
# 3x the step, not 16x as with 0.5) and gradient clipping, halving every 600 iterations so the
# face sharpens late; light random affine (a face aligned by landmarks moves little; the full
# range spent most of the early iterations learning to redraw the face rotated and shifted, a
# blur); eyes and mouth weighted 3x, where dlib's identity measure looks first.
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "cpu": {
        "model": {"arch": "df", "res": 64, "e_dims": 32, "ae_dims": 128, "d_dims": 16, "d_mask_dims": 22},
        "train": {"batch": 8, "lr": 1e-3, "beta1": 0.9, "clip_grad": 10.0, "lr_half_life": 600, "affine": 0.3, "priority": 2.0},
    },
}


@dataclass
class TrainConfig:
    batch: int = 8
    lr: float = 5e-5
    save_every: int = 500
    log_every: int = 10
    seed: int = 0
    priority: float = 1.0  # extra weight on eyes and mouth
    dssim_weight: float = 10.0
    mse_weight: float = 10.0
    mask_weight: float = 10.0
    gan_power: float = 0.0  # > 0 turns the adversarial stage on
    beta1: float = 0.5  # Adam's first-moment decay
    clip_grad: float = 0.0  # > 0: clip the gradient norm (a spike otherwise kills the mask's sigmoid)
    lr_half_life: int = 0  # > 0: the learning rate halves every this many iterations (sharper late)
    warp: bool = True
    affine: float = 1.0  # random affine range: 1.0 = rotation +-10 deg, scale and shift +-5%
    flip: bool = True
    color_aug: float = 0.05
    device: str = "auto"
    amp: bool = True  # only on CUDA

    @classmethod
    def from_doc(cls, d: dict[str, Any]) -> "TrainConfig":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


@dataclass
class TrainReport:
    iteration: int
    start_iteration: int
    seconds: float
    loss_src: float
    loss_dst: float
    interrupted: bool = False
    problems: list[str] = field(default_factory=list)

    @property
    def its(self) -> float:
        n = self.iteration - self.start_iteration
        return n / self.seconds if self.seconds > 0 else 0.0

"""The face autoencoders (torch): a shared encoder and per-identity decoders (DF), or one
decoder with two inter layers (LIAE), after DeepFaceLab's SAEHD.

    DF    enc -> inter -> dec_src | dec_dst          swap(dst) = dec_src(inter(enc(dst)))
    LIAE  enc -> inter_AB, inter_B -> dec            src code = [AB(src), AB(src)]
                                                     dst code = [B(dst),  AB(dst)]
                                                     swap(dst) = dec([AB(dst), AB(dst)])

Each decoder gives an RGB face and a mask (sigmoid, [0, 1]). Inputs are float NCHW RGB in
[0, 1] at ``res`` (a multiple of 16). Sizes: ``e_dims`` encoder width, ``ae_dims`` bottleneck,
``d_dims`` decoder width, ``d_mask_dims`` mask decoder width.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from .errors import ModelError

ARCHS = ("df", "liae")


@dataclass
class ModelConfig:
    arch: str = "df"
    res: int = 128
    face_type: str = "whole"
    e_dims: int = 64
    ae_dims: int = 256
    d_dims: int = 64
    d_mask_dims: int = 22

    def check(self) -> "ModelConfig":
        if self.arch not in ARCHS:
            raise ModelError(f"unknown architecture {self.arch!r}", hint=f"use one of {', '.join(ARCHS)}")
        if self.res % 16 or not (32 <= self.res <= 1024):
            raise ModelError(f"resolution {self.res} must be a multiple of 16 between 32 and 1024")
        for k in ("e_dims", "ae_dims", "d_dims", "d_mask_dims"):
            if int(getattr(self, k)) < 1:
                raise ModelError(f"{k} must be positive")
        return self

    def to_doc(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_doc(cls, d: dict[str, Any]) -> "ModelConfig":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d}).check()


def _act() -> nn.Module:
    return nn.LeakyReLU(0.1)


class Down(nn.Sequential):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(nn.Conv2d(cin, cout, 5, stride=2, padding=2), _act())


class Up(nn.Sequential):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(nn.Conv2d(cin, cout * 4, 3, padding=1), _act(), nn.PixelShuffle(2))


class Res(nn.Module):
    def __init__(self, ch: int) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(ch, ch, 3, padding=1)
        self.c2 = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x + self.c2(F.leaky_relu(self.c1(x), 0.2)), 0.2)


class Encoder(nn.Module):
    def __init__(self, e: int) -> None:
        super().__init__()
        self.net = nn.Sequential(Down(3, e), Down(e, e * 2), Down(e * 2, e * 4), Down(e * 4, e * 8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.net(x), 1)


class Inter(nn.Module):
    def __init__(self, cin: int, ae: int, low: int, cout: int) -> None:
        super().__init__()
        self.low, self.cout = low, cout
        self.fc1 = nn.Linear(cin, ae)
        self.fc2 = nn.Linear(ae, low * low * cout)
        self.up = Up(cout, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.fc2(self.fc1(x)).view(-1, self.cout, self.low, self.low)
        return self.up(x)


class Decoder(nn.Module):
    def __init__(self, cin: int, d: int, dm: int) -> None:
        super().__init__()
        self.rgb = nn.Sequential(Up(cin, d * 4), Res(d * 4), Up(d * 4, d * 2), Res(d * 2), Up(d * 2, d), Res(d), nn.Conv2d(d, 3, 1))
        self.mask = nn.Sequential(Up(cin, dm * 4), Up(dm * 4, dm * 2), Up(dm * 2, dm), nn.Conv2d(dm, 1, 1))

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.sigmoid(self.rgb(z)), torch.sigmoid(self.mask(z))


class FaceModel(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg.check()
        low = cfg.res // 16
        enc_out = cfg.e_dims * 8 * low * low
        self.encoder = Encoder(cfg.e_dims)
        if cfg.arch == "df":
            self.inter = Inter(enc_out, cfg.ae_dims, low, cfg.ae_dims)
            self.dec_src = Decoder(cfg.ae_dims, cfg.d_dims, cfg.d_mask_dims)
            self.dec_dst = Decoder(cfg.ae_dims, cfg.d_dims, cfg.d_mask_dims)
        else:
            self.inter_ab = Inter(enc_out, cfg.ae_dims, low, cfg.ae_dims)
            self.inter_b = Inter(enc_out, cfg.ae_dims, low, cfg.ae_dims)
            self.dec = Decoder(cfg.ae_dims * 2, cfg.d_dims, cfg.d_mask_dims)

    def src(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        e = self.encoder(x)
        if self.cfg.arch == "df":
            return self.dec_src(self.inter(e))
        ab = self.inter_ab(e)
        return self.dec(torch.cat([ab, ab], 1))

    def dst(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        e = self.encoder(x)
        if self.cfg.arch == "df":
            return self.dec_dst(self.inter(e))
        return self.dec(torch.cat([self.inter_b(e), self.inter_ab(e)], 1))

    def swap(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The destination face with the source identity (rgb, mask)."""
        e = self.encoder(x)
        if self.cfg.arch == "df":
            return self.dec_src(self.inter(e))
        ab = self.inter_ab(e)
        return self.dec(torch.cat([ab, ab], 1))


class SwapNet(nn.Module):
    """What merge runs and ONNX exports: dst faces (N, 3, res, res) -> (N, 4, res, res) = rgb + mask."""

    def __init__(self, model: FaceModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rgb, mask = self.model.swap(x)
        return torch.cat([rgb, mask], 1)


class Discriminator(nn.Module):
    """A small patch discriminator for the optional adversarial stage."""

    def __init__(self, ch: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, ch, 4, 2, 1), _act(), nn.Conv2d(ch, ch * 2, 4, 2, 1), _act(), nn.Conv2d(ch * 2, ch * 4, 4, 2, 1), _act(),
            nn.Conv2d(ch * 4, 1, 3, 1, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

"""Colour match in LAB: mean/std transfer (Reinhard) or histogram matching, as a lookup table.

Statistics are measured once per take on a few sample frames (plate pixels under the matte,
set pixels of the whole frame or a region) and turned into one 3-channel LUT on OpenCV's 8-bit
LAB (L scaled to 0..255, a/b offset by 128): a per-channel affine map commutes with that
scaling, so matching there is matching in CIE LAB. Applying it per frame is RGB->LAB, one LUT,
LAB->RGB on the actor's bounding box only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import SettingsError
from .keyer import _cv2

MODES = ("lab", "histogram", "none")


@dataclass
class LabStats:
    mean: np.ndarray  # (3,) in OpenCV 8-bit LAB units
    std: np.ndarray  # (3,)
    hist: np.ndarray  # (3, 256) normalised histograms, for histogram matching

    def to_doc(self) -> dict[str, Any]:
        return {"mean": [round(float(v), 3) for v in self.mean], "std": [round(float(v), 3) for v in self.std]}


def lab_u8(rgb: np.ndarray) -> np.ndarray:
    return _cv2().cvtColor(np.ascontiguousarray(rgb[..., :3]), _cv2().COLOR_RGB2LAB)


def lab_stats(rgbs: list[np.ndarray] | np.ndarray, masks: list[np.ndarray | None] | np.ndarray | None = None, *, step: int = 2) -> LabStats:
    """LAB statistics of one or more uint8 RGB images, weighted by uint8 mattes when given."""
    if isinstance(rgbs, np.ndarray):
        rgbs = [rgbs]
        masks = [masks] if masks is None or isinstance(masks, np.ndarray) else masks
    masks = list(masks) if masks is not None else [None] * len(rgbs)
    samples, weights = [], []
    for rgb, m in zip(rgbs, masks):
        lab = lab_u8(rgb[::step, ::step]).reshape(-1, 3).astype(np.float64)
        w = np.ones(len(lab)) if m is None else m[::step, ::step].reshape(-1).astype(np.float64) / 255.0
        keep = w > 0.5
        samples.append(lab[keep])
        weights.append(w[keep])
    x = np.concatenate(samples) if samples else np.zeros((0, 3))
    if len(x) < 16:
        raise SettingsError("colour match found fewer than 16 pixels to measure", hint="check the matte (key settings) or use --color-match none")
    mean = x.mean(axis=0)
    std = x.std(axis=0)
    hist = np.stack([np.bincount(x[:, c].astype(np.int64).clip(0, 255), minlength=256) for c in range(3)]).astype(np.float64)
    hist /= hist.sum(axis=1, keepdims=True)
    return LabStats(mean, std, hist)


def transfer_lut(src: LabStats, dst: LabStats, *, mode: str = "lab", strength: float = 1.0) -> np.ndarray | None:
    """A (1, 256, 3) uint8 LAB lookup table mapping ``src`` statistics to ``dst`` (None = identity)."""
    if mode not in MODES:
        raise SettingsError(f"colour match mode must be one of {MODES}, not {mode!r}")
    if not 0.0 <= strength <= 1.0:
        raise SettingsError(f"colour match strength must be in [0, 1], got {strength}")
    if mode == "none" or strength == 0:
        return None
    v = np.arange(256, dtype=np.float64)
    lut = np.empty((256, 3))
    for c in range(3):
        if mode == "lab":
            mapped = (v - src.mean[c]) * (dst.std[c] / max(src.std[c], 1e-3)) + dst.mean[c]
        else:
            cdf_s, cdf_d = np.cumsum(src.hist[c]), np.cumsum(dst.hist[c])
            mapped = np.interp(cdf_s, cdf_d, v)
        lut[:, c] = v + strength * (mapped - v)
    return np.clip(np.round(lut), 0, 255).astype(np.uint8).reshape(1, 256, 3)


def apply_lut(rgb: np.ndarray, lut: np.ndarray | None) -> np.ndarray:
    """Apply a LAB LUT to uint8 RGB (returns a new array; identity when ``lut`` is None)."""
    if lut is None:
        return rgb
    cv2 = _cv2()
    lab = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2LAB)
    cv2.LUT(lab, lut, dst=lab)
    return cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)


def lab_float_stats(rgb: np.ndarray, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """CIE LAB (L 0..100) mean and std in float, for checking a match."""
    cv2 = _cv2()
    lab = cv2.cvtColor(rgb[..., :3].astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB).reshape(-1, 3)
    if mask is not None:
        lab = lab[mask.reshape(-1) > 127]
    return lab.mean(axis=0), lab.std(axis=0)

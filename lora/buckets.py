"""Aspect-ratio buckets (kohya style: area about ``resolution``², sides multiples of a step),
images fitted to their bucket, and the deterministic batch order of an epoch (a function of
(seed, epoch), so a resumed run sees the same batches)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np


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

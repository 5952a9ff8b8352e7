"""Sliding context windows for motion models (AnimateDiff): pure planning logic, no torch.

A motion adapter sees a fixed number of frames at once (its *context*, 16 for the SD 1.5
adapters). A longer take is denoised as overlapping windows; at every denoising step each
window predicts the noise of its frames and the predictions are blended across the overlaps
with per-position weights, then the scheduler takes one step on the whole take. Because the
blend happens inside the loop, on latents, at every step, neighbouring windows agree on the
shared frames and there is no seam at a window border::

    take of 24 frames, length 8, overlap 4 (hop 4)
      frame    012345678901234567890123
      step 0   ========                    offset 0
                   ========
                       ========
                           ========
                               ========
      step 1   ========                    offset 1: the grid moves, so the
                ========                   borders fall on other frames
                    ========
                        ========
                            ========
                               ========

Options (``ContextWindows``): ``length`` frames per window, ``overlap`` frames shared by
neighbours (hop = length - overlap), ``shift`` moves the grid by a different offset each step
(every offset in ``range(hop)`` is used once in any ``hop`` consecutive steps), ``looped``
treats the take as a loop (the last frames share windows with the first: a seamless cycle),
``fuse`` the blend weights: ``flat`` (plain average), ``pyramid`` (linear ramps: a window's
centre counts most) or ``gauss``.

Everything here is a pure function of (number of frames, step), so a resumed run recomputes
exactly the same windows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .errors import LookError

FUSE_METHODS = ("flat", "pyramid", "gauss")


@dataclass(frozen=True)
class ContextWindows:
    length: int = 16
    overlap: int = 4
    shift: bool = True
    looped: bool = False
    fuse: str = "pyramid"

    def __post_init__(self) -> None:
        if not isinstance(self.length, int) or self.length < 1:
            raise LookError(f"context length must be a positive number of frames, got {self.length!r}")
        if not isinstance(self.overlap, int) or not 0 <= self.overlap < self.length:
            raise LookError(f"context overlap must be in [0, length) = [0, {self.length}), got {self.overlap!r}",
                            hint="an overlap of about a quarter of the length (4 of 16) hides the borders")
        if self.fuse not in FUSE_METHODS:
            raise LookError(f"context fuse {self.fuse!r} is not one of {', '.join(FUSE_METHODS)}")

    @property
    def hop(self) -> int:
        """Frames between the starts of neighbouring windows."""
        return self.length - self.overlap

    # --- where the grid sits at a step ---------------------------------------------------------
    def offset(self, step: int) -> int:
        """The grid offset at a denoising step: a permutation of ``range(hop)`` over any ``hop``
        consecutive steps, spread out (a multiplier near hop/golden ratio, coprime with hop)."""
        hop = self.hop
        if not self.shift or hop <= 1:
            return 0
        k = max(1, int(round(hop * 0.618034)))
        while math.gcd(k, hop) != 1:
            k -= 1
        return (step * k) % hop

    def windows(self, num_frames: int, step: int = 0) -> list[tuple[int, ...]]:
        """The windows (tuples of frame indices ``0..num_frames-1``) used at a denoising step."""
        if num_frames < 1:
            raise LookError("no frames to plan windows for")
        L = self.length
        if num_frames <= L:  # shorter than a window: one window holds the whole take
            return [tuple(range(num_frames))]
        o = self.offset(step)
        if self.looped:
            count = math.ceil(num_frames / self.hop)
            return [tuple((o + k * self.hop + i) % num_frames for i in range(L)) for k in range(count)]
        last = num_frames - L
        starts = {0, last} | {s for s in range(o, last + 1, self.hop)}
        return [tuple(range(s, s + L)) for s in sorted(starts)]

    # --- blend weights ---------------------------------------------------------------------------
    def position_weights(self, n: int) -> np.ndarray:
        """Weight of each position in a window of ``n`` frames (all > 0)."""
        i = np.arange(n, dtype=np.float64)
        if self.fuse == "flat" or n <= 2:
            return np.ones(n)
        if self.fuse == "pyramid":
            return np.minimum(i + 1, n - i)
        sigma = n / 4.0
        return np.exp(-0.5 * ((i - (n - 1) / 2.0) / sigma) ** 2)

    def blend_plan(self, num_frames: int, step: int = 0) -> list[tuple[tuple[int, ...], np.ndarray]]:
        """``[(window, weights)]`` with the weights normalized so that, for every frame, the
        weights of the windows holding it sum to 1: ``sum_w weights_w * pred_w`` is the blend."""
        wins = self.windows(num_frames, step)
        total = np.zeros(num_frames)
        raw = []
        for w in wins:
            pw = self.position_weights(len(w))
            np.add.at(total, list(w), pw)
            raw.append(pw)
        if np.any(total <= 0):  # cannot happen for valid settings; a plan that misses frames is a bug
            missing = np.flatnonzero(total <= 0).tolist()
            raise LookError(f"context windows miss frames {missing[:8]}")
        return [(w, pw / total[list(w)]) for w, pw in zip(wins, raw)]

    def windows_per_step(self, num_frames: int) -> float:
        """Mean number of windows per step over a full offset cycle (cost model)."""
        steps = max(1, self.hop if self.shift else 1)
        return sum(len(self.windows(num_frames, s)) for s in range(steps)) / steps

    def describe(self) -> dict:
        return {"length": self.length, "overlap": self.overlap, "hop": self.hop, "shift": self.shift,
                "looped": self.looped, "fuse": self.fuse}

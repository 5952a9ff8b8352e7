"""The plate's mattes, kept between the feet tracking and the frame loop.

Tracking the feet keys every plate frame before the loop; the loop used to decode and key each
plate frame again (at 1080p a PNG/video decode ~30-60 ms plus the keyer ~60 ms, per frame, twice).
A matte is only the actor's box (alpha + despilled colour), a few hundred kB, so the tracking's
results are kept for the loop, up to a memory budget: frames beyond it are decoded and keyed in
the loop as before (same pixels either way: the keyer is deterministic).

Beyond the budget the tracking keys only the feet (``feettrack.band_probe``): the loop decodes
and keys those frames itself, so keying their whole box before the loop would be work done twice.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np

BUDGET = 512 << 20  # bytes of kept mattes


@dataclass(frozen=True)
class Kept:
    """A plate frame's matte from the tracking (``None``: no actor in that frame)."""

    matte: Any


def _nbytes(m: Any) -> int:
    return 0 if m is None else sum(a.nbytes for a in m[1:] if isinstance(a, np.ndarray))


class MatteCache:
    """``put(frame, matte)`` while the budget lasts; ``take(frame)`` gives it back once (a
    ``Kept``) or ``None`` when the frame was not kept."""

    def __init__(self, budget: int | None = None) -> None:
        self.budget = BUDGET if budget is None else budget
        self.bytes = 0
        self._kept: dict[int, Kept] = {}
        self._lock = threading.Lock()

    def put(self, frame: int, matte: Any) -> bool:
        if matte is not None:  # own copies: a view would hold the whole decoded plate frame
            matte = (matte[0], *(np.array(a, copy=True) if isinstance(a, np.ndarray) else a for a in matte[1:]))
        n = _nbytes(matte)
        with self._lock:
            if self.bytes + n > self.budget:
                return False
            self._kept[frame] = Kept(matte)
            self.bytes += n
        return True

    def room(self) -> bool:
        """Whether another matte may still fit (the tracking keys whole boxes only while it does)."""
        return self.bytes < self.budget

    def take(self, frame: int) -> Kept | None:
        with self._lock:
            k = self._kept.pop(frame, None)
            if k is not None:
                self.bytes -= _nbytes(k.matte)
            return k

    def peek(self, frame: int) -> Kept | None:
        """The kept matte, left in place (the look's sample frames, before the loop)."""
        with self._lock:
            return self._kept.get(frame)

    def retain(self, frames: Iterable[int]) -> None:
        """Drop what the loop will not ask for (frames already done)."""
        keep = set(frames)
        with self._lock:
            for f in [f for f in self._kept if f not in keep]:
                self.bytes -= _nbytes(self._kept.pop(f).matte)

    def __contains__(self, frame: object) -> bool:
        return frame in self._kept

    def __len__(self) -> int:
        return len(self._kept)

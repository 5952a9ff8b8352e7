"""Runs of True in a per-frame flag array: the one loop that the frame overrides (F/V by its
sound, closures and vowels by their evidence) and the pause check all need, kept in one place."""

from __future__ import annotations

import numpy as np


def true_runs(flags: np.ndarray, min_len: int = 1) -> list[tuple[int, int]]:
    """[start, end) of each run of True at least ``min_len`` long."""
    padded = np.concatenate([[False], np.asarray(flags, bool), [False]]).astype(np.int8)
    d = np.diff(padded)
    starts, ends = np.nonzero(d == 1)[0], np.nonzero(d == -1)[0]
    return [(int(s), int(e)) for s, e in zip(starts, ends) if e - s >= min_len]

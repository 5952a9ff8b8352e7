"""``lora train --threads N``: torch's CPU threads for one run, put back afterwards.

Why a flag: torch sizes its pool from the machine's cores, which suits a big base on an idle
machine, but a small model on a shared or busy machine runs several times slower with threads
that wait on each other (docs/design-changes.md: 10-50x for tiny models on a busy 2-core box).
The other CPU steps (faceswap train, the Ray tasks) have the same knob; a Ray sweep trial declares
``N`` CPUs and sets the same limit in its worker.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

from .errors import TrainConfigError


def check_threads(n: int | None) -> int | None:
    """``None`` (torch's own default) or a positive count; anything else is a one-line error."""
    if n is not None and n < 1:
        raise TrainConfigError(f"--threads {n}: must be 1 or more", hint="leave it out for torch's default (the machine's cores)")
    return n


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[int]:
    """Run the block with torch's intra-op pool at ``n`` threads (``None``: leave it); yields the
    count in force and restores the previous one, so an in-process caller (tests, a sweep) is
    left as it was."""
    import torch

    before = torch.get_num_threads()
    if n is None:
        yield before
        return
    torch.set_num_threads(check_threads(n) or 1)
    try:
        yield n
    finally:
        torch.set_num_threads(before)

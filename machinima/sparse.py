"""Frame sets with holes: passes rendered every Nth frame (``--step``) or for a range only.

Every post step works on the frames a take has and says what it did with the others. Two rules,
shared so that every step says and does the same:

- the work is done on the frames that exist; effects that look at "the previous frame" look at
  the previous frame that exists (``previous``);
- a movie keeps the take's timing: each frame is held until the next one that exists
  (``held``), so 24 frames rendered every 2nd frame of a 2 s take still play for 2 s.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import Sequence


def step_of(frames: Sequence[int]) -> int | None:
    """The constant step between the frames (2 for 0, 2, 4 ...); None when uneven or one frame."""
    fs = sorted(frames)
    gaps = {b - a for a, b in zip(fs, fs[1:])}
    return gaps.pop() if len(gaps) == 1 else None


def describe(frames: Sequence[int]) -> str | None:
    """One line for the user when the frames have holes; None when they are complete from 0."""
    fs = sorted(frames)
    if not fs:
        return "no frames"
    step = step_of(fs)
    if step == 1 or (len(fs) == 1 and fs[0] == 0):
        return None if fs[0] == 0 else f"frames {fs[0]}..{fs[-1]} only"
    if step is not None:
        return f"every {_nth(step)} frame ({fs[0]}..{fs[-1]}, {len(fs)} frames)"
    missing = (fs[-1] - fs[0] + 1) - len(fs)
    return f"{len(fs)} frames of {fs[0]}..{fs[-1]} ({missing} missing)"


def _nth(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def previous(frames: Sequence[int], frame: int) -> int | None:
    """The frame that exists before ``frame`` (None for the first)."""
    fs = sorted(frames)
    i = bisect_right(fs, frame - 1)
    return fs[i - 1] if i > 0 else None


def held(frames: Sequence[int], start: int | None = None, end: int | None = None) -> list[int]:
    """For each frame of ``start..end`` (default: the first..last that exist), the frame shown:
    the latest one that exists at or before it."""
    fs = sorted(frames)
    if not fs:
        return []
    start = fs[0] if start is None else start
    end = fs[-1] if end is None else end
    out = []
    for f in range(start, end + 1):
        i = bisect_right(fs, f)
        out.append(fs[max(i - 1, 0)])
    return out


def movie_note(frames: Sequence[int]) -> str | None:
    """What the movie does with the holes, for the step's summary line (None: nothing to say)."""
    what = describe(frames)
    if what is None or what.endswith("only"):
        return what
    return f"{what}: the movie holds each frame until the next to keep the take's timing"


def movie_frames(frames: Sequence[int], step: int) -> list[int]:
    """The frames a movie of ``frames`` shows: on passes every ``step``-th frame each is held until
    the next (the take's timing kept); wider gaps (shots a user left out) are cut, not filled."""
    fs = sorted(frames)
    out: list[int] = []
    for a, b in zip(fs, fs[1:] + [None]):
        out += [a] * (b - a if b is not None and 0 < b - a <= step else 1)
    return out

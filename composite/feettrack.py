"""Where the actor's feet are in each plate frame, before the frame loop.

The placement follows the feet (the lowest matte row), voted over a few frames, so the tracking
sees every plate frame before the loop starts. While the matte cache has room the tracking keys
the whole actor box and the loop takes that matte (``mattecache``: decoded and keyed once).
Beyond its budget the loop decodes and keys the frame again anyway, so the tracking needs the
feet alone (``band_probe``): the keyer's coarse 1/4 box (~1 ms) finds the actor and only the
bottom ``BAND`` rows of that box are keyed at full resolution (~20 ms a 1080p frame, against
~100 ms for the whole box at load 8).

The band's key equals the full key's bottom rows except within the filters' reach of the band's
top edge (the soft-edge fills reach tens of pixels), so a contact found less than ``GUARD`` rows
below the band's top, or none at all, is keyed again on the whole box (exact).

Measured and dropped (docs/performance.md): feet from the band for every frame, the box keyed
in the loop's pool instead of in the tracking. Setup shrank, the loop grew by more (the band is
extra work, and on 2 busy cores moving the key into the loop hides nothing).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import numpy as np

from machinima.frameio import ReadAhead

from .keyer import Keyer
from .mattecache import MatteCache
from .placement import contact_point

BAND = 96  # rows of the actor's box keyed for its feet
GUARD = 24  # a contact this close to the band's top edge may be the band's artefact: key the box

Feet = tuple[float, float]
SKIP = object()  # a probe's "nothing to keep" (None is a kept "no actor in this frame")


def band_probe(keyer: Keyer, rgb: np.ndarray, *, band: int = BAND, guard: int = GUARD) -> tuple[Feet | None, Any]:
    """(the feet, ``SKIP``: the loop keys the frame itself), or (the feet, the whole matte)
    when the band could not be trusted, or (None, None): no actor."""
    rect = keyer.coarse_rect(rgb)
    if rect is None:
        return None, None
    x0, y0, x1, y1 = rect
    yb = max(y0, y1 - band)
    if yb > y0:
        alpha, _ = keyer.key(rgb[yb:y1, x0:x1])
        feet = contact_point(alpha, (x0, yb, x1, y1))
        if feet is not None and feet[1] - yb >= guard:
            return feet, SKIP
    alpha, fg = keyer.key(rgb[y0:y1, x0:x1])  # a short box or a contact near the band's top: the whole box
    return contact_point(alpha, rect), (rect, alpha, fg)


def full_probe(matte: Callable[[np.ndarray], Any], rgb: np.ndarray) -> tuple[Feet | None, Any]:
    """The feet from the whole matte (alpha plates, segmentation models)."""
    m = matte(rgb)
    return (contact_point(m[1], m[0]) if m is not None else None), m


def vote_feet(raw: list[Feet | None], frames: list[int], smooth: int, plate_h: int) -> dict[int, Feet]:
    """Outliers voted out over ``smooth`` frames: a frame whose feet row is off the window's
    median row (a stray matte blob, a lifted foot) takes the mean of its neighbours' feet, so
    the actor does not jump in depth; steady motion is kept as is."""
    r = smooth // 2
    tol = max(2.0, 0.01 * plate_h)
    out = {}
    for i, f in enumerate(frames):
        if raw[i] is None:
            continue
        k = min(r, i, len(frames) - 1 - i)  # symmetric at the ends
        win = np.array([p for p in raw[i - k:i + k + 1] if p is not None])
        row = float(np.median(win[:, 1]))
        if abs(raw[i][1] - row) <= tol:
            out[f] = raw[i]
        else:
            inliers = win[np.abs(win[:, 1] - row) <= tol]
            out[f] = (float(inliers[:, 0].mean()), float(inliers[:, 1].mean())) if len(inliers) else raw[i]
    return out


def track(plate_frame: Callable[[int], np.ndarray], frames: list[int], probe: Callable[[np.ndarray], tuple[Feet | None, Any]], *,
          smooth: int, plate_h: int, keep: MatteCache | None = None, workers: int = 1, decoders: int = 1) -> dict[int, Feet]:
    """The plate decodes ahead on ``decoders`` threads (1 for a video: its decoder reads in
    order) while ``workers`` threads run ``probe(img) -> (feet, what to keep)``; ``keep``
    holds the mattes within its budget, so the loop does not decode those plate frames again."""
    raw: list[Feet | None] = []
    decoded = ReadAhead(frames, plate_frame, depth=4, workers=max(1, decoders))
    probed = ReadAhead(decoded, lambda item: probe(item[1]), depth=max(1, workers), workers=max(1, workers))
    try:
        for (f, _), (at, m) in probed:
            if keep is not None and m is not SKIP:
                keep.put(f, m)
            raw.append(at)
    finally:
        probed.close()
        decoded.close()
    return vote_feet(raw, frames, smooth, plate_h)


def cached(path: Path, key: str, compute: Callable[[], dict[int, Feet]]) -> dict[int, Feet]:
    """The feet in ``path`` when its key is ``key``, else ``compute()`` written there (atomically)."""
    from machinima.fsutil import atomic_write_json

    try:
        got = json.loads(path.read_text(encoding="utf-8"))
        if got.get("key") == key:
            return {int(f): (float(x), float(y)) for f, (x, y) in got["feet"].items()}
    except (OSError, ValueError, KeyError, TypeError):
        pass
    feet = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, {"key": key, "feet": {str(f): [float(x), float(y)] for f, (x, y) in feet.items()}})
    return feet

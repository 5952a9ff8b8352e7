"""Step 4 of the composite, the look: the plate's and the set's colour and grain, measured once.

Measured on the first, middle and last frames: the set's at reduced cost (colour on every 4th
pixel, grain on a quarter of the rows), the plate's on the actor's box (small already). The
result is the chain's colour LUT and grain banks, and the record kept in params.json (what the
resume keys of every frame depend on).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import numpy as np

from . import colormatch, grain
from .chain import Chain
from .keyer import Keyer
from .mattecache import MatteCache


def measure_look(s: Any, frames: list[int], first_rgb: np.ndarray, read_rgb: Callable[[int], np.ndarray], mattes: MatteCache,
                 matte: Callable[[np.ndarray], Any], plate_frame: Callable[[int], np.ndarray], keyer: Keyer | None,
                 size: tuple[int, int]) -> tuple[dict[str, Any], Chain]:
    """(the look's record for params.json, the chain with its colour LUT and grain banks) for
    ``CompositeSettings`` ``s``: ``read_rgb(f)`` reads the set's rgb pass, ``plate_frame(f)`` the
    plate at take frame ``f`` (only for sample frames whose matte the tracking did not keep)."""
    w, h = size
    samples = [frames[i] for i in sorted({0, len(frames) // 2, len(frames) - 1})]
    plate_imgs, plate_mattes = [], []
    with ThreadPoolExecutor(2) as ex:  # the set's sample frames read side by side
        set_imgs = list(ex.map(lambda f: first_rgb if f == frames[0] else read_rgb(f), samples))
    for f in samples:
        kept = mattes.peek(f)
        m = kept.matte if kept is not None else matte(plate_frame(f))
        if m is not None:
            plate_imgs.append(m[2])
            plate_mattes.append(m[1])
    look: dict[str, Any] = {"screen_rgb": list(keyer.screen_rgb) if keyer else None}
    color_lut = None
    if s.color_match != "none" and plate_imgs:
        src = colormatch.lab_stats(plate_imgs, plate_mattes)
        dst = colormatch.lab_stats(set_imgs, step=4)  # whole set frames: 1/16 of the pixels (130k at 1080p) is plenty for a mean and std
        color_lut = colormatch.transfer_lut(src, dst, mode=s.color_match, strength=s.color_strength)
        look.update(color_plate=src.to_doc(), color_set=dst.to_doc())
    plate_grain = set_grain = None
    if s.grain != "none" and plate_imgs:
        n_set = np.mean([grain.measure_noise_bands(im) for im in set_imgs], axis=0)  # full-res rows: a resize would hide the noise
        n_plate = np.mean([grain.measure_noise(im, m) for im, m in zip(plate_imgs, plate_mattes)], axis=0)
        look.update(noise_set=[round(float(v), 3) for v in n_set], noise_plate=[round(float(v), 3) for v in n_plate])
        to_plate, to_set = grain.grain_to_add(n_set, n_plate), grain.grain_to_add(n_plate, n_set)
        if s.grain in ("plate", "auto") and to_plate.max() > 0.3:
            plate_grain = grain.GrainBank((w, h), to_plate, grain_size=s.grain_size, seed=s.seed)
        if s.grain == "set" or (s.grain == "auto" and to_set.max() > 0.3):
            set_grain = grain.GrainBank((w, h), to_set, grain_size=s.grain_size, seed=s.seed + 1)
    return look, Chain(s.chain, color_lut=color_lut, plate_grain=plate_grain, set_grain=set_grain)

"""Helpers for the face-swap tests: short \"clips\" made by moving and scaling a photo."""

from __future__ import annotations

import numpy as np


def moving_clip(img: np.ndarray, n: int, *, shift=(3.0, -2.0), zoom=0.02, size=None) -> list[np.ndarray]:
    import cv2

    h, w = img.shape[:2]
    out = []
    for i in range(n):
        s = 1 + zoom * i
        m = np.float32([[s, 0, shift[0] * i - (s - 1) * w / 2], [0, s, shift[1] * i - (s - 1) * h / 2]])
        f = cv2.warpAffine(img, m, (w, h), borderMode=cv2.BORDER_REFLECT)
        if size:
            f = cv2.resize(f, size, interpolation=cv2.INTER_AREA)
        out.append(f)
    return out


def write_clip(folder, frames) -> None:
    from machinima.imageseq import write_image

    folder.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(frames):
        write_image(folder / f"{i:06d}.png", f)

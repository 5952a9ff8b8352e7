"""One H.264 encode loop for the disclosure benchmarks (bench/disclosure.py,
bench/watermark_flicker.py): frames through PyAV's libx264 into memory or a file, the CPU it
took (x264's own threads included: process time), the bytes, and the frames decoded back.

Why one: both measure what a mark costs x264, so both must code frames the same way (pixel
format, rate, options); a second loop drifting from the first would make their figures
incomparable. Not a benchmark itself (the underscore).
"""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Iterable

import numpy as np


def encode(frames: Iterable[np.ndarray], *, crf: int = 18, preset: str | None = None, path: str | Path | None = None,
           decode: bool = True, fps: int = 24) -> tuple[float, int, list[np.ndarray]]:
    """(CPU seconds of the encode, bytes, decoded RGB frames or [] when ``decode`` is False).
    ``path``: write the MP4 there instead of into memory (a file to sign afterwards)."""
    import av

    frames = iter(frames)
    first = next(frames)
    target = str(path) if path is not None else io.BytesIO()
    options = {"crf": str(crf), **({"preset": preset} if preset else {})}
    t = time.process_time()
    with av.open(target, "w", format="mp4") as c:
        st = c.add_stream("libx264", rate=fps)
        st.width, st.height, st.pix_fmt, st.options = first.shape[1], first.shape[0], "yuv420p", options
        for f in (first, *frames):
            for p in st.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")):
                c.mux(p)
        for p in st.encode():
            c.mux(p)
    cpu = time.process_time() - t
    data = Path(path).read_bytes() if path is not None else target.getvalue()
    decoded: list[np.ndarray] = []
    if decode:
        with av.open(io.BytesIO(data)) as c:
            decoded = [fr.to_ndarray(format="rgb24") for fr in c.decode(video=0)]
    return cpu, len(data), decoded


def roundtrip(img: np.ndarray, crf: int = 23, preset: str = "veryfast", copies: int = 2) -> np.ndarray:
    """``img`` as a viewer of an H.264 movie sees it: ``copies`` identical frames coded, the last
    one decoded (an attack in the watermark's robustness tables)."""
    return encode([img] * copies, crf=crf, preset=preset)[2][-1]

"""What the mark in a step's movie costs x264, by how the frames were marked. JSON out.

    .venv/bin/python bench/watermark_flicker.py [--quick]

A step's movie is made from its frames and re-marked with the movie's own manifest id. Four
ways, on a photograph (a real photo with a real portrait moving across it) and on flat
synthetic frames (gradients and a moving disc), 1080p, x264 crf 18 through PyAV:
unmarked; frames marked with one manifest id each, re-marked one by one (the old movie);
the same with ``WatermarkMemory``; frames marked with one sequence id (QOI frames under a
step's sequence manifest) and re-marked with memory. CPU seconds of the encode (x264's
threads included), bytes, and whether one decoded frame still names the movie's manifest.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402

from machinima.provenance import watermark as wm  # noqa: E402

W, H = 1920, 1080
MOVIE = "urn:c2pa:6c1b5f0e-3a44-4f7e-9d0a-2b8e1c5d7f90"
KEY = b"bench production secret"


def encode(frames: list[np.ndarray]) -> tuple[float, int, list[np.ndarray]]:
    import av

    buf = io.BytesIO()
    t = time.process_time()
    with av.open(buf, "w", format="mp4") as c:
        st = c.add_stream("libx264", rate=24)
        st.width, st.height, st.pix_fmt, st.options = W, H, "yuv420p", {"crf": "18"}
        for f in frames:
            for p in st.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in st.encode():
            c.mux(p)
    cpu = time.process_time() - t
    with av.open(io.BytesIO(buf.getvalue())) as c:
        decoded = [fr.to_ndarray(format="rgb24") for fr in c.decode(video=0)]
    return cpu, len(buf.getvalue()), decoded


def clips(n: int) -> dict[str, list[np.ndarray]]:
    import skimage.data

    bg = cv2.resize(skimage.data.coffee(), (W, H))
    actor = cv2.resize(skimage.data.astronaut(), (768, 768))
    photo = []
    for f in range(n):
        fr = bg.copy()
        fr[100:868, 300 + 20 * f:1068 + 20 * f] = actor
        photo.append(fr)
    yy, xx = np.mgrid[0:H, 0:W]
    synth = []
    for f in range(n):
        fr = np.zeros((H, W, 3), np.uint8)
        fr[..., 0], fr[..., 1], fr[..., 2] = (xx / W * 200).astype(np.uint8), 90, (yy / H * 160).astype(np.uint8)
        cv2.circle(fr, (600 + 30 * f, 540), 200, (200, 180, 60), -1)
        synth.append(fr)
    return {"photograph": photo, "flat_synthetic": synth}


def ways(frames: list[np.ndarray]) -> dict[str, list[np.ndarray]]:
    per_frame = [wm.embed_watermark(f, "film", f"urn:c2pa:frame-{i}", KEY) for i, f in enumerate(frames)]
    seq_mem = wm.WatermarkMemory()
    sequence = [wm.embed_watermark(f, "film", "urn:c2pa:the-step", KEY, memory=seq_mem) for f in frames]

    def movie(src: list[np.ndarray], memory: bool) -> list[np.ndarray]:
        mem = wm.WatermarkMemory() if memory else None
        return [wm.embed_watermark(f, "film", MOVIE, KEY, memory=mem) for f in src]

    return {"unmarked": frames, "per_frame_ids_remarked": movie(per_frame, False),
            "per_frame_ids_remarked_with_memory": movie(per_frame, True),
            "sequence_id_remarked_with_memory": movie(sequence, True)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    cv2.setNumThreads(1)
    n = 8 if a.quick else 24
    load = os.getloadavg()
    out: dict = {"bench": "watermark_flicker", "frames": n, "resolution": f"{W}x{H}", "x264": "crf 18, PyAV, preset medium"}
    for name, frames in clips(n).items():
        res = {}
        for way, fr in ways(frames).items():
            cpu, size, decoded = encode(fr)
            r = wm.decode_watermark(decoded[n // 2]) if way != "unmarked" else None
            res[way] = {"x264_cpu_s": round(cpu, 3), "kB": size // 1000,
                        "one_frame_names_movie": None if r is None else bool(r.found and r.names_manifest(MOVIE))}
        out[name] = res
    out["load_average_start_end"] = [round(x, 1) for x in load] + [round(x, 1) for x in os.getloadavg()]
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

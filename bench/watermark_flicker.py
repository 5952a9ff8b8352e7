"""What the mark in a step's movie costs x264, by how the frames were marked. JSON out.

    PYTHONPATH=. .venv/bin/python bench/watermark_flicker.py [--quick]

A step's movie is made from its frames. Ways, on a photograph (a real photo with a real
portrait moving across it), the same with film grain, and on flat synthetic frames (gradients and a moving disc), 1080p,
x264 crf 18 through PyAV (``_h264.encode``, as ``imageseq.write_video``): unmarked; frames
marked with one manifest id each (PNG frames), re-marked one by one with the movie's id (the
old movie) and with ``WatermarkMemory``; frames marked with the step's sequence id (QOI frames)
in frame order with memory, re-marked with the movie's id (before issue 24's last change); the
same frames kept as they are, the movie naming the sequence (now:
``WatermarkMemory(settle=True)``), and that with frames marked one by one (no memory, as the
writer pool did). CPU seconds of the encode (x264's threads included), bytes, and whether one
decoded frame still names the id its mark should.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

sys.path.append(str(Path(__file__).resolve().parent))  # _h264 (last: bench/faceswap.py must not hide the faceswap package)

import _h264  # noqa: E402  (the encode loop bench/disclosure.py uses too)
import cv2  # noqa: E402

from machinima.provenance import watermark as wm  # noqa: E402

W, H = 1920, 1080
MOVIE = "urn:c2pa:6c1b5f0e-3a44-4f7e-9d0a-2b8e1c5d7f90"
KEY = b"bench production secret"


def encode(frames: list[np.ndarray]) -> tuple[float, int, list[np.ndarray]]:
    return _h264.encode(frames, crf=18)  # x264's default preset (medium), as imageseq.write_video


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
    rng = np.random.default_rng(0)  # film grain (a composite's, a render's noise): still picture, pixels that are not
    grainy = [np.clip(fr + rng.normal(0, 2.0, fr.shape), 0, 255).astype(np.uint8) for fr in photo]
    return {"photograph": photo, "photograph_with_grain": grainy, "flat_synthetic": synth}


SEQ = "urn:c2pa:the-step"  # the step's sequence manifest id (QOI frames)


def ways(frames: list[np.ndarray]) -> dict[str, tuple[list[np.ndarray], str]]:
    """Each way: (the movie's frames as x264 gets them, the id their mark should name)."""
    per_frame = [wm.embed_watermark(f, "film", f"urn:c2pa:frame-{i}", KEY) for i, f in enumerate(frames)]
    seq_mem = wm.WatermarkMemory()  # the step loop marks QOI frames in frame order with one memory
    sequence = [wm.embed_watermark(f, "film", SEQ, KEY, memory=seq_mem) for f in frames]
    alone = [wm.embed_watermark(f, "film", SEQ, KEY) for f in frames]  # the same, marked in the writer pool one by one

    def movie(src: list[np.ndarray], memory: bool, mark: str = MOVIE, settle: bool = False) -> list[np.ndarray]:
        mem = wm.WatermarkMemory(settle=settle) if memory else None
        return [wm.embed_watermark(f, "film", mark, KEY, memory=mem) for f in src]

    return {"unmarked": (frames, ""),
            "per_frame_ids_remarked": (movie(per_frame, False), MOVIE),
            "per_frame_ids_remarked_with_memory": (movie(per_frame, True), MOVIE),
            "sequence_id_remarked_with_memory": (movie(sequence, True), MOVIE),
            "sequence_id_kept_frames_marked_alone": (movie(alone, True, SEQ, settle=True), SEQ),
            "sequence_id_kept": (movie(sequence, True, SEQ, settle=True), SEQ)}


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
        for way, (fr, names) in ways(frames).items():
            cpu, size, decoded = encode(fr)
            r = wm.decode_watermark(decoded[n // 2]) if names else None
            res[way] = {"x264_cpu_s": round(cpu, 3), "kB": size // 1000,
                        "one_frame_names_its_mark": None if r is None else bool(r.found and r.names_manifest(names))}
        out[name] = res
    out["load_average_start_end"] = [round(x, 1) for x in load] + [round(x, 1) for x in os.getloadavg()]
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

"""Benchmark: lip-sync analysis speed, accuracy on constructed truth, live latency, mouth warp.

Truth by construction: words spoken separately by espeak-ng (``pa me moo ma pa boo``, twice,
with silences at known times); each frame's expected shape class is known (see lipsync.truth).
Modes: phone-loop (no text), aligned (text), MFCC templates (calibrated on espeak vowels), and
the naive baseline in the same run: mouth opening from loudness alone.

    .venv/bin/python bench/lipsync.py
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lipsync.analyze import lipsync_audio  # noqa: E402
from lipsync.audio import Audio, load_audio  # noqa: E402
from lipsync.live import LiveLipSync, realtime_chunks  # noqa: E402
from lipsync.mfcc import VowelTemplates, loudness_openness  # noqa: E402
from lipsync.truth import SHAPE_CLASS, build, speak, truth_classes  # noqa: E402

WORDS = ["pa", "me", "moo", "ma", "pa", "boo"] * 2
VOWEL_CLASS = {"A": "open", "I": "spread", "U": "rounded", "E": "open", "O": "rounded"}


def score(pred: list[str], truth: list) -> float:
    pairs = [(p, t) for p, t in zip(pred, truth) if t is not None]
    return sum(p == t for p, t in pairs) / max(1, len(pairs))


def main() -> None:
    samples, spans = build(WORDS)
    audio = Audio(samples, 16000)
    fps = 100
    n = int(np.ceil(audio.seconds * fps))
    truth = truth_classes(spans, fps, n)
    out: dict = {"benchmark": "lipsync", "audio_seconds": round(audio.seconds, 2), "cpu_count": os.cpu_count()}
    lipsync_audio(Audio(samples[:16000], 16000), fps)  # load the acoustic models once (not timed)
    lipsync_audio(Audio(samples[:16000], 16000), fps, "pa")
    for mode, text in (("phone_loop", None), ("aligned", " ".join(WORDS))):
        t0 = time.perf_counter()
        tr = lipsync_audio(audio, fps, text)
        dt = time.perf_counter() - t0
        out[mode] = {"x_realtime": round(audio.seconds / dt, 1), "accuracy": round(score([SHAPE_CLASS[s] for s in tr.shapes], truth), 3)}
    with tempfile.TemporaryDirectory() as tmp:
        rec = {v: load_audio(speak(w, Path(tmp) / f"{v}.wav")).samples for v, w in (("A", "ah"), ("I", "ee"), ("U", "ooh"), ("E", "eh"), ("O", "oh"))}
    templates = VowelTemplates.calibrate(rec)
    t0 = time.perf_counter()
    w = templates.weights(samples)
    dt = time.perf_counter() - t0
    pred = ["silence" if row.sum() < 0.2 else VOWEL_CLASS["AIUEO"[int(np.argmax(row))]] for row in w]
    out["mfcc_templates"] = {"x_realtime": round(audio.seconds / dt, 1), "accuracy": round(score(pred[:n], truth), 3)}
    openness = loudness_openness(samples)
    pred = ["open" if o > 0.2 else "silence" for o in openness]
    out["baseline_loudness_only"] = {"accuracy": round(score(pred[:n], truth), 3)}
    live = LiveLipSync(templates)
    for chunk in realtime_chunks(samples[: 16000 * 4], chunk_ms=10, speed=1.0):
        live.feed(chunk)
    lat = np.array(live.latencies_ms)
    out["live_latency_ms"] = {"p50": round(float(np.percentile(lat, 50)), 3), "p95": round(float(np.percentile(lat, 95)), 3),
                              "note": "audio chunk in -> VMC message bytes out (10 ms chunks), plus up to one 10 ms hop of buffering"}
    from skimage import data

    from lipsync.mouthwarp import FaceMesh, MouthWarp

    import cv2

    face = cv2.resize(data.astronaut(), (1080, 1080))
    frame = np.zeros((1080, 1920, 3), np.uint8)
    frame[:, 420:1500] = face
    mesh = FaceMesh()
    lm = mesh.landmarks(frame)
    warp = MouthWarp()
    t0 = time.perf_counter()
    for s in "DBFACDEB":
        warp.apply(frame, lm, s)
    warp_fps = 8 / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for _ in range(4):
        mesh.landmarks(frame)
    mesh_fps = 4 / (time.perf_counter() - t0)
    out["mouth_warp_1080p"] = {"warp_fps": round(warp_fps, 1), "face_mesh_fps": round(mesh_fps, 1),
                               "with_landmarks_fps": round(1 / (1 / warp_fps + 1 / mesh_fps), 1)}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

"""Benchmark: lip sync held against truth on continuous speech, beside trivial mouths, plus live
latency measured from outside the command and the mouth warp's speed.

Truth (``lipsync.truth``): ten sentences spoken as one line by libespeak-ng in four voices and
speeds, each phoneme stamped by the synthesiser's own events. Scores are on speech frames only,
per mouth class, pooled over the four lines, at 100 fps (10 ms) and at 24 fps; beside them in the
same run: an always-closed mouth and a loudness-only mouth. The MFCC templates are calibrated on
each voice's own vowels, so their figure is an upper bound for a calibrated speaker.

Whole commands disk to disk: ``machinima lipsync analyze line.wav --text line.txt`` (process
start, model load, analysis, files written) beside the in-process analysis; live latency from
writing a 10 ms chunk into ``machinima lipsync live --input -`` to the UDP datagram arriving.

    .venv/bin/python bench/lipsync.py            # everything (a few minutes)
    .venv/bin/python bench/lipsync.py --quick    # two lines, accuracy only

The phone loop (posteriors, ``lipsync.phoneloop``) sits beside ``best-string``, PocketSphinx's
single best phone string through the same pause check and coarticulation; its parameters were
tuned on other sentences and voices (``bench/lipsync_tune.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fractions import Fraction  # noqa: E402

from lipsync.analyze import lipsync_audio, track_from_cues  # noqa: E402
from lipsync.phonemes import best_phone_string, validate_pauses  # noqa: E402
from lipsync.visemes import phones_to_cues  # noqa: E402
from lipsync.audio import Audio, load_audio  # noqa: E402
from lipsync.latency import CHUNK, measure_live_command  # noqa: E402
from lipsync.mfcc import VowelTemplates  # noqa: E402
from lipsync.score import always_closed, loudness_classes, pooled, score_classes, track_frames, truth_frames  # noqa: E402
from lipsync.truth import SENTENCES, TRUTH_VOICES, speak, synthesize, truth_set, write_wav  # noqa: E402

TEXT = " ".join(SENTENCES)
VOICES = TRUTH_VOICES
MODES = ("aligned", "phone-loop", "best-string", "mfcc-templates", "always-closed", "loudness-only")


def calibrate(voice: str) -> VowelTemplates:
    with tempfile.TemporaryDirectory() as tmp:
        return VowelTemplates.calibrate({v: load_audio(speak(w, Path(tmp) / f"{v}.wav", voice=voice)).samples
                                         for v, w in (("A", "ah"), ("I", "ee"), ("U", "ooh"), ("E", "eh"), ("O", "oh"))})


def accuracy_table(lines) -> dict:
    """Every mode on every line: pooled scores at 100 and 24 fps, per-line accuracy, speed."""
    out: dict = {}
    seconds = {m: 0.0 for m in MODES}
    per_line: dict[str, list[float]] = {m: [] for m in MODES}
    pairs: dict[int, dict[str, list]] = {fps: {m: [] for m in MODES} for fps in (100, 24)}
    lipsync_audio(Audio(lines[0].samples[:16000], 16000), 100)  # load the acoustic models once (not timed)
    lipsync_audio(Audio(lines[0].samples[:16000], 16000), 100, "the")
    for u, (voice, _) in zip(lines, VOICES):
        a = Audio(u.samples, 16000)
        tracks = {}
        for mode, kw in (("aligned", {"text": TEXT}), ("phone-loop", {}), ("mfcc-templates", {"templates": calibrate(voice)})):
            t0 = time.perf_counter()
            tracks[mode] = lipsync_audio(a, 100, **kw)
            seconds[mode] += time.perf_counter() - t0
        t0 = time.perf_counter()  # the decoder's single best phone string: the phone loop's baseline
        tracks["best-string"] = track_from_cues(phones_to_cues(validate_pauses(best_phone_string(a), a.samples), a.seconds),
                                                Fraction(100), "best-string", a.seconds)
        seconds["best-string"] += time.perf_counter() - t0
        for fps in (100, 24):
            n = int(np.ceil(u.seconds * fps))
            truth = truth_frames(u.phones, fps, n)
            preds = {m: track_frames(tracks[m].cues, fps, n) for m in tracks}
            preds["always-closed"] = always_closed(n)
            preds["loudness-only"] = loudness_classes(u.samples, 16000, fps, n)
            for m, p in preds.items():
                pairs[fps][m].append((p, truth))
                if fps == 100:
                    per_line[m].append(round(score_classes(p, truth).accuracy, 3))
    audio_s = sum(u.seconds for u in lines)
    for m in MODES:
        sc, off = pooled(pairs[100][m], 100)
        sc24, off24 = pooled(pairs[24][m], 24)
        out[m] = {"accuracy_speech_frames": round(sc.accuracy, 3), "accuracy_at_24fps": round(sc24.accuracy, 3),
                  "per_line": dict(zip([f"{v}@{s}" for v, s in VOICES], per_line[m])),
                  "per_class": {k: round(v, 3) for k, v in sc.per_class.items()}, "change_offsets": off, "change_offsets_24fps": off24,
                  "confusion": sc.confusion}
        if seconds.get(m):
            out[m]["x_realtime"] = round(audio_s / seconds[m], 1)
    out["speech_frames"] = pooled(pairs[100]["aligned"], 100)[0].frames
    return out


def whole_command(tmp: Path, u) -> dict:
    """`machinima lipsync analyze` disk to disk, a fresh process each time."""
    write_wav(tmp / "line.wav", u.samples)
    (tmp / "line.txt").write_text(TEXT)
    out = {}
    for mode, extra in (("aligned", ["--text", str(tmp / "line.txt")]), ("phone-loop", [])):
        t0 = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "machinima", "lipsync", "analyze", str(tmp / "line.wav"), *extra, "--fps", "24"],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit(r.stderr)
        out[mode] = {"seconds": round(time.perf_counter() - t0, 2), "audio_seconds": round(u.seconds, 1)}
    return out


def live_latency() -> dict:
    """From outside the command: chunk written -> datagram received, and how soon the mouth is
    half open after a vowel starts (window + smoothing included)."""
    ah = synthesize("Ah. Ah. Ah.", voice="en-us", speed=120)
    line = synthesize(" ".join(SENTENCES[:3]), voice="en-us", speed=160)
    audio = np.concatenate([np.zeros(8000, np.float32), line.samples, ah.samples])
    audio = audio[: audio.size // CHUNK * CHUNK]
    m = measure_live_command(audio)
    lat = m.latencies_ms()
    # onsets of the sustained "ah"s: the first loud sample after a pause
    from pythonosc.osc_bundle import OscBundle

    a_weight = np.array([OscBundle(d).content(0).params[1] for _, d in m.received])
    start = 8000 + line.samples.size
    onsets = [start + int(p.start * 16000) for p in ah.phones if p.phone == "AA"]
    half_open = []
    for s in onsets:
        since = m.since_sample_ms(s)
        after = np.nonzero((since >= 0) & (a_weight >= 0.5))[0]
        if after.size:
            half_open.append(float(since[after[0]]))
    return {"datagrams": len(m.received), "chunk_to_datagram_ms": {"p50": round(float(np.percentile(lat, 50)), 2),
            "p95": round(float(np.percentile(lat, 95)), 2), "max": round(float(lat.max()), 2)},
            "vowel_onset_to_half_open_ms": [round(x, 1) for x in half_open],
            "note": "chunk written into `machinima lipsync live --input -` -> VMC datagram at a UDP receiver on loopback; "
                    "half open = A weight >= 0.5 after the chunk holding the vowel's first sample"}


def mouth_warp() -> dict:
    import cv2
    from skimage import data

    from lipsync.mouthwarp import FaceMesh, MouthWarp

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
    mesh.close()
    return {"warp_fps": round(warp_fps, 1), "face_mesh_fps": round(mesh_fps, 1), "with_landmarks_fps": round(1 / (1 / warp_fps + 1 / mesh_fps), 1)}


def main() -> None:
    global VOICES
    ap = argparse.ArgumentParser(description="lip sync against espeak-ng truth (JSON on stdout)")
    ap.add_argument("--quick", action="store_true", help="two of the four lines, accuracy only (about a minute)")
    args = ap.parse_args()
    VOICES = TRUTH_VOICES[:2] if args.quick else TRUTH_VOICES
    out: dict = {"benchmark": "lipsync", "cpu_count": os.cpu_count(), "load_before": [round(x, 2) for x in os.getloadavg()],
                 "truth": {"sentences": len(SENTENCES), "lines": [f"{v} at {s} wpm" for v, s in VOICES]}}
    lines = truth_set(VOICES)
    out["truth"]["audio_seconds"] = round(sum(u.seconds for u in lines), 1)
    out["accuracy"] = accuracy_table(lines)
    if args.quick:
        out["load_after"] = [round(x, 2) for x in os.getloadavg()]
        print(json.dumps(out, indent=2))
        return
    with tempfile.TemporaryDirectory() as tmp:
        out["whole_command_analyze"] = whole_command(Path(tmp), lines[0])
    out["live"] = live_latency()
    out["mouth_warp_1080p"] = mouth_warp()
    out["load_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

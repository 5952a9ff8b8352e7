"""Audio (+ optional dialogue text) -> mouth animation at a frame rate: Rhubarb shapes, VRM
weights and Oculus visemes, plus writers for Rhubarb TSV/JSON and for a take's blend stream.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from machinima.fsutil import atomic_write_json, atomic_write_text

from .audio import Audio
from .phonemes import analyze
from .visemes import RHUBARB_SHAPES, VRM_CHANNELS, Coarticulation, Cue, cues_at_frames, phones_to_cues, vrm_weights

BLEND_CHANNELS = tuple(VRM_CHANNELS) + tuple(f"rhubarb_{s}" for s in RHUBARB_SHAPES)


@dataclass
class MouthTrack:
    fps: Fraction
    cues: list[Cue]
    shapes: list[str]  # per frame
    vrm: np.ndarray  # (n, 5)
    mode: str
    duration: float
    notes: list[str] = field(default_factory=list)

    def blend_values(self) -> np.ndarray:
        """(n, 14): VRM A I U E O weights, then a one-hot Rhubarb shape per frame."""
        onehot = np.zeros((len(self.shapes), len(RHUBARB_SHAPES)), np.float32)
        for i, s in enumerate(self.shapes):
            onehot[i, RHUBARB_SHAPES.index(s)] = 1.0
        return np.concatenate([self.vrm, onehot], axis=1)


def lipsync_audio(audio: Audio, fps: float | str | Fraction = 24, text: str | None = None,
                  pronunciations: dict[str, str] | None = None, co: Coarticulation | None = None) -> MouthTrack:
    from machinima.timecode import parse_rate

    rate = parse_rate(fps)
    an = analyze(audio, text, pronunciations)
    cues = phones_to_cues(an.phones, an.duration, co)
    n = int(np.ceil(an.duration * float(rate)))
    return MouthTrack(rate, cues, cues_at_frames(cues, rate, n), vrm_weights(cues, rate, n, co), an.mode, an.duration, an.notes)


def write_rhubarb_tsv(path: str | Path, cues: list[Cue]) -> Path:
    """Rhubarb's TSV: one line per cue, ``start<TAB>shape``, and a final X at the end."""
    lines = [f"{c.start:.2f}\t{c.shape}" for c in cues]
    if cues:
        lines.append(f"{cues[-1].end:.2f}\tX")
    atomic_write_text(path, "\n".join(lines) + "\n")
    return Path(path)


def write_rhubarb_json(path: str | Path, cues: list[Cue], *, sound_file: str = "", duration: float = 0.0) -> Path:
    """Rhubarb's JSON: ``{"metadata": {"soundFile", "duration"}, "mouthCues": [{"start", "end", "value"}]}``."""
    doc: dict[str, Any] = {
        "metadata": {"soundFile": sound_file, "duration": round(duration, 2)},
        "mouthCues": [{"start": round(c.start, 2), "end": round(c.end, 2), "value": c.shape} for c in cues],
    }
    atomic_write_json(path, doc)
    return Path(path)


def read_rhubarb_json(path: str | Path) -> list[Cue]:
    doc = json.loads(Path(path).read_text())
    return [Cue(float(c["start"]), float(c["end"]), str(c["value"])) for c in doc["mouthCues"]]


def write_to_take(take_path: str | Path, performer: str, track: MouthTrack, *, start_frame: int = 0) -> str:
    """Add the mouth animation to a take as the blend stream ``blend/<performer>-mouth``
    (timecode-stamped like every stream), starting ``start_frame`` frames after the take's
    timecode_in; returns the stream name."""
    from machinima.take import Take
    from machinima.timecode import ns_from_frames

    take = Take.open(take_path, writable=True)
    try:
        name = f"{performer}-mouth"
        store = take.store
        store.add_blend_stream(name, BLEND_CHANNELS, {"performer": performer, "source": "lipsync", "mode": track.mode})
        fps = float(take.fps)
        # one sample per take frame, starting at start_frame
        frames = np.arange(len(track.shapes)) + start_frame
        vals = track.blend_values()
        if float(track.fps) != fps:  # analysed at another rate: sample it at the take's frames
            frames = np.arange(int(np.ceil(track.duration * fps))) + start_frame
            idx = np.clip(np.floor((frames - start_frame) / fps * float(track.fps)).astype(int), 0, len(vals) - 1)
            vals = vals[idx]
        t_ns = store.origin_ns + ns_from_frames(frames, take.fps)  # frames counted from timecode_in
        store.append(f"blend/{name}", t_ns.astype(np.int64), vals)
        if not any(p.get("name") == performer for p in take.manifest.performers):
            take.manifest.performers.append({"name": performer})
        take.finalize(take.manifest.status if take.manifest.status != "recording" else "complete")
    finally:
        take.close()
    return f"blend/{name}"

"""Audio (+ optional dialogue text, or a speaker's vowel templates) -> mouth animation at a frame
rate: Rhubarb shapes, VRM weights and the 15 Oculus visemes from one cue timeline, plus writers
for Rhubarb TSV/JSON and for a take's blend stream.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from machinima.fsutil import atomic_write_json, atomic_write_text
from machinima.mouth import BLEND_CHANNELS

from .audio import Audio
from .errors import LipSyncError
from .mfcc import FRAME, HOP, VowelTemplates
from .phonemes import analyze
from .visemes import (OCULUS_VISEMES, RHUBARB_SHAPES, VRM_CHANNELS, Coarticulation, Cue, PhoneSegment, cues_at_frames, phones_to_cues,
                      viseme_weights, visemes_at_frames, vrm_weights)


@dataclass
class MouthTrack:
    fps: Fraction
    cues: list[Cue]
    shapes: list[str]  # Rhubarb shape per frame
    vrm: np.ndarray  # (n, 5)
    mode: str
    duration: float
    notes: list[str] = field(default_factory=list)
    visemes: list[str] = field(default_factory=list)  # Oculus viseme per frame
    viseme_weights: np.ndarray | None = None  # (n, 15), OCULUS_VISEMES order

    def blend_values(self) -> np.ndarray:
        """(n, 29): VRM A I U E O weights, a one-hot Rhubarb shape, then the 15 Oculus viseme
        weights per frame (``BLEND_CHANNELS``)."""
        onehot = np.zeros((len(self.shapes), len(RHUBARB_SHAPES)), np.float32)
        for i, s in enumerate(self.shapes):
            onehot[i, RHUBARB_SHAPES.index(s)] = 1.0
        vis = self.viseme_weights if self.viseme_weights is not None else np.zeros((len(self.shapes), len(OCULUS_VISEMES)), np.float32)
        return np.concatenate([self.vrm, onehot, vis], axis=1)


def lipsync_audio(audio: Audio, fps: float | str | Fraction = 24, text: str | None = None,
                  pronunciations: dict[str, str] | None = None, co: Coarticulation | None = None, *,
                  templates: VowelTemplates | None = None) -> MouthTrack:
    """Mouth animation of ``audio`` at ``fps``: aligned to ``text`` when given, else from free
    phone recognition; with ``templates`` (a speaker's calibration) from MFCC vowel templates
    instead (offline, any language, no phones)."""
    from machinima.timecode import parse_rate

    rate = parse_rate(fps)
    if templates is not None:
        if audio.is_silent():
            return track_from_cues([], rate, "silent", audio.seconds, ["the audio is silent: the mouth stays closed (X)"], co)
        phones = mfcc_phones(audio, templates)
        return track_from_cues(phones_to_cues(phones, audio.seconds, co), rate, "mfcc", audio.seconds, [], co)
    an = analyze(audio, text, pronunciations)
    return track_from_cues(phones_to_cues(an.phones, an.duration, co), rate, an.mode, an.duration, an.notes, co)


# MFCC template vowel -> the ARPAbet phone that stands for it on the mouth timeline
TEMPLATE_PHONE = {"A": "AA", "I": "IY", "U": "UW", "E": "EH", "O": "AO"}


def mfcc_phones(audio: Audio, templates: VowelTemplates, *, quiet: float = 0.1, open_gain: float = 0.3) -> list[PhoneSegment]:
    """Pseudo-phones per 10 ms hop from a speaker's vowel templates (uLipSync's approach, offline):
    below ``quiet`` loudness a pause, below ``open_gain`` a slightly open consonant (N), else the
    nearest template's vowel. Consecutive equal hops are one segment."""
    w = templates.weights(audio.samples)
    gain = w.sum(axis=1)
    labels = ["SIL" if g < quiet else ("N" if g < open_gain else TEMPLATE_PHONE[VRM_CHANNELS[int(np.argmax(row))]])
              for g, row in zip(gain, w)]
    hop_s = HOP / audio.rate
    first = (FRAME / 2) / audio.rate - hop_s / 2  # the first window's centre, less half a hop
    out: list[PhoneSegment] = []
    for i, lab in enumerate(labels):
        t0, t1 = max(0.0, first + i * hop_s), first + (i + 1) * hop_s
        if out and out[-1].phone == lab:
            out[-1] = PhoneSegment(lab, out[-1].start, t1)
        else:
            out.append(PhoneSegment(lab, t0, t1))
    return out


def track_from_cues(cues: list[Cue], fps: Fraction, mode: str, duration: float, notes: list[str] | None = None,
                    co: Coarticulation | None = None) -> MouthTrack:
    """Every per-frame output of one cue timeline."""
    n = int(np.ceil(duration * float(fps)))
    return MouthTrack(fps, cues, cues_at_frames(cues, fps, n), vrm_weights(cues, fps, n, co), mode, duration, list(notes or []),
                      visemes_at_frames(cues, fps, n), viseme_weights(cues, fps, n, co))


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


def write_viseme_tsv(path: str | Path, cues: list[Cue]) -> Path:
    """The Oculus viseme timeline, like Rhubarb's TSV: ``start<TAB>viseme`` per change, ending in ``sil``."""
    lines, last = [], None
    for c in cues:
        if c.vis != last:
            lines.append(f"{c.start:.2f}\t{c.vis}")
            last = c.vis
    if cues:
        lines.append(f"{cues[-1].end:.2f}\tsil")
    atomic_write_text(path, "\n".join(lines) + "\n")
    return Path(path)


def read_rhubarb_json(path: str | Path) -> list[Cue]:
    doc = json.loads(Path(path).read_text())
    return [Cue(float(c["start"]), float(c["end"]), str(c["value"])) for c in doc["mouthCues"]]


def require_performer(take_path: str | Path, performer: str) -> None:
    """A mouth belongs to one of the take's performers: anyone else is an error that lists them."""
    from machinima.take import Take

    names = [str(p.get("name")) for p in Take.open(take_path).manifest.performers]
    if performer not in names:
        raise LipSyncError(f"take {Path(take_path).name} has no performer {performer!r} (its performers: {', '.join(names) or 'none'})",
                           hint="name one of them with --performer")


def write_to_take(take_path: str | Path, performer: str, track: MouthTrack, *, start_frame: int = 0) -> str:
    """Add the mouth animation to a take as the blend stream ``blend/<performer>-mouth``
    (timecode-stamped like every stream), starting ``start_frame`` frames after the take's
    timecode_in; returns the stream name."""
    from machinima.take import Take
    from machinima.timecode import ns_from_frames

    require_performer(take_path, performer)
    take = Take.open(take_path, writable=True)
    try:
        name = f"{performer}-mouth"
        store = take.store
        if any(st.name == f"blend/{name}" for st in store.streams()):
            raise LipSyncError(f"take {take.path.name} already has blend/{name} from an earlier analysis (a take's streams are never rewritten)",
                               hint="record or copy a new take for a new line")
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
        take.finalize(take.manifest.status if take.manifest.status != "recording" else "complete")
    finally:
        take.close()
    return f"blend/{name}"

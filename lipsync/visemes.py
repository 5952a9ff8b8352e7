"""Phonemes -> mouth shapes, with coarticulation, at the take's frame rate.

Three vocabularies, all from one timeline:
- Rhubarb / Hanna-Barbera shapes ``A``-``H`` and ``X`` (what Rhubarb Lip Sync, Moho, Spine and the
  Blender Rhubarb add-on use): A closed (M B P), B slightly open (most consonants, EE), C open
  (EH AE), D wide open (AA AH), E rounded (AO ER), F puckered (UW OW W), G teeth on lip (F V),
  H tongue up (L), X idle/silence.
- VRM ``A I U E O`` weights (VSeeFace, VRM avatars, VMC blendshapes).
- The 15 Oculus visemes (``sil PP FF TH DD kk CH SS nn RR aa E ih oh ou``).

Coarticulation (so mouths do not flicker): a shape starts ``anticipation`` seconds before its
phoneme (lips close early for M/B/P, round early for OO); a shape shorter than ``min_hold`` is
merged into its neighbour; silence shorter than ``gap_fill`` between speech keeps the last
shape relaxed (B) instead of snapping shut; weights (VRM/Oculus) are smoothed with separate
attack and release time constants.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

RHUBARB_SHAPES = ("A", "B", "C", "D", "E", "F", "G", "H", "X")
VRM_CHANNELS = ("A", "I", "U", "E", "O")
OCULUS_VISEMES = ("sil", "PP", "FF", "TH", "DD", "kk", "CH", "SS", "nn", "RR", "aa", "E", "ih", "oh", "ou")

# ARPAbet (stress digits stripped) -> (Rhubarb shape, Oculus viseme)
PHONE_TABLE: dict[str, tuple[str, str]] = {
    "SIL": ("X", "sil"), "+SPN+": ("X", "sil"), "+NSN+": ("X", "sil"), "+BREATH+": ("X", "sil"),
    "M": ("A", "PP"), "B": ("A", "PP"), "P": ("A", "PP"),
    "F": ("G", "FF"), "V": ("G", "FF"),
    "TH": ("B", "TH"), "DH": ("B", "TH"),
    "T": ("B", "DD"), "D": ("B", "DD"),
    "K": ("B", "kk"), "G": ("B", "kk"), "NG": ("B", "kk"), "HH": ("B", "kk"),
    "CH": ("B", "CH"), "JH": ("B", "CH"), "SH": ("B", "CH"), "ZH": ("B", "CH"),
    "S": ("B", "SS"), "Z": ("B", "SS"),
    "N": ("B", "nn"), "L": ("H", "nn"),
    "R": ("E", "RR"), "ER": ("E", "RR"),
    "Y": ("B", "ih"), "IY": ("B", "ih"), "IH": ("C", "ih"),
    "EH": ("C", "E"), "EY": ("C", "E"), "AE": ("C", "aa"),
    "AA": ("D", "aa"), "AH": ("C", "aa"), "AY": ("D", "aa"), "AW": ("D", "aa"),
    "AO": ("E", "oh"), "OW": ("F", "oh"), "OY": ("E", "oh"),
    "UH": ("F", "ou"), "UW": ("F", "ou"), "W": ("F", "ou"),
}

# Rhubarb shape -> VRM A I U E O weights
SHAPE_TO_VRM: dict[str, tuple[float, float, float, float, float]] = {
    "A": (0.0, 0.0, 0.0, 0.0, 0.0),
    "B": (0.1, 0.35, 0.0, 0.1, 0.0),
    "C": (0.3, 0.1, 0.0, 0.6, 0.0),
    "D": (1.0, 0.0, 0.0, 0.1, 0.0),
    "E": (0.2, 0.0, 0.1, 0.0, 0.7),
    "F": (0.0, 0.0, 0.9, 0.0, 0.3),
    "G": (0.05, 0.2, 0.0, 0.0, 0.0),
    "H": (0.3, 0.1, 0.0, 0.2, 0.0),
    "X": (0.0, 0.0, 0.0, 0.0, 0.0),
}

# How open each shape is (0 closed .. 1 wide), for mouth warps and sanity checks
SHAPE_OPENNESS = {"A": 0.0, "B": 0.2, "C": 0.55, "D": 1.0, "E": 0.5, "F": 0.3, "G": 0.1, "H": 0.45, "X": 0.05}


def base_phone(phone: str) -> str:
    p = phone.upper().rstrip("012")
    return p if p in PHONE_TABLE else ("SIL" if p.startswith("+") or p in ("<SIL>", "<S>", "</S>") else p)


@dataclass(frozen=True)
class PhoneSegment:
    phone: str
    start: float  # seconds
    end: float


@dataclass(frozen=True)
class Cue:
    """A mouth shape held from ``start`` to ``end`` seconds (Rhubarb's mouth cue)."""

    start: float
    end: float
    shape: str


@dataclass
class Coarticulation:
    anticipation: float = 0.04
    closure_anticipation: float = 0.06  # lips close early for M B P
    min_hold: float = 0.06
    gap_fill: float = 0.12
    attack: float = 0.03  # seconds, time constant of weights rising
    release: float = 0.06  # seconds, falling


def phones_to_cues(phones: list[PhoneSegment], duration: float, co: Coarticulation | None = None) -> list[Cue]:
    """Timeline of Rhubarb shapes covering [0, duration] with coarticulation applied."""
    co = co or Coarticulation()
    raw: list[Cue] = []
    for seg in sorted(phones, key=lambda s: s.start):
        shape = PHONE_TABLE.get(base_phone(seg.phone), ("B", "DD"))[0]
        lead = co.closure_anticipation if shape == "A" else (co.anticipation if shape != "X" else 0.0)
        raw.append(Cue(max(0.0, seg.start - lead), seg.end, shape))
    # lay cues on the timeline: a later cue's (anticipated) start cuts the previous one
    timeline: list[Cue] = []
    for cue in raw:
        if timeline and cue.start < timeline[-1].end:
            prev = timeline[-1]
            timeline[-1] = Cue(prev.start, max(prev.start, cue.start), prev.shape)
        if timeline and cue.start > timeline[-1].end:
            timeline.append(Cue(timeline[-1].end, cue.start, "X"))
        timeline.append(cue)
    if not timeline or timeline[0].start > 0:
        timeline.insert(0, Cue(0.0, timeline[0].start if timeline else duration, "X"))
    if timeline[-1].end < duration:
        timeline.append(Cue(timeline[-1].end, duration, "X"))
    timeline = [c for c in timeline if c.end > c.start]
    # short silences inside speech: relax instead of closing
    filled = []
    for i, c in enumerate(timeline):
        inside = 0 < i < len(timeline) - 1
        if c.shape == "X" and inside and c.end - c.start < co.gap_fill:
            c = Cue(c.start, c.end, "B")
        filled.append(c)
    # minimum hold: merge a too-short cue into the neighbour it resembles more (the previous)
    merged: list[Cue] = []
    for c in filled:
        if merged and (c.end - c.start < co.min_hold or c.shape == merged[-1].shape):
            if c.shape == merged[-1].shape or c.shape != "A":
                merged[-1] = Cue(merged[-1].start, c.end, merged[-1].shape)
                continue
        if merged and merged[-1].end - merged[-1].start < co.min_hold and merged[-1].shape != "A" and len(merged) > 1:
            prev = merged.pop()
            merged[-1] = Cue(merged[-1].start, prev.end, merged[-1].shape)
        merged.append(c)
    return merged


def oculus_timeline(phones: list[PhoneSegment]) -> list[tuple[float, float, str]]:
    return [(s.start, s.end, PHONE_TABLE.get(base_phone(s.phone), ("B", "DD"))[1]) for s in phones]


def cues_at_frames(cues: list[Cue], fps: float | Fraction, n_frames: int | None = None) -> list[str]:
    """The shape shown on each frame (sampled at the frame's middle)."""
    fps = float(fps)
    end = cues[-1].end if cues else 0.0
    n = n_frames if n_frames is not None else int(np.ceil(end * fps))
    starts = np.array([c.start for c in cues])
    out = []
    for f in range(n):
        t = (f + 0.5) / fps
        i = int(np.searchsorted(starts, t, side="right") - 1)
        out.append(cues[max(0, min(i, len(cues) - 1))].shape if cues else "X")
    return out


def vrm_weights(cues: list[Cue], fps: float | Fraction, n_frames: int | None = None, co: Coarticulation | None = None) -> np.ndarray:
    """(n_frames, 5) VRM A I U E O weights, smoothed with attack/release time constants."""
    co = co or Coarticulation()
    shapes = cues_at_frames(cues, fps, n_frames)
    target = np.array([SHAPE_TO_VRM[s] for s in shapes], np.float32).reshape(-1, 5)
    dt = 1.0 / float(fps)
    a_up = 1 - np.exp(-dt / co.attack)
    a_down = 1 - np.exp(-dt / co.release)
    out = np.zeros_like(target)
    cur = np.zeros(5, np.float32)
    for i, tgt in enumerate(target):
        k = np.where(tgt > cur, a_up, a_down)
        cur = cur + (tgt - cur) * k
        out[i] = cur
    return out

"""Phonemes -> mouth shapes, with coarticulation, at the take's frame rate.

Three vocabularies, all from one timeline:
- Rhubarb / Hanna-Barbera shapes ``A``-``H`` and ``X`` (what Rhubarb Lip Sync, Moho, Spine and the
  Blender Rhubarb add-on use): A closed (M B P), B slightly open (most consonants, EE), C open
  (EH AE), D wide open (AA AH), E rounded (AO ER), F puckered (UW OW W), G teeth on lip (F V),
  H tongue up (L), X idle/silence.
- The 15 Oculus visemes (``sil PP FF TH DD kk CH SS nn RR aa E ih oh ou``; VRChat's
  ``vrc.v_*`` shape keys): each cue carries one, and the scores' mouth classes come from them.
- VRM ``A I U E O`` weights (VSeeFace, VRM avatars, VMC blendshapes), from the viseme.

Coarticulation (so mouths do not flicker, and still land on the sound): lips close
``closure_anticipation`` early for M/B/P; a cue shorter than ``min_hold`` merges into the one
before; a pause shorter than ``gap_fill`` inside speech is a stop's closure or a held shape, not
a closed mouth; weights (VRM/Oculus) ease with separate attack and release time constants.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from machinima.mouth import OCULUS_VISEMES, RHUBARB_SHAPES, VRM_CHANNELS  # noqa: F401 (re-exported)

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

# Mouth classes the scores are kept in (what a viewer tells apart), from the Oculus viseme
MOUTH_CLASSES = ("closed", "open", "rounded", "fv", "wide", "other")
VISEME_CLASS = {"sil": "silence", "PP": "closed", "FF": "fv", "aa": "open", "E": "wide", "ih": "wide", "oh": "rounded", "ou": "rounded"}

# Oculus viseme -> VRM A I U E O weights (VRM has only vowels: consonants are a slightly open mouth)
VISEME_TO_VRM: dict[str, tuple[float, float, float, float, float]] = {
    "sil": (0.0, 0.0, 0.0, 0.0, 0.0), "PP": (0.0, 0.0, 0.0, 0.0, 0.0), "FF": (0.05, 0.2, 0.0, 0.0, 0.0),
    "TH": (0.15, 0.2, 0.0, 0.1, 0.0), "DD": (0.15, 0.25, 0.0, 0.1, 0.0), "kk": (0.2, 0.15, 0.0, 0.1, 0.0),
    "CH": (0.05, 0.2, 0.3, 0.0, 0.1), "SS": (0.05, 0.4, 0.0, 0.1, 0.0), "nn": (0.15, 0.2, 0.0, 0.1, 0.0),
    "RR": (0.1, 0.0, 0.3, 0.0, 0.3), "aa": (1.0, 0.0, 0.0, 0.1, 0.0), "E": (0.25, 0.2, 0.0, 0.8, 0.0),
    "ih": (0.05, 0.9, 0.0, 0.1, 0.0), "oh": (0.2, 0.0, 0.1, 0.0, 0.9), "ou": (0.0, 0.0, 0.95, 0.0, 0.2),
}
# a cue read from a Rhubarb file has a shape only: the viseme it stands for
SHAPE_VISEME = {"A": "PP", "B": "DD", "C": "E", "D": "aa", "E": "oh", "F": "ou", "G": "FF", "H": "nn", "X": "sil"}

# How open each shape is (0 closed .. 1 wide), for mouth warps and sanity checks
SHAPE_OPENNESS = {"A": 0.0, "B": 0.2, "C": 0.55, "D": 1.0, "E": 0.5, "F": 0.3, "G": 0.1, "H": 0.45, "X": 0.05}
STOPS = frozenset({"P", "B", "T", "D", "K", "G", "CH", "JH"})


def base_phone(phone: str) -> str:
    p = phone.upper().rstrip("012")
    return p if p in PHONE_TABLE else ("SIL" if p.startswith("+") or p in ("<SIL>", "<S>", "</S>") else p)


def phone_entry(phone: str) -> tuple[str, str]:
    """(Rhubarb shape, Oculus viseme) of an ARPAbet phone; an unknown phone is a consonant."""
    return PHONE_TABLE.get(base_phone(phone), ("B", "DD"))


def phone_class(phone: str) -> str:
    """The mouth class of an ARPAbet phone (``silence`` for pauses)."""
    return VISEME_CLASS.get(phone_entry(phone)[1], "other")


@dataclass(frozen=True)
class PhoneSegment:
    phone: str
    start: float  # seconds
    end: float


@dataclass(frozen=True)
class Cue:
    """A mouth shape held from ``start`` to ``end`` seconds (Rhubarb's mouth cue), with the
    Oculus viseme it came from (a cue read from a Rhubarb file gets its shape's viseme)."""

    start: float
    end: float
    shape: str
    viseme: str = ""

    @property
    def vis(self) -> str:
        return self.viseme or SHAPE_VISEME.get(self.shape, "sil")


@dataclass
class Coarticulation:
    """How phones become mouth cues. The defaults are tuned on espeak-ng truth
    (``bench/lipsync.py``): every lead or hold costs accuracy against the sound, so they are
    small; lips still close early for M/B/P."""

    anticipation: float = 0.0  # seconds a shape starts before its phone
    closure_anticipation: float = 0.01  # lips close early for M B P
    min_hold: float = 0.02  # shorter cues merge into a neighbour (closures are kept)
    gap_fill: float = 0.12  # pauses shorter than this inside speech do not close the mouth
    attack: float = 0.03  # seconds, time constant of weights rising
    release: float = 0.06  # seconds, falling


def _fill_short_pauses(segs: list[tuple[float, float, str]], gap_fill: float) -> list[tuple[float, float, str]]:
    """A pause shorter than ``gap_fill`` inside speech is not a closed mouth: before a stop it is
    the stop's closure (the stop starts there), else the previous phone is held through it."""
    out = list(segs)
    for i in range(1, len(out) - 1):
        s, e, p = out[i]
        if p != "SIL" or e - s >= gap_fill or out[i - 1][2] == "SIL" or out[i + 1][2] == "SIL":
            continue
        if out[i + 1][2] in STOPS:
            out[i + 1] = (s, out[i + 1][1], out[i + 1][2])
        else:
            out[i - 1] = (out[i - 1][0], e, out[i - 1][2])
        out[i] = (s, s, "SIL")  # emptied
    return [x for x in out if x[1] > x[0]]


def phones_to_cues(phones: list[PhoneSegment], duration: float, co: Coarticulation | None = None) -> list[Cue]:
    """Timeline of mouth cues covering [0, duration] with coarticulation applied."""
    co = co or Coarticulation()
    segs = [(s.start, s.end, base_phone(s.phone)) for s in sorted(phones, key=lambda s: s.start) if s.end > s.start]
    segs = [(s, e, "SIL" if phone_entry(p)[0] == "X" else p) for s, e, p in segs]
    segs = _fill_short_pauses(segs, co.gap_fill)
    # lay cues on the timeline: a later cue's (anticipated) start cuts the previous one
    timeline: list[Cue] = []
    for start, end, p in segs:
        shape, vis = phone_entry(p)
        lead = co.closure_anticipation if vis == "PP" else (co.anticipation if vis != "sil" else 0.0)
        cue = Cue(max(0.0, start - lead), end, shape, vis)
        if timeline and cue.start < timeline[-1].end:
            prev = timeline[-1]
            timeline[-1] = Cue(prev.start, max(prev.start, cue.start), prev.shape, prev.viseme)
        if timeline and cue.start > timeline[-1].end:
            timeline.append(Cue(timeline[-1].end, cue.start, "X", "sil"))
        timeline.append(cue)
    if not timeline or timeline[0].start > 0:
        timeline.insert(0, Cue(0.0, timeline[0].start if timeline else duration, "X", "sil"))
    if timeline[-1].end < duration:
        timeline.append(Cue(timeline[-1].end, duration, "X", "sil"))
    # same mouth twice in a row is one cue; a too-short cue merges into the previous one
    # (a closure for M/B/P always shows: it is the one shape viewers check)
    merged: list[Cue] = []
    for c in (c for c in timeline if c.end > c.start):
        if merged and (c.shape, c.viseme) == (merged[-1].shape, merged[-1].viseme):
            merged[-1] = Cue(merged[-1].start, c.end, c.shape, c.viseme)
        elif merged and c.end - c.start < co.min_hold and c.viseme != "PP":
            merged[-1] = Cue(merged[-1].start, c.end, merged[-1].shape, merged[-1].viseme)
        else:
            merged.append(c)
    return merged


def oculus_timeline(cues: list[Cue]) -> list[tuple[float, float, str]]:
    """(start, end, Oculus viseme) per cue."""
    return [(c.start, c.end, c.vis) for c in cues]


def cue_index_at_frames(cues: list[Cue], fps: float | Fraction, n_frames: int | None = None) -> np.ndarray:
    """Index of the cue shown on each frame (sampled at the frame's middle)."""
    fps = float(fps)
    end = cues[-1].end if cues else 0.0
    n = n_frames if n_frames is not None else int(np.ceil(end * fps))
    if not cues:
        return np.full(n, -1, int)
    starts = np.array([c.start for c in cues])
    t = (np.arange(n) + 0.5) / fps
    return np.clip(np.searchsorted(starts, t, side="right") - 1, 0, len(cues) - 1)


def cues_at_frames(cues: list[Cue], fps: float | Fraction, n_frames: int | None = None) -> list[str]:
    """The Rhubarb shape shown on each frame."""
    return [cues[i].shape if i >= 0 else "X" for i in cue_index_at_frames(cues, fps, n_frames)]


def visemes_at_frames(cues: list[Cue], fps: float | Fraction, n_frames: int | None = None) -> list[str]:
    """The Oculus viseme shown on each frame."""
    return [cues[i].vis if i >= 0 else "sil" for i in cue_index_at_frames(cues, fps, n_frames)]


def smooth_weights(target: np.ndarray, fps: float | Fraction, co: Coarticulation | None = None) -> np.ndarray:
    """Per-frame target weights (n, k) eased with the attack (rising) and release (falling)
    time constants, so a mouth never snaps between shapes."""
    co = co or Coarticulation()
    dt = 1.0 / float(fps)
    a_up = 1 - np.exp(-dt / co.attack)
    a_down = 1 - np.exp(-dt / co.release)
    out = np.zeros_like(target, dtype=np.float32)
    cur = np.zeros(target.shape[1], np.float32)
    for i, tgt in enumerate(target):
        k = np.where(tgt > cur, a_up, a_down)
        cur = cur + (tgt - cur) * k
        out[i] = cur
    return out


def vrm_weights(cues: list[Cue], fps: float | Fraction, n_frames: int | None = None, co: Coarticulation | None = None) -> np.ndarray:
    """(n_frames, 5) VRM A I U E O weights, from each frame's viseme, smoothed."""
    target = np.array([VISEME_TO_VRM[v] for v in visemes_at_frames(cues, fps, n_frames)], np.float32).reshape(-1, 5)
    return smooth_weights(target, fps, co)


def viseme_weights(cues: list[Cue], fps: float | Fraction, n_frames: int | None = None, co: Coarticulation | None = None) -> np.ndarray:
    """(n_frames, 15) Oculus viseme weights (``OCULUS_VISEMES`` order): the frame's viseme at 1,
    cross-faded with the same time constants as the VRM weights."""
    vis = visemes_at_frames(cues, fps, n_frames)
    target = np.zeros((len(vis), len(OCULUS_VISEMES)), np.float32)
    target[np.arange(len(vis)), [OCULUS_VISEMES.index(v) for v in vis]] = 1.0
    return smooth_weights(target, fps, co)

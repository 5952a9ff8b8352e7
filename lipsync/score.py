"""Lip sync held against truth: what share of speech the mouth shows the right class, where it
goes wrong, and how far each mouth change lands from the sound's.

Pure logic (timelines in, figures out). Classes are what a viewer tells apart
(``visemes.MOUTH_CLASSES``: closed M/B/P, open vowels, rounded O/U, F/V, wide E/I, other
consonants); silence frames are not scored, since a closed mouth in a pause is easy and would
hide everything else. Every figure is meant to sit beside the two trivial mouths in the same
run: ``always_closed`` and ``loudness_classes`` (open when loud, slightly open when quieter,
closed when quiet).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .mfcc import mfcc
from .visemes import MOUTH_CLASSES, VISEME_CLASS, Cue, PhoneSegment, phone_class, visemes_at_frames

SILENCE = "silence"


def truth_frames(phones: list[PhoneSegment], fps: float, n_frames: int) -> list[str]:
    """Mouth class of the phone sounding at each frame's middle (``silence`` outside phones)."""
    out = [SILENCE] * n_frames
    t = (np.arange(n_frames) + 0.5) / fps
    for seg in phones:
        cls = phone_class(seg.phone)
        for f in np.nonzero((t >= seg.start) & (t < seg.end))[0]:
            out[int(f)] = cls
    return out


def track_frames(cues: list[Cue], fps: float, n_frames: int) -> list[str]:
    """Mouth class a track shows on each frame (from its visemes)."""
    return [VISEME_CLASS.get(v, "other") for v in visemes_at_frames(cues, fps, n_frames)]


def always_closed(n_frames: int) -> list[str]:
    return ["closed"] * n_frames


def loudness_classes(samples: np.ndarray, rate: int, fps: float, n_frames: int, *, low: float = 0.15, high: float = 0.45) -> list[str]:
    """The naive mouth: loudness relative to the line's 95th percentile, ``closed`` below
    ``low``, ``other`` (slightly open) below ``high``, else ``open``. 16 kHz audio."""
    _, rms = mfcc(samples)  # 10 ms hops, 25 ms windows
    level = rms / (np.percentile(rms, 95) + 1e-9)
    hop_t = (np.arange(level.size) * 160 + 200) / rate  # window centres
    t = (np.arange(n_frames) + 0.5) / fps
    lv = np.interp(t, hop_t, level)
    return ["closed" if v < low else ("other" if v < high else "open") for v in lv]


@dataclass
class ClassScore:
    """Accuracy on speech frames, recall per truth class, and the confusion matrix
    (``confusion[truth][predicted]`` in frames; predicted may be ``silence``)."""

    accuracy: float
    frames: int
    per_class: dict[str, float] = field(default_factory=dict)
    confusion: dict[str, dict[str, int]] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"accuracy": round(self.accuracy, 3), "speech_frames": self.frames,
                "per_class": {k: round(v, 3) for k, v in self.per_class.items()}, "confusion": self.confusion}


def score_classes(pred: list[str], truth: list[str]) -> ClassScore:
    """Score ``pred`` on the frames where ``truth`` is speech."""
    cols = list(MOUTH_CLASSES) + [SILENCE]
    conf = {t: {p: 0 for p in cols} for t in MOUTH_CLASSES}
    for p, t in zip(pred, truth):
        if t != SILENCE:
            conf[t][p if p in conf[t] else "other"] += 1
    n = sum(sum(r.values()) for r in conf.values())
    right = sum(conf[c][c] for c in MOUTH_CLASSES)
    per = {c: conf[c][c] / sum(conf[c].values()) for c in MOUTH_CLASSES if sum(conf[c].values())}
    return ClassScore(right / max(n, 1), n, per, conf)


def changes(seq: list[str], fps: float) -> list[tuple[float, str]]:
    """(time, new class) at every frame where the class changes (time of the frame boundary)."""
    return [(i / fps, seq[i]) for i in range(1, len(seq)) if seq[i] != seq[i - 1]]


def change_pairs(pred: list[str], truth: list[str], fps: float, *, window: float = 0.25) -> tuple[np.ndarray, int]:
    """Each change of the truth into a speech class paired with a change of ``pred`` into the
    same class, one to one: the closest pairs (within ``window`` seconds) are taken first, and a
    change of ``pred`` once paired serves no other truth change. Returns (offsets in ms per truth
    change, ``inf`` where unpaired; the number of ``pred`` changes into speech that pair with
    nothing: spurious changes).

    One to one because the issue's figure is the offset *of each mouth change*: with a nearest-
    change rule one change of the output answered for two truth changes (a vowel's change matched
    the vowel before it too, 200 ms away, when the one between was misheard), so a misheard
    change counted as made and late, and a flickering output earned matches it never made."""
    truth_ch = [(t, c) for t, c in changes(truth, fps) if c != SILENCE]
    pred_ch = [(t, c) for t, c in changes(pred, fps) if c != SILENCE]
    cand = sorted((abs(pt - tt), i, j) for i, (tt, tc) in enumerate(truth_ch) for j, (pt, pc) in enumerate(pred_ch)
                  if pc == tc and abs(pt - tt) <= window + 1e-9)
    out = np.full(len(truth_ch), np.inf)
    used: set[int] = set()
    for d, i, j in cand:
        if np.isinf(out[i]) and j not in used:
            out[i] = d * 1000
            used.add(j)
    return out, len(pred_ch) - len(used)


def change_offsets(pred: list[str], truth: list[str], fps: float, *, window: float = 0.25) -> np.ndarray:
    """For each change of the truth into a speech class, the distance in ms to the change of
    ``pred`` into the same class paired with it (``change_pairs``, one to one); ``inf`` when there
    is none within ``window`` seconds (a change the mouth never makes counts as missed, not as
    small)."""
    return change_pairs(pred, truth, fps, window=window)[0]


def offset_summary(offsets_ms: np.ndarray) -> dict:
    """p50 / p90 of the change offsets (``inf`` where misses push past them), the share missed,
    and p50 / p90 over the changes made only (how well timed the changes it makes are)."""
    if offsets_ms.size == 0:
        return {"changes": 0}
    finite = np.where(np.isfinite(offsets_ms), offsets_ms, 1e12)  # percentiles of inf are nan
    p50, p90 = (float(np.percentile(finite, q)) for q in (50, 90))
    made = offsets_ms[np.isfinite(offsets_ms)]
    return {"changes": int(offsets_ms.size), "p50_ms": round(p50, 1) if p50 < 1e9 else None,
            "p90_ms": round(p90, 1) if p90 < 1e9 else None, "missed": round(float(np.mean(~np.isfinite(offsets_ms))), 3),
            # timing alone: the changes the output does make (recognition errors left out)
            "made_p50_ms": round(float(np.percentile(made, 50)), 1) if made.size else None,
            "made_p90_ms": round(float(np.percentile(made, 90)), 1) if made.size else None}


def pooled(pairs: list[tuple[list[str], list[str]]], fps: float) -> tuple[ClassScore, dict]:
    """Class score and change-offset summary over several lines: ``[(pred, truth), ...]``; the
    summary also gives the share of the output's changes that pair with no truth change
    (``spurious``: flicker, which no offset figure sees)."""
    pred = [p for pr, _ in pairs for p in pr]
    truth = [t for _, tr in pairs for t in tr]
    each = [change_pairs(pr, tr, fps) for pr, tr in pairs]
    offsets = np.concatenate([o for o, _ in each]) if pairs else np.zeros(0)
    summary = offset_summary(offsets)
    made = sum(int(np.isfinite(o).sum()) + n for o, n in each)  # the output's changes into speech
    if made:
        summary["spurious"] = round(sum(n for _, n in each) / made, 3)
    return score_classes(pred, truth), summary

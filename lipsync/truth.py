"""Speech with known truth, by construction: separately spoken words (Debian's ``espeak-ng``)
laid on a timeline with silences at known times. Used by the tests, the benchmark and
``machinima lipsync calibrate --synthetic``.

Each word is chosen for one clear mouth shape: ``pa`` (closed, then wide open), ``me``
(closed, then spread), ``moo`` (closed, then puckered), ``ma`` (closed, then open); every word ends on its vowel.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .audio import ANALYSIS_RATE, load_audio
from .errors import LipSyncError

# word -> the shape class of its vowel
WORD_VOWEL_CLASS = {"pa": "open", "ma": "open", "me": "spread", "moo": "rounded", "mom": "open", "boo": "rounded", "bee": "spread"}
SHAPE_CLASS = {"A": "closed", "B": "spread", "C": "open", "D": "open", "E": "rounded", "F": "rounded", "G": "spread", "H": "open", "X": "silence"}


@dataclass
class TruthSpan:
    word: str
    start: float  # voiced onset, seconds
    end: float  # voiced offset


def speak(text: str, out: Path, *, voice: str = "en-us", speed: int = 150) -> Path:
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise LipSyncError("espeak-ng is not installed", hint="apt-get install espeak-ng (./dev test installs it)")
    subprocess.run([exe, "-v", voice, "-s", str(speed), "-w", str(out), text], check=True, capture_output=True)
    return out


def _voiced_span(x: np.ndarray, rate: int) -> tuple[int, int]:
    hop = rate // 100
    n = x.size // hop
    rms = np.sqrt(np.mean(x[: n * hop].reshape(n, hop) ** 2, axis=1))
    on = np.nonzero(rms > 0.1 * rms.max())[0]
    return int(on[0] * hop), int((on[-1] + 1) * hop)


def build(words: list[str], gap: float = 0.5, lead: float = 0.4, rate: int = ANALYSIS_RATE) -> tuple[np.ndarray, list[TruthSpan]]:
    """Samples (16 kHz) and the voiced span of each word, words separated by ``gap`` seconds."""
    spans, parts = [], [np.zeros(int(lead * rate), np.float32)]
    t = lead
    with tempfile.TemporaryDirectory() as tmp:
        for i, w in enumerate(words):
            a = load_audio(speak(w, Path(tmp) / f"{i}.wav"), rate).samples
            s0, s1 = _voiced_span(a, rate)
            seg = a[s0:s1]
            spans.append(TruthSpan(w, t, t + seg.size / rate))
            parts += [seg, np.zeros(int(gap * rate), np.float32)]
            t += seg.size / rate + gap
    return np.concatenate(parts), spans


def truth_classes(spans: list[TruthSpan], fps: float, n_frames: int) -> list[str | None]:
    """Expected shape class per frame: 'silence' between words; the word's vowel class over the
    last 60 % of its voiced span; None (not scored) over its first consonant part."""
    out: list[str | None] = []
    for f in range(n_frames):
        t = (f + 0.5) / fps
        cls: str | None = "silence"
        for s in spans:
            if s.start - 0.08 <= t < s.end + 0.08:  # 80 ms tolerance at the edges
                cls = WORD_VOWEL_CLASS.get(s.word) if t >= s.start + 0.4 * (s.end - s.start) and t < s.end else None
                break
        out.append(cls)
    return out


def accuracy(shapes: list[str], truth: list[str | None]) -> float:
    scored = [(SHAPE_CLASS[s], t) for s, t in zip(shapes, truth) if t is not None]
    return sum(a == b for a, b in scored) / max(1, len(scored))

"""Speech with exact truth: espeak-ng's library speaks whole sentences and reports each phoneme
with its position in the audio it made.

libespeak-ng (Debian's ``libespeak-ng1``, which ``espeak-ng`` pulls in) is driven through
ctypes (``lipsync.espeak``, a fresh library per line) in synchronous mode with phoneme events on
(``espeakINITIALIZE_PHONEME_EVENTS``, names in IPA): the synth callback receives the audio and,
beside it, one ``espeakEVENT_PHONEME`` per phoneme with its ``audio_position`` in ms of that audio. So the truth is the synthesiser's own
timeline, not a detector's guess, and it holds for continuous speech (coarticulated sentences,
no silences put in by hand) in any voice and at any speed espeak-ng has. Pauses come as
phoneme events with an empty name.

One correction makes the timeline describe the mouth: espeak-ng stamps a stop (p t k b d g
tʃ dʒ) at its burst and leaves the closure before it (40-65 ms of silence for p t k) inside the
previous phoneme, yet during the closure the lips are already shut for p and b. So the quiet run
right before a stop's burst (``CLOSURE_QUIET`` of the line's loudness, at most ``MAX_CLOSURE``)
is given to the stop. And an r-coloured vowel (one event, ``ɑːɹ`` in "dark") is the vowel for
its first half and r for its second (``RHOTIC_VOWEL_SHARE``), as the mouth moves to r.

Used by the tests, the benchmark and ``machinima lipsync calibrate --synthetic``.
"""

from __future__ import annotations

import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .audio import ANALYSIS_RATE
from .errors import LipSyncError
from .visemes import STOPS, PhoneSegment

# Sentences from the Harvard list (IEEE Recommended Practice for Speech Quality Measurements,
# 1969; public domain), plus two of ours rich in lip shapes. Every word is in CMUdict, so the
# aligned mode can be scored on them.
SENTENCES = (
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "It's easy to tell the depth of a well.",
    "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.",
    "The juice of lemons makes fine punch.",
    "The box was thrown beside the parked truck.",
    "Four hours of steady work faced us.",
    "Bob moved five heavy boxes of purple paper.",
    "Who would know how you feel, my old friend?",
)

# The truth set: the sentences above as one continuous line, in several voices and speeds
# (American male and female, British, Scottish; 130-200 words per minute).
TRUTH_VOICES = (("en-us", 160), ("en", 130), ("en-us+f3", 200), ("en-gb-scotland", 180))

# espeak-ng's English phonemes in IPA -> ARPAbet (what the recogniser and the viseme table speak).
# Length marks are dropped first; a name not here falls back to its longest known prefix.
IPA_TO_ARPABET = {
    "p": "P", "b": "B", "m": "M", "f": "F", "v": "V", "θ": "TH", "ð": "DH", "t": "T", "d": "D",
    "k": "K", "ɡ": "G", "g": "G", "ŋ": "NG", "n": "N", "l": "L", "ɬ": "L", "ɹ": "R", "r": "R",
    "h": "HH", "x": "HH", "s": "S", "z": "Z", "ʃ": "SH", "ʒ": "ZH", "tʃ": "CH", "dʒ": "JH",
    "j": "Y", "w": "W", "ʔ": "T", "ɾ": "D", "əl": "L",
    "i": "IY", "ɪ": "IH", "ᵻ": "IH", "e": "EY", "eɪ": "EY", "ɛ": "EH", "eə": "EH", "æ": "AE",
    "a": "AE", "aɪ": "AY", "aʊ": "AW", "ɑ": "AA", "ɒ": "AO", "ɑə": "AA", "ʌ": "AH", "ə": "AH",
    "ɐ": "AH", "ɜ": "ER", "ɚ": "ER", "əɹ": "ER", "ʌɹ": "ER", "ɔ": "AO", "ɔə": "AO",
    "ɔɪ": "OY", "o": "OW", "oʊ": "OW", "əʊ": "OW", "oə": "OW", "ʌʉ": "OW",
    "ʊ": "UH", "u": "UW", "ʉ": "UW",
}

_PAUSE = "SIL"
CLOSURE_QUIET = 0.08  # share of the line's 95th-percentile loudness (2.5 ms hops)
MAX_CLOSURE = 0.1  # seconds
RHOTIC_VOWEL_SHARE = 0.5  # of an r-coloured vowel (ɑːɹ, ɔːɹ ...) before its r


def ipa_to_arpabet(name: str) -> str:
    """One espeak-ng IPA phoneme name -> ARPAbet; an empty name is a pause (``SIL``)."""
    p = name.replace("ː", "").replace("ˑ", "").replace("\u032a", "")  # length marks, dental diacritic
    if not p:
        return _PAUSE
    for n in range(len(p), 0, -1):
        if p[:n] in IPA_TO_ARPABET:
            return IPA_TO_ARPABET[p[:n]]
    raise LipSyncError(f"espeak-ng phoneme {name!r} has no ARPAbet equivalent", hint="add it to lipsync.truth.IPA_TO_ARPABET")


@dataclass
class Utterance:
    """Speech at the analysis rate and the phoneme timeline espeak-ng made it from."""

    samples: np.ndarray  # float32 mono, ANALYSIS_RATE
    phones: list[PhoneSegment]  # ARPAbet, covering [0, duration]; pauses are SIL
    text: str
    voice: str
    speed: int
    rate: int = ANALYSIS_RATE

    @property
    def seconds(self) -> float:
        return self.samples.size / self.rate


def synthesize(text: str, *, voice: str = "en-us", speed: int = 160) -> Utterance:
    """Speak ``text`` (any length: whole sentences are spoken as espeak-ng phrases them) and
    return 16 kHz audio with its phoneme timeline."""
    from scipy.signal import resample_poly

    from .espeak import EspeakUnavailable, speak_fresh

    try:
        rate, pcm, events = speak_fresh(text, voice, speed)
    except EspeakUnavailable as exc:
        raise LipSyncError(str(exc), hint="apt-get install espeak-ng (./dev test installs it); `espeak-ng --voices=en` lists voices") from None
    raw = np.frombuffer(pcm, "<i2")
    if raw.size == 0:
        raise LipSyncError(f"espeak-ng made no audio for {text!r}")
    g = np.gcd(ANALYSIS_RATE, rate)
    samples = resample_poly(raw.astype(np.float32) / 32768.0, ANALYSIS_RATE // g, rate // g).astype(np.float32)
    duration = samples.size / ANALYSIS_RATE
    phones: list[PhoneSegment] = []
    marks = sorted(events) + [(int(duration * 1000), "")]
    for (ms, name), (next_ms, _) in zip(marks, marks[1:]):
        start, end = ms / 1000.0, min(next_ms / 1000.0, duration)
        if end <= start:
            continue
        phone = ipa_to_arpabet(name)
        if phones and phone == _PAUSE and phones[-1].phone == _PAUSE:
            phones[-1] = PhoneSegment(_PAUSE, phones[-1].start, end)
            continue
        if name.endswith("ɹ") and phone not in ("R", "ER"):  # an r-coloured vowel: the vowel, then r
            mid = start + RHOTIC_VOWEL_SHARE * (end - start)
            phones += [PhoneSegment(phone, start, mid), PhoneSegment("R", mid, end)]
            continue
        phones.append(PhoneSegment(phone, start, end))
    if phones and phones[0].start > 0:
        phones.insert(0, PhoneSegment(_PAUSE, 0.0, phones[0].start))
    return Utterance(samples, closures_to_stops(phones, samples), text, voice, speed)


def closures_to_stops(phones: list[PhoneSegment], samples: np.ndarray, rate: int = ANALYSIS_RATE) -> list[PhoneSegment]:
    """Move each stop's start back over the quiet closure before its burst (see the module doc)."""
    hop = rate // 400  # 2.5 ms
    n = samples.size // hop
    rms = np.sqrt(np.mean(samples[: n * hop].reshape(n, hop) ** 2, axis=1))
    quiet = rms < CLOSURE_QUIET * np.percentile(rms, 95)
    out = list(phones)
    for i in range(1, len(out)):
        prev, stop = out[i - 1], out[i]
        if stop.phone not in STOPS or prev.phone == _PAUSE:
            continue
        k = j = int(stop.start * rate) // hop
        while j > 0 and quiet[j - 1] and (k - j + 1) * hop <= MAX_CLOSURE * rate and (j - 1) * hop / rate > prev.start:
            j -= 1
        start = j * hop / rate
        if start < stop.start:
            out[i - 1] = PhoneSegment(prev.phone, prev.start, start)
            out[i] = PhoneSegment(stop.phone, start, stop.end)
    return out


def truth_set(voices: tuple[tuple[str, int], ...] = TRUTH_VOICES, sentences: tuple[str, ...] = SENTENCES) -> list[Utterance]:
    """The sentences spoken as one line in each (voice, words per minute)."""
    return [synthesize(" ".join(sentences), voice=v, speed=s) for v, s in voices]


def write_wav(path: str | Path, samples: np.ndarray, rate: int = ANALYSIS_RATE) -> Path:
    """16-bit mono WAV (what every tool reads)."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return Path(path)


def speak(text: str, out: str | Path, *, voice: str = "en-us", speed: int = 160) -> Path:
    """Speak ``text`` into a WAV file at the analysis rate."""
    return write_wav(out, synthesize(text, voice=voice, speed=speed).samples)

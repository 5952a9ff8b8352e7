"""Speech with exact truth: espeak-ng's library speaks whole sentences and reports each phoneme
with its position in the audio it made.

libespeak-ng (Debian's ``libespeak-ng1``, which ``espeak-ng`` pulls in) is driven through
ctypes in synchronous mode with phoneme events on (``espeakINITIALIZE_PHONEME_EVENTS``, names
in IPA): the synth callback receives the audio and, beside it, one ``espeakEVENT_PHONEME`` per
phoneme with its ``audio_position`` in ms of that audio. So the truth is the synthesiser's own
timeline, not a detector's guess, and it holds for continuous speech (coarticulated sentences,
no silences put in by hand) in any voice and at any speed espeak-ng has. Pauses come as
phoneme events with an empty name.

One correction makes the timeline describe the mouth: espeak-ng stamps a stop (p t k b d g
tS dZ) at its burst and leaves the closure before it (40-65 ms of silence for p t k) inside the
previous phoneme, yet during the closure the lips are already shut for p and b. So the quiet run
right before a stop's burst (``CLOSURE_QUIET`` of the line's loudness, at most ``MAX_CLOSURE``)
is given to the stop. And an r-coloured vowel (one event, ``ɑːɹ`` in "dark") is the vowel for
its first half and r for its second (``RHOTIC_VOWEL_SHARE``), as the mouth moves to r. Used by the tests, the benchmark and
``machinima lipsync calibrate --synthetic``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .audio import ANALYSIS_RATE
from .errors import LipSyncError
from .visemes import PhoneSegment

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
STOPS = frozenset({"P", "B", "T", "D", "K", "G", "CH", "JH"})
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


# --- libespeak-ng through ctypes -----------------------------------------------------------------
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INIT_PHONEME_EVENTS, _INIT_PHONEME_IPA, _INIT_DONT_EXIT = 0x0001, 0x0002, 0x8000
_EVENT_LIST_TERMINATED, _EVENT_PHONEME = 0, 7
_RATE = 1  # espeakRATE, words per minute
_POS_CHARACTER, _CHARS_UTF8, _ENDPAUSE = 1, 1, 0x1000


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    """``espeak_EVENT`` from speak_lib.h."""

    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint), ("text_position", ctypes.c_int),
                ("length", ctypes.c_int), ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", _EventId)]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


class _Espeak:
    """The process-wide library instance (espeak-ng keeps global state: one synthesis at a time)."""

    def __init__(self) -> None:
        lib = None
        for name in ("libespeak-ng.so.1", ctypes.util.find_library("espeak-ng")):
            if name:
                try:
                    lib = ctypes.CDLL(name)
                    break
                except OSError:
                    continue
        if lib is None:
            raise LipSyncError("libespeak-ng is not installed", hint="apt-get install espeak-ng (./dev test installs it)")
        lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                                     ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self.rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, None,
                                          _INIT_PHONEME_EVENTS | _INIT_PHONEME_IPA | _INIT_DONT_EXIT)
        if self.rate <= 0:
            raise LipSyncError("libespeak-ng could not start (its data folder is missing?)")
        self.lib = lib
        self.lock = threading.Lock()
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[int, str]] = []
        self._cb = _CALLBACK(self._on_synth)  # kept referenced: the library calls it
        lib.espeak_SetSynthCallback(self._cb)

    def _on_synth(self, wav, n: int, events) -> int:
        if n > 0 and wav:
            self._chunks.append(np.ctypeslib.as_array(wav, (n,)).copy())
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            if events[i].type == _EVENT_PHONEME:
                self._events.append((int(events[i].audio_position), events[i].id.string.decode("utf-8", "replace")))
            i += 1
        return 0

    def synth(self, text: str, voice: str, speed: int) -> tuple[np.ndarray, list[tuple[int, str]]]:
        """(int16 samples at ``self.rate``, [(ms, IPA phoneme)])."""
        with self.lock:
            if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise LipSyncError(f"espeak-ng has no voice {voice!r}", hint="`espeak-ng --voices=en` lists them")
            self.lib.espeak_SetParameter(_RATE, int(speed), 0)
            self._chunks, self._events = [], []
            data = text.encode("utf-8")
            err = self.lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8 | _ENDPAUSE, None, None)
            self.lib.espeak_Synchronize()
            if err != 0:
                raise LipSyncError(f"espeak-ng could not speak the text (error {err})")
            audio = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
            return audio, list(self._events)


_LIB: _Espeak | None = None
_LIB_LOCK = threading.Lock()


def _espeak() -> _Espeak:
    global _LIB
    with _LIB_LOCK:
        if _LIB is None:
            _LIB = _Espeak()
        return _LIB


def synthesize(text: str, *, voice: str = "en-us", speed: int = 160) -> Utterance:
    """Speak ``text`` (any length: whole sentences are spoken as espeak-ng phrases them) and
    return 16 kHz audio with its phoneme timeline."""
    from scipy.signal import resample_poly

    lib = _espeak()
    raw, events = lib.synth(text, voice, speed)
    if raw.size == 0:
        raise LipSyncError(f"espeak-ng made no audio for {text!r}")
    g = np.gcd(ANALYSIS_RATE, lib.rate)
    samples = resample_poly(raw.astype(np.float32) / 32768.0, ANALYSIS_RATE // g, lib.rate // g).astype(np.float32)
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

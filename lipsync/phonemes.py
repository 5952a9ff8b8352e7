"""Speech -> timed phonemes with PocketSphinx (its English model ships inside the wheel).

Two modes, as Rhubarb Lip Sync has:
- ``phone_loop``: phones recognised freely (no text needed; any English speech).
- ``align``: the dialogue text is force-aligned to the audio (two passes: words, then phones):
  better timing, because the decoder only has to find *when*, not *what*.
PocketSphinx frames are 10 ms.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from .audio import ANALYSIS_RATE, Audio
from .errors import LipSyncError, TranscriptError
from .visemes import PhoneSegment

FRAME_S = 0.01


@dataclass
class Analysis:
    phones: list[PhoneSegment]
    mode: str
    duration: float
    notes: list[str]


def _model_dir() -> str:
    from pocketsphinx import get_model_path

    return os.path.join(get_model_path(), "en-us")


def normalize_text(text: str) -> list[str]:
    """Words as the dictionary spells them: lower case, no punctuation but inner apostrophes."""
    words = re.findall(r"[a-z0-9]+(?:'[a-z]+)?", text.lower().replace("\u2019", "'"))
    return words


_DECODERS: dict[str, object] = {}


def _decoder(kind: str):
    """Decoders are reused: loading the acoustic model costs more than decoding a line."""
    from pocketsphinx import Decoder

    if kind not in _DECODERS:
        if kind == "phone":
            _DECODERS[kind] = Decoder(allphone=os.path.join(_model_dir(), "en-us-phone.lm.bin"), lm=None,
                                      samprate=ANALYSIS_RATE, loglevel="ERROR", beam=1e-20, pbeam=1e-20, lw=2.0)
        else:
            _DECODERS[kind] = Decoder(lm=None, samprate=ANALYSIS_RATE, loglevel="ERROR", beam=1e-100, pbeam=1e-100,
                                      wbeam=1e-80, bestpath=False)
    return _DECODERS[kind]


def phone_loop(audio: Audio) -> list[PhoneSegment]:
    _check_rate(audio)
    d = _decoder("phone")
    d.start_utt()
    d.process_raw(audio.pcm16(), full_utt=True)
    d.end_utt()
    return [PhoneSegment(s.word, s.start_frame * FRAME_S, (s.end_frame + 1) * FRAME_S) for s in d.seg()]


def align(audio: Audio, text: str, pronunciations: dict[str, str] | None = None) -> list[PhoneSegment]:
    """Force-align ``text``; unknown words raise ``TranscriptError`` naming them."""
    _check_rate(audio)
    words = normalize_text(text)
    if not words:
        raise TranscriptError("the dialogue text has no words")
    d = _decoder("align")
    for word, pron in (pronunciations or {}).items():
        d.add_word(word.lower(), pron.upper(), True)
    unknown = sorted({w for w in words if d.lookup_word(w) is None})
    if unknown:
        raise TranscriptError(
            f"words not in the pronunciation dictionary: {', '.join(unknown)}",
            hint="spell numbers and names as they sound, or give --pron WORD='AH D AH' (ARPAbet)",
        )
    pcm = audio.pcm16()
    try:
        d.set_align_text(" ".join(words))
        for second_pass in (False, True):
            if second_pass:
                d.set_alignment()
            d.start_utt()
            d.process_raw(pcm, full_utt=True)
            d.end_utt()
        alignment = d.get_alignment()
    except RuntimeError as exc:
        raise TranscriptError(f"the text could not be aligned to the audio ({exc})", hint="check that the text matches what is said") from None
    if alignment is None:
        raise TranscriptError("the text could not be aligned to the audio")
    out = []
    for word in alignment:
        for p in word:
            out.append(PhoneSegment(p.name, p.start * FRAME_S, (p.start + p.duration) * FRAME_S))
    return out


def analyze(audio: Audio, text: str | None = None, pronunciations: dict[str, str] | None = None) -> Analysis:
    """Phones of ``audio``: aligned to ``text`` when given (falls back to the phone loop, with
    a note, when alignment fails); silent audio gives no phones and a note."""
    notes: list[str] = []
    if audio.is_silent():
        return Analysis([], "silent", audio.seconds, ["the audio is silent: the mouth stays closed (X)"])
    if audio.clipped_fraction > 0.01:
        notes.append(f"{audio.clipped_fraction:.1%} of the samples are clipped: timing may suffer")
    if text:
        try:
            return Analysis(align(audio, text, pronunciations), "aligned", audio.seconds, notes)
        except TranscriptError as exc:
            if "not in the pronunciation dictionary" in str(exc):
                raise
            notes.append(f"alignment failed ({exc}); used phone recognition instead")
    return Analysis(phone_loop(audio), "phone-loop", audio.seconds, notes)


def _check_rate(audio: Audio) -> None:
    if audio.rate != ANALYSIS_RATE:
        raise LipSyncError(f"analysis needs {ANALYSIS_RATE} Hz audio, got {audio.rate} (load it with load_audio)")

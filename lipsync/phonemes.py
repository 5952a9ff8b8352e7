"""Speech -> timed phonemes with PocketSphinx (its English model ships inside the wheel).

Two modes, as Rhubarb Lip Sync has:
- ``phone_loop``: phones recognised freely (no text needed; any English speech): each frame's
  mouth class by the posterior probabilities of a phone loop (``lipsync.phoneloop``), not the
  decoder's best phone string (``best_phone_string``, kept as the benchmark's baseline).
- ``align``: the dialogue text is force-aligned to the audio (two passes: words, then phones):
  better timing, because the decoder only has to find *when*, not *what*.
Two things keep the acoustic model on track with any audio, both measured on espeak-ng truth
(``bench/lipsync.py``): a -60 dBFS noise floor is added before decoding (``NOISE_FLOOR``: digital
silence, as text-to-speech and edited dialogue have, throws the model's cepstral normalisation
off and whole words get aligned into pauses), and a pause the decoder puts over sound is given
back to the phones beside it (``validate_pauses``: a mouth rests only where the audio is quiet).

PocketSphinx frames are 10 ms apart and 25.6 ms long: frame ``k``'s window is centred at
``k * 10 + 12.8`` ms, so a phone that starts at frame ``k`` starts at the boundary between the
centres of frames ``k - 1`` and ``k`` (``FRAME_OFFSET``); without it every phone lands 8 ms early.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import numpy as np

from .audio import ANALYSIS_RATE, Audio
from .errors import LipSyncError, TranscriptError
from .runs import true_runs
from .visemes import PhoneSegment, phone_entry

FRAME_S = 0.01
FRAME_OFFSET = 0.0128 - FRAME_S / 2  # window centre, less half a frame
NOISE_FLOOR = 0.001  # RMS added before decoding (-60 dBFS): a microphone's floor, not audible
QUIET = 0.05  # a 10 ms hop is quiet below this share of the line's 95th-percentile loudness


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
            # wide beams: with 1e-100 a sentence or two of dialogue already fails to align
            _DECODERS[kind] = Decoder(lm=None, samprate=ANALYSIS_RATE, loglevel="ERROR", beam=1e-200, pbeam=1e-200,
                                      wbeam=1e-180, bestpath=False)
    return _DECODERS[kind]


def _decodable_pcm(audio: Audio) -> bytes:
    """16-bit PCM with the analysis noise floor added (fixed seed: the same audio always gives
    the same phones)."""
    noise = np.random.default_rng(0).normal(0.0, NOISE_FLOOR, audio.samples.size).astype(np.float32)
    return (np.clip(audio.samples + noise, -1, 1) * 32767).astype("<i2").tobytes()


def phone_loop(audio: Audio) -> list[PhoneSegment]:
    """Phones free of text, frame by frame from phone posteriors (``lipsync.phoneloop``)."""
    from .phoneloop import phone_loop as posterior_loop

    _check_rate(audio)
    noise = np.random.default_rng(0).normal(0.0, NOISE_FLOOR, audio.samples.size).astype(np.float32)
    return posterior_loop(audio.samples + noise)


def best_phone_string(audio: Audio) -> list[PhoneSegment]:
    """PocketSphinx's allphone search: its single best phone string (the baseline the posterior
    phone loop is measured against)."""
    _check_rate(audio)
    d = _decoder("phone")
    d.start_utt()
    d.process_raw(_decodable_pcm(audio), full_utt=True)
    d.end_utt()
    return [PhoneSegment(s.word, s.start_frame * FRAME_S + FRAME_OFFSET, (s.end_frame + 1) * FRAME_S + FRAME_OFFSET) for s in d.seg()]


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
    pcm = _decodable_pcm(audio)
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
            out.append(PhoneSegment(p.name, p.start * FRAME_S + FRAME_OFFSET, (p.start + p.duration) * FRAME_S + FRAME_OFFSET))
    return out


def quiet_hops(samples: np.ndarray, rel: float = QUIET) -> tuple[np.ndarray, np.ndarray]:
    """(window centre times in s, quiet flag) per 10 ms hop: quiet below ``rel`` of the line's
    95th-percentile loudness, or below three times its noise floor (5th percentile)."""
    from .mfcc import FRAME, HOP, mfcc

    _, rms = mfcc(samples)
    thr = max(3 * float(np.percentile(rms, 5)), rel * float(np.percentile(rms, 95)))
    return (np.arange(rms.size) * HOP + FRAME / 2) / ANALYSIS_RATE, rms < thr


def _is_pause(seg: PhoneSegment) -> bool:
    return phone_entry(seg.phone)[1] == "sil"


def validate_pauses(phones: list[PhoneSegment], samples: np.ndarray, min_pause: float = 0.05) -> list[PhoneSegment]:
    """Pauses only where the audio is quiet: inside each pause the decoder gave, the pause is the
    span from the first to the last quiet run of at least ``min_pause`` seconds; sound before it
    goes to the previous phone, sound after it to the next one. A pause with no such run is
    sound throughout: it is split between its neighbours."""
    t, quiet = quiet_hops(samples)
    segs = list(phones)
    out: list[PhoneSegment] = []
    for i, seg in enumerate(segs):
        if not _is_pause(seg):
            out.append(seg)
            continue
        inside = (t >= seg.start) & (t < seg.end)
        runs = true_runs(quiet & inside, int(round(min_pause * 100)))
        if runs:
            a, b = max(seg.start, t[runs[0][0]] - 0.005), min(seg.end, t[runs[-1][1] - 1] + 0.005)
        else:
            a = b = (seg.start + seg.end) / 2
        prev_ok = bool(out) and not _is_pause(out[-1])
        next_ok = i + 1 < len(segs) and not _is_pause(segs[i + 1])
        a = a if prev_ok else seg.start
        b = b if next_ok else seg.end
        if prev_ok and a > seg.start:
            out[-1] = PhoneSegment(out[-1].phone, out[-1].start, a)
        if next_ok and b < seg.end:
            segs[i + 1] = PhoneSegment(segs[i + 1].phone, b, segs[i + 1].end)
        if b > a:
            out.append(PhoneSegment(seg.phone, a, b))
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
            return Analysis(validate_pauses(align(audio, text, pronunciations), audio.samples), "aligned", audio.seconds, notes)
        except TranscriptError as exc:
            if "not in the pronunciation dictionary" in str(exc):
                raise
            notes.append(f"alignment failed ({exc}); used phone recognition instead")
    return Analysis(validate_pauses(phone_loop(audio), audio.samples), "phone-loop", audio.seconds, notes)


def _check_rate(audio: Audio) -> None:
    if audio.rate != ANALYSIS_RATE:
        raise LipSyncError(f"analysis needs {ANALYSIS_RATE} Hz audio, got {audio.rate} (load it with load_audio)")

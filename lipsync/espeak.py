"""libespeak-ng through ctypes: audio plus one phoneme event per phoneme, from a fresh library.

The library keeps state from one utterance to the next (its waveform generator carries over
a few samples), so the same text spoken after different texts differs slightly. Truth must be
reproducible, so each utterance is spoken by a fresh child process (``python -m lipsync.espeak``,
standard library only, about 0.1 s): it gives exactly what the ``espeak-ng`` command gives.

Child protocol: a JSON request ``{"text", "voice", "speed"}`` on stdin; on stdout one JSON line
``{"rate", "events": [[ms, ipa], ...]}`` or ``{"error"}``, then the int16 samples.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import subprocess
import sys

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INIT_PHONEME_EVENTS, _INIT_PHONEME_IPA, _INIT_DONT_EXIT = 0x0001, 0x0002, 0x8000
_EVENT_LIST_TERMINATED, _EVENT_PHONEME = 0, 7
_RATE = 1  # espeakRATE, words per minute
_POS_CHARACTER, _CHARS_UTF8, _ENDPAUSE = 1, 1, 0x1000  # ENDPAUSE: the final pause, as the command speaks it


class EspeakUnavailable(Exception):
    """The library is missing, cannot start, or refuses the request (message says which)."""


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    """``espeak_EVENT`` from speak_lib.h."""

    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint), ("text_position", ctypes.c_int),
                ("length", ctypes.c_int), ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", _EventId)]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


def speak_in_process(text: str, voice: str, speed: int) -> tuple[int, bytes, list[tuple[int, str]]]:
    """(sample rate, int16 bytes, [(ms, IPA phoneme)]) from this process's library: call it once
    per process (see the module doc)."""
    lib = None
    for name in ("libespeak-ng.so.1", ctypes.util.find_library("espeak-ng")):
        if name:
            try:
                lib = ctypes.CDLL(name)
                break
            except OSError:
                continue
    if lib is None:
        raise EspeakUnavailable("libespeak-ng is not installed")
    lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                                 ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, None, _INIT_PHONEME_EVENTS | _INIT_PHONEME_IPA | _INIT_DONT_EXIT)
    if rate <= 0:
        raise EspeakUnavailable("libespeak-ng could not start (its data folder is missing?)")
    chunks: list[bytes] = []
    events: list[tuple[int, str]] = []

    def on_synth(wav, n, evs):  # type: ignore[no-untyped-def]
        if n > 0 and wav:
            chunks.append(ctypes.string_at(wav, 2 * n))
        i = 0
        while evs[i].type != _EVENT_LIST_TERMINATED:
            if evs[i].type == _EVENT_PHONEME:
                events.append((int(evs[i].audio_position), evs[i].id.string.decode("utf-8", "replace")))
            i += 1
        return 0

    cb = _CALLBACK(on_synth)  # referenced until the synthesis is done
    lib.espeak_SetSynthCallback(cb)
    if lib.espeak_SetVoiceByName(voice.encode()) != 0:
        raise EspeakUnavailable(f"espeak-ng has no voice {voice!r}")
    lib.espeak_SetParameter(_RATE, int(speed), 0)
    data = text.encode("utf-8")
    err = lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8 | _ENDPAUSE, None, None)
    lib.espeak_Synchronize()
    if err != 0:
        raise EspeakUnavailable(f"espeak-ng could not speak the text (error {err})")
    return rate, b"".join(chunks), events


def speak_fresh(text: str, voice: str, speed: int, *, timeout: float = 120.0) -> tuple[int, bytes, list[tuple[int, str]]]:
    """``speak_in_process`` in a fresh child process: the same text always gives the same samples."""
    req = json.dumps({"text": text, "voice": voice, "speed": int(speed)}).encode()
    r = subprocess.run([sys.executable, "-m", "lipsync.espeak"], input=req, capture_output=True, timeout=timeout)
    head, _, body = r.stdout.partition(b"\n")
    try:
        doc = json.loads(head)
    except ValueError:
        raise EspeakUnavailable(f"the espeak child failed: {r.stderr.decode(errors='replace').strip()[-300:]}") from None
    if "error" in doc:
        raise EspeakUnavailable(doc["error"])
    return int(doc["rate"]), body, [(int(ms), str(name)) for ms, name in doc["events"]]


def main() -> None:
    req = json.loads(sys.stdin.buffer.read())
    try:
        rate, pcm, events = speak_in_process(req["text"], req["voice"], req["speed"])
    except EspeakUnavailable as exc:
        sys.stdout.buffer.write(json.dumps({"error": str(exc)}).encode() + b"\n")
        return
    sys.stdout.buffer.write(json.dumps({"rate": rate, "events": events}).encode() + b"\n" + pcm)


if __name__ == "__main__":
    main()

"""The truth itself, checked against espeak-ng's own command line: the library speaks the same
audio, its phoneme events spell the same IPA transcript, and the timeline's pauses are where
the audio is silent."""

import shutil
import subprocess

import numpy as np
import pytest

from lipsync.audio import load_audio
from lipsync.errors import LipSyncError
from lipsync.truth import SENTENCES, closures_to_stops, ipa_to_arpabet, synthesize
from lipsync.visemes import PhoneSegment

TEXT = " ".join(SENTENCES[:3])


def test_library_audio_is_what_the_espeak_command_speaks(tmp_path):
    """Sample for sample (each line from a fresh library, as the command is)."""
    import wave

    from lipsync.espeak import speak_fresh

    exe = shutil.which("espeak-ng")
    subprocess.run([exe, "-v", "en-us+f3", "-s", "190", "-w", str(tmp_path / "cli.wav"), TEXT], check=True, capture_output=True)
    with wave.open(str(tmp_path / "cli.wav")) as w:
        cli = np.frombuffer(w.readframes(w.getnframes()), "<i2")
        rate, pcm, _ = speak_fresh(TEXT, "en-us+f3", 190)
        assert rate == w.getframerate()
    assert np.array_equal(cli, np.frombuffer(pcm, "<i2"))
    # and resampled to 16 kHz (scipy here, PyAV's resampler for the file) the loudness envelopes agree
    u = synthesize(TEXT, voice="en-us+f3", speed=190)
    a = load_audio(tmp_path / "cli.wav").samples
    n = u.samples.size // 160 * 160
    env = [np.sqrt(np.mean(x[:n].reshape(-1, 160) ** 2, axis=1)) for x in (u.samples, a)]
    assert np.corrcoef(*env)[0, 1] > 0.99
    # the same line twice is the same audio, whatever was spoken in between
    synthesize("Who would know?", voice="en", speed=120)
    assert np.array_equal(synthesize(TEXT, voice="en-us+f3", speed=190).samples, u.samples)


def test_phoneme_events_spell_the_espeak_ipa_transcript():
    from lipsync.espeak import speak_fresh

    exe = shutil.which("espeak-ng")
    ipa = subprocess.run([exe, "-q", "--ipa", "-v", "en", "-s", "150", TEXT], check=True, capture_output=True, text=True).stdout
    want = "".join(ch for ch in ipa if ch not in "ˈˌ \n")
    _, _, events = speak_fresh(TEXT, "en", 150)
    assert "".join(name for _, name in events) == want


def test_pauses_are_silent_and_speech_is_not(speech):
    _, u = speech
    x = u.samples
    pauses = [s for s in u.phones if s.phone == "SIL" and s.end - s.start > 0.05]
    assert pauses and u.phones[0].phone == "SIL"
    for s in pauses:
        seg = x[int(s.start * 16000) + 80:int(s.end * 16000) - 80]
        assert np.sqrt(np.mean(seg**2)) < 1e-3, s
    vowels = [s for s in u.phones if s.phone in ("AA", "UW", "AY", "EH", "ER", "EY")]
    assert len(vowels) >= 6
    for s in vowels:
        seg = x[int(s.start * 16000):int(s.end * 16000)]
        assert np.sqrt(np.mean(seg**2)) > 0.03, s
    # the timeline is contiguous and covers the audio
    assert all(a.end == pytest.approx(b.start) for a, b in zip(u.phones, u.phones[1:]))
    assert u.phones[-1].end == pytest.approx(u.seconds, abs=0.011)


def test_voices_and_speeds_change_the_timeline():
    slow = synthesize(SENTENCES[0], voice="en", speed=120)
    fast = synthesize(SENTENCES[0], voice="en-us", speed=220)
    assert slow.seconds > 1.4 * fast.seconds
    assert [p.phone for p in slow.phones if p.phone != "SIL"][:3] == ["DH", "AH", "B"]
    with pytest.raises(LipSyncError, match="no voice"):
        synthesize("hello", voice="xx-nowhere")


def test_ipa_mapping_and_stop_closures():
    assert ipa_to_arpabet("ɑːɹ") == "AA" and ipa_to_arpabet("tʃ") == "CH" and ipa_to_arpabet("") == "SIL"
    assert ipa_to_arpabet("t\u032a") == "T"
    with pytest.raises(LipSyncError, match="no ARPAbet"):
        ipa_to_arpabet("ʘ")
    # a vowel, 50 ms of silence (the closure), then the burst of p: the silence is the p's
    rate = 16000
    x = np.concatenate([0.3 * np.sin(np.arange(3200) * 0.2), np.zeros(800), 0.3 * np.sin(np.arange(1600) * 0.9)]).astype(np.float32)
    phones = [PhoneSegment("AA", 0.0, 0.25), PhoneSegment("P", 0.25, 0.35)]
    moved = closures_to_stops(phones, x, rate)
    assert moved[1].start == pytest.approx(0.2, abs=0.003) and moved[0].end == moved[1].start
    # not for a vowel after a vowel
    assert closures_to_stops([PhoneSegment("AA", 0.0, 0.25), PhoneSegment("IY", 0.25, 0.35)], x, rate)[1].start == 0.25

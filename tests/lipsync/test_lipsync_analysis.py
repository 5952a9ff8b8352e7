import json
import subprocess
import sys

import numpy as np
import pytest
from lipsync_helpers import make_take, write_wav

from lipsync.analyze import lipsync_audio, read_rhubarb_json, write_rhubarb_json, write_rhubarb_tsv, write_to_take
from lipsync.audio import Audio, load_audio
from lipsync.errors import AudioError, LipSyncError, TranscriptError
from lipsync.score import always_closed, loudness_classes, pooled, track_frames, truth_frames
from lipsync.phonemes import best_phone_string, validate_pauses
from lipsync.truth import SENTENCES
from lipsync.visemes import phones_to_cues
from machinima.mouth import BLEND_CHANNELS, OCULUS_VISEMES

FPS = 100  # 10 ms frames: timing is measured to the frame
TEXT = " ".join(SENTENCES)


@pytest.fixture(scope="module")
def scored(truth_lines):
    """Every mode and both trivial mouths on the truth set, in one run."""
    pairs: dict[str, list] = {"aligned": [], "phone-loop": [], "best-string": [], "always-closed": [], "loudness": []}
    for u in truth_lines:
        n = int(np.ceil(u.seconds * FPS))
        truth = truth_frames(u.phones, FPS, n)
        a = Audio(u.samples, 16000)
        pairs["aligned"].append((track_frames(lipsync_audio(a, FPS, TEXT).cues, FPS, n), truth))
        pairs["phone-loop"].append((track_frames(lipsync_audio(a, FPS).cues, FPS, n), truth))
        best = phones_to_cues(validate_pauses(best_phone_string(a), a.samples), a.seconds)
        pairs["best-string"].append((track_frames(best, FPS, n), truth))
        pairs["always-closed"].append((always_closed(n), truth))
        pairs["loudness"].append((loudness_classes(u.samples, 16000, FPS, n), truth))
    return {k: pooled(v, FPS) for k, v in pairs.items()}


def test_aligned_mode_on_continuous_speech(scored):
    """The issue's goals, on speech frames only: >= 85 %, >= 20 points above the loudness-only
    mouth, every mouth change within 60 ms of the sound's at p90 (misses count as misses)."""
    sc, off = scored["aligned"]
    assert sc.frames > 8000
    assert sc.accuracy >= 0.85, sc.as_dict()
    assert sc.accuracy >= scored["loudness"][0].accuracy + 0.20
    assert off["p90_ms"] is not None and off["p90_ms"] < 60, off
    # every class is mostly right, the closed lips of M/B/P included
    assert min(sc.per_class.values()) >= 0.7, sc.per_class
    assert scored["always-closed"][0].accuracy < 0.15  # the baselines are what they claim
    assert scored["loudness"][0].accuracy < 0.45


def test_phone_loop_without_text(scored):
    """Without the text, each frame's mouth class comes from phone posteriors (lipsync.phoneloop),
    tuned on other sentences and voices (bench/lipsync_tune.py: Harvard list 2, four other
    voices), so these lines are unseen. The issue's goal: >= 70 % of speech frames, here beside
    the decoder's best phone string (what the phone loop used to be), the loudness mouth and the
    aligned mode in the same run; its closed M/B/P mouth shown more often than the best string's."""
    sc, off = scored["phone-loop"]
    best, _ = scored["best-string"]
    assert sc.accuracy >= 0.70, sc.as_dict()
    assert sc.accuracy >= best.accuracy + 0.03, (sc.accuracy, best.accuracy)
    assert sc.accuracy >= scored["loudness"][0].accuracy + 0.30
    assert sc.accuracy < scored["aligned"][0].accuracy
    assert sc.per_class["closed"] >= best.per_class["closed"] + 0.05, (sc.per_class, best.per_class)
    # F/V by its frication noise (lipsync.frication): the model alone shows it on ~15 % of its frames
    assert sc.per_class["fv"] >= best.per_class["fv"] + 0.2, (sc.per_class, best.per_class)
    # the changes it makes are on time (paired one to one); the ones it misses are recognition errors,
    # fewer than the best string's
    assert off["made_p50_ms"] <= 20 and off["made_p90_ms"] < 80, off
    assert off["missed"] <= scored["best-string"][1]["missed"] - 0.05, off
    # closures and open vowels put back from each frame's own likelihoods (lipsync.evidence): the loop
    # without them missed 12.2 % of these lines' mouth changes (closed M/B/P right on 0.50 of frames)
    assert off["missed"] <= 0.11, off
    assert sc.per_class["closed"] >= 0.54, sc.per_class


def test_outputs_of_one_timeline(speech):
    samples, u = speech
    tr = lipsync_audio(Audio(samples, 16000), 24, u.text)
    n = len(tr.shapes)
    assert tr.vrm.shape == (n, 5) and tr.viseme_weights.shape == (n, 15) and len(tr.visemes) == n
    assert 0 <= tr.vrm.min() and tr.vrm.max() <= 1 and 0 <= tr.viseme_weights.min() and tr.viseme_weights.max() <= 1
    assert {"PP", "FF", "aa", "ou", "sil"} <= set(tr.visemes)  # Bob moved five ... purple paper
    for i, v in enumerate(tr.visemes):  # each frame's viseme is the one its weights move toward
        if i > 0 and v == tr.visemes[i - 1]:
            assert int(np.argmax(tr.viseme_weights[i])) == OCULUS_VISEMES.index(v)
    aa = np.array([v == "aa" for v in tr.visemes])
    assert tr.vrm[aa, 0].mean() > 0.5 > tr.vrm[~aa, 0].mean()
    assert tr.blend_values().shape == (n, len(BLEND_CHANNELS))


def test_mfcc_mode_offline(speech):
    """A speaker's vowel templates (calibrated on the same voice: an upper bound) tell the
    open, wide and rounded vowels of a line apart without any phone model."""
    import tempfile
    from pathlib import Path

    from lipsync.mfcc import VowelTemplates
    from lipsync.truth import speak

    with tempfile.TemporaryDirectory() as tmp:
        t = VowelTemplates.calibrate({v: load_audio(speak(w, Path(tmp) / f"{v}.wav")).samples
                                      for v, w in (("A", "ah"), ("I", "ee"), ("U", "ooh"), ("E", "eh"), ("O", "oh"))})
    from lipsync.truth import synthesize

    u = synthesize("Ah, ooh, ee. Far too keen.", voice="en-us")
    tr = lipsync_audio(Audio(u.samples, 16000), FPS, templates=t)
    assert tr.mode == "mfcc"
    n = len(tr.shapes)
    truth = truth_frames(u.phones, FPS, n)
    pred = track_frames(tr.cues, FPS, n)
    for cls in ("open", "rounded", "wide"):
        hits = [p == cls for p, q in zip(pred, truth) if q == cls]
        assert np.mean(hits) > 0.6, (cls, np.mean(hits))
    assert lipsync_audio(Audio(np.zeros(16000, np.float32), 16000), 24, templates=t).mode == "silent"


def test_silence_and_bad_audio(tmp_path):
    silent = lipsync_audio(Audio(np.zeros(16000, np.float32), 16000), 24)
    assert set(silent.shapes) == {"X"} and silent.mode == "silent" and "silent" in silent.notes[0]
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(AudioError, match="empty"):
        load_audio(tmp_path / "empty.wav")
    (tmp_path / "text.wav").write_text("this is not audio at all " * 40)
    with pytest.raises(AudioError, match="not readable audio"):
        load_audio(tmp_path / "text.wav")
    with pytest.raises(AudioError, match="no audio file"):
        load_audio(tmp_path / "missing.wav")
    with pytest.raises(TranscriptError, match="zxqvbn"):
        lipsync_audio(Audio(np.random.default_rng(0).normal(0, 0.1, 16000).astype(np.float32), 16000), 24, "hello zxqvbn")


def test_odd_formats_load(tmp_path, speech):
    samples, _ = speech
    write_wav(tmp_path / "8bit.wav", samples, 16000, width=1)
    hi = np.interp(np.linspace(0, samples.size - 1, samples.size * 6), np.arange(samples.size), samples)
    write_wav(tmp_path / "96k.wav", hi, 96000, channels=2)
    for name in ("8bit.wav", "96k.wav"):
        a = load_audio(tmp_path / name)
        assert a.rate == 16000 and abs(a.seconds - samples.size / 16000) < 0.05
    assert load_audio(tmp_path / "96k.wav").original_rate == 96000
    clipped = load_audio(tmp_path / "8bit.wav")
    clipped.samples = np.clip(clipped.samples * 20, -1, 1)
    clipped.clipped_fraction = float(np.mean(np.abs(clipped.samples) >= 0.999))
    assert any("clipped" in n for n in lipsync_audio(clipped, 24).notes)
    data = (tmp_path / "96k.wav").read_bytes()  # truncated: the header promises more than there is
    (tmp_path / "cut.wav").write_bytes(data[: len(data) // 3])
    assert load_audio(tmp_path / "cut.wav").seconds < samples.size / 16000


def test_video_without_audio_track(tmp_path):
    from machinima.imageseq import write_video

    write_video(tmp_path / "silent.mp4", [np.zeros((32, 32, 3), np.uint8)] * 4, fps=24)
    with pytest.raises(AudioError, match="no audio track"):
        load_audio(tmp_path / "silent.mp4")


def test_rhubarb_files_and_take_stream(tmp_path, speech):
    samples, u = speech
    tr = lipsync_audio(Audio(samples, 16000), 30, u.text)
    tsv = write_rhubarb_tsv(tmp_path / "m.tsv", tr.cues).read_text().splitlines()
    assert tsv[0].startswith("0.00\t") and tsv[-1].endswith("\tX")
    write_rhubarb_json(tmp_path / "m.json", tr.cues, sound_file="line.wav", duration=tr.duration)
    assert [(c.start, c.end, c.shape) for c in read_rhubarb_json(tmp_path / "m.json")] == \
        [(round(c.start, 2), round(c.end, 2), c.shape) for c in tr.cues]
    assert json.loads((tmp_path / "m.json").read_text())["metadata"]["soundFile"] == "line.wav"

    from machinima.take import Take

    path = make_take(tmp_path / "takes", ("ada",), fps=24)
    with pytest.raises(LipSyncError, match=r"no performer 'bob' \(its performers: ada\)"):
        write_to_take(path, "bob", tr)
    stream = write_to_take(path, "ada", tr)  # analysed at 30 fps: sampled at the take's 24
    t = Take.open(path)
    track = t.store.read(stream)
    assert track.meta["channels"] == list(BLEND_CHANNELS)
    assert len(track) == int(np.ceil(tr.duration * 24)) and track.frames[10] == 10
    vis = track.values[:, len(BLEND_CHANNELS) - 15:]
    assert vis.shape[1] == 15 and vis.max() > 0.9  # the Oculus visemes are in the stream
    assert [p["name"] for p in t.manifest.performers] == ["ada"]  # nobody was added
    with pytest.raises(LipSyncError, match="already has blend/ada-mouth"):
        write_to_take(path, "ada", tr)


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "machinima", "lipsync", *map(str, args)], capture_output=True, text=True, cwd=cwd)


def test_cli_analyze_files_take_audio_and_errors(tmp_path, speech):
    samples, u = speech
    write_wav(tmp_path / "line.wav", samples)
    (tmp_path / "line.txt").write_text(u.text)
    r = _cli("analyze", tmp_path / "line.wav", "--text", tmp_path / "line.txt")
    assert r.returncode == 0, r.stderr
    assert "aligned" in r.stdout and (tmp_path / "line.mouth.tsv").exists() and (tmp_path / "line.mouth.json").exists()
    vis = (tmp_path / "line.visemes.tsv").read_text().split()
    assert "PP" in vis and "FF" in vis and vis[-1] == "sil"
    take = make_take(tmp_path / "takes", ("ada", "cy"))
    r = _cli("analyze", tmp_path / "line.wav", "--text", tmp_path / "line.txt", "--take", take, "--performer", "alice")
    assert r.returncode == 1 and "no performer 'alice'" in r.stderr and "ada, cy" in r.stderr and "Traceback" not in r.stderr
    r = _cli("analyze", tmp_path / "line.wav", "--text", tmp_path / "line.txt", "--take", take, "--performer", "ada", "--out", tmp_path / "o")
    assert r.returncode == 0, r.stderr
    assert (take / "audio" / "line.wav").read_bytes() == (tmp_path / "line.wav").read_bytes()  # the take keeps its dialogue
    # the take's own audio is the input when none is given
    r = _cli("analyze", "--take", take, "--performer", "cy", "--mode", "phone-loop", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "audio/line.wav" in r.stdout and (tmp_path / "line.mouth.json").exists()
    # inputs are checked before any work (in-process: the one-line printing is the CLI's, tested above)
    from typer.testing import CliRunner

    from lipsync.cli import app
    from machinima.errors import MachinimaError

    line = str(tmp_path / "line.wav")
    for args, msg in (([str(tmp_path / "nope.wav")], "no audio file"), ([line, "--mode", "mfcc"], "--calibration"),
                      ([line, "--mode", "aligned"], "--text"), ([line, "--mode", "fast"], "not one of"),
                      (["--take", str(take), "--performer", "ada", "other.wav"], "no audio 'other.wav' (its audio: line.wav)")):
        r = CliRunner().invoke(app, ["analyze", *args])
        assert isinstance(r.exception, MachinimaError) and msg in str(r.exception), (args, r.exception)

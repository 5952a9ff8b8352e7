import socket
import subprocess
import sys
import threading
import wave
from pathlib import Path

import numpy as np
import pytest

from lipsync.errors import LipSyncError, MouthModelError
from lipsync.live import LiveLipSync, load_templates, realtime_chunks, run_live, save_templates
from lipsync.mfcc import VowelTemplates, loudness_openness


@pytest.fixture(scope="module")
def vowels():
    import tempfile

    from lipsync.audio import load_audio
    from lipsync.truth import speak

    with tempfile.TemporaryDirectory() as tmp:
        return {v: load_audio(speak(w, Path(tmp) / f"{v}.wav")).samples for v, w in (("A", "ah"), ("I", "ee"), ("U", "ooh"))}


def test_templates_tell_vowels_apart(vowels, tmp_path):
    t = VowelTemplates.calibrate(vowels)
    for v, x in vowels.items():
        w = t.weights(x)
        loud = w.sum(axis=1) > 0.3
        winner = "AIUEO"[int(np.argmax(w[loud].sum(axis=0)))]
        assert winner == v
    save_templates(tmp_path / "c.json", t)
    assert np.allclose(load_templates(tmp_path / "c.json").templates["A"], t.templates["A"])
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(LipSyncError, match="not a calibration file"):
        load_templates(tmp_path / "bad.json")
    with pytest.raises(LipSyncError, match="at least two"):
        VowelTemplates.calibrate({"A": vowels["A"]})
    assert loudness_openness(np.zeros(1600)).max() == 0


def test_live_vmc_into_our_own_receiver(vowels):
    from machinima.vmc import VMCDecoder

    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(0.2)
    port = rx.getsockname()[1]
    got = []

    def receive():
        dec = VMCDecoder()
        while True:
            try:
                data = rx.recv(65536)
            except socket.timeout:
                if done.is_set():
                    return
                continue
            pkt = dec.feed(data)
            if pkt is not None and pkt.blend_apply:
                got.append(dict(dec.applied_blendshapes))

    done = threading.Event()
    th = threading.Thread(target=receive, daemon=True)
    th.start()
    live = LiveLipSync(VowelTemplates.calibrate(vowels))
    audio = np.concatenate([np.zeros(3200, np.float32), vowels["A"], np.zeros(3200, np.float32)])
    sent = run_live(realtime_chunks(audio, speed=4.0), "127.0.0.1", port, live)
    done.set()
    th.join(2)
    rx.close()
    assert sent > 0 and len(got) >= 0.9 * sent
    assert max(g["A"] for g in got) > 0.5 and got[0]["A"] < 0.05 and set(got[0]) == {"A", "I", "U", "E", "O"}
    lat = np.array(live.latencies_ms)
    assert np.percentile(lat, 95) < 100  # the goal: live p95 < 100 ms


def test_mouth_warp_moves_lips_toward_target(face):
    from lipsync.mouthwarp import FaceMesh, MouthWarp, mouth_opening, mouth_width

    mesh = FaceMesh()
    lm = mesh.landmarks(face)
    assert lm is not None and lm.shape == (478, 2)
    warp = MouthWarp()
    opened, tgt = warp.apply(face, lm, "D")
    after = mesh.landmarks(opened)
    assert mouth_opening(tgt) > mouth_opening(lm)
    assert mouth_opening(after) > mouth_opening(lm) + 0.02  # re-detected: the mouth really opened
    puckered, _ = warp.apply(face, lm, "F")
    assert mouth_width(mesh.landmarks(puckered)) < mouth_width(lm) - 0.03  # and narrowed for OO
    far = np.abs(opened.astype(int) - face.astype(int))
    assert far[:100].max() == 0 and far[400:].max() == 0  # only the mouth region changes
    assert mesh.landmarks(np.zeros((200, 200, 3), np.uint8)) is None
    mesh.close()


def test_wav2lip_runs_with_random_weights(tmp_path):
    import torch

    from lipsync.wav2lip import build_generator, load_generator, mel_window, melspectrogram, repaint

    model = build_generator()
    assert 35e6 < sum(p.numel() for p in model.parameters()) < 38e6  # the published generator's size
    torch.save({"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}, tmp_path / "wav2lip.pth")
    loaded = load_generator(tmp_path)
    mel = melspectrogram(np.random.default_rng(0).normal(0, 0.1, 16000).astype(np.float32))
    assert mel.shape == (80, 81) and mel.min() >= -4 and mel.max() <= 4
    out = repaint(loaded, np.full((96, 96, 3), 128, np.uint8), mel_window(mel, 5, 25))
    assert out.shape == (96, 96, 3) and out.dtype == np.uint8
    with pytest.raises(MouthModelError, match="not found"):
        load_generator(tmp_path / "none.pth")
    torch.save({"state_dict": {"junk": torch.zeros(1)}}, tmp_path / "other.pth")
    with pytest.raises(MouthModelError, match="does not fit"):
        load_generator(tmp_path / "other.pth")


def _clip(path, face, n=10):
    from machinima.imageseq import write_video

    frames = [np.roll(face, 2 * i, axis=1) for i in range(n)]
    write_video(path, frames, fps=25)


def test_video_resync_cli_resumes_and_checks_rights(tmp_path, face, speech):
    samples, _ = speech
    _clip(tmp_path / "clip.mp4", face)
    with wave.open(str(tmp_path / "line.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes((samples[:16000] * 32767).astype("<i2").tobytes())
    base = [sys.executable, "-m", "machinima", "lipsync", "video", str(tmp_path / "clip.mp4"), "--audio", str(tmp_path / "line.wav"),
            "--production", "film", "--out", str(tmp_path / "out")]
    env_cwd = tmp_path  # rights store resolves from machinima.toml in the working folder
    r = subprocess.run(base + ["--subject", "eileen"], capture_output=True, text=True, cwd=env_cwd)
    assert r.returncode == 1 and "lip_sync not cleared" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run(base + ["--subject", "eileen", "--rights-override", "public-domain NASA portrait, test"], capture_output=True, text=True, cwd=env_cwd)
    assert r.returncode == 0, r.stderr
    out = tmp_path / "out"
    assert len(list((out / "frames").glob("*.png"))) == 10 and (out / "mouth.json").exists()
    import av

    with av.open(str(out / "out.mp4")) as c:
        assert c.streams.video and c.streams.audio  # the dialogue is muxed in
    import json

    params = json.loads((out / "params.json").read_text())
    assert "public-domain" in json.dumps(params)  # the override is in the provenance
    r = subprocess.run(base + ["--subject", "eileen", "--rights-override", "public-domain NASA portrait, test"], capture_output=True, text=True, cwd=env_cwd)
    assert "0 frames re-synced, 10 already done" in r.stdout

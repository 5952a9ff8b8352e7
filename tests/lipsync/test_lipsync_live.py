"""Live lip sync, measured from outside: PCM written into `machinima lipsync live --input -` at
the speaker's pace, VMC datagrams caught by a real UDP receiver and decoded by python-osc; the
latency runs from writing the chunk that completes a window to its datagram arriving."""

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from pythonosc.osc_bundle import OscBundle

from lipsync.errors import LipSyncError
from lipsync.live import LiveLipSync, load_templates, pcm_chunks, realtime_chunks, run_live, save_templates
from lipsync.mfcc import FRAME, HOP, VowelTemplates, loudness_openness

CHUNK = 160  # 10 ms at 16 kHz, what a sound card hands over


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
        assert "AIUEO"[int(np.argmax(w[loud].sum(axis=0)))] == v
    save_templates(tmp_path / "c.json", t)
    assert np.allclose(load_templates(tmp_path / "c.json").templates["A"], t.templates["A"])
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(LipSyncError, match="not a calibration file"):
        load_templates(tmp_path / "bad.json")
    with pytest.raises(LipSyncError, match="at least two"):
        VowelTemplates.calibrate({"A": vowels["A"]})
    assert loudness_openness(np.zeros(1600)).max() == 0


def _blend(dgram: bytes) -> dict[str, float]:
    """python-osc's reading of one VMC bundle: /VMC/Ext/Blend/Val pairs, then Apply last."""
    b = OscBundle(dgram)
    msgs = [b.content(i) for i in range(b.num_contents)]
    assert msgs[-1].address == "/VMC/Ext/Blend/Apply"
    return {m.params[0]: m.params[1] for m in msgs[:-1] if m.address == "/VMC/Ext/Blend/Val"}


def test_live_latency_from_chunk_written_to_datagram_received(speech):
    samples, _ = speech
    audio = np.concatenate([np.zeros(4000, np.float32), samples[:16000 * 2]])
    audio = audio[: audio.size // CHUNK * CHUNK]
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(0.2)
    got: list[tuple[int, bytes]] = []
    done = threading.Event()

    def receive():
        while not done.is_set():
            try:
                data = rx.recv(65536)
            except socket.timeout:
                continue
            got.append((time.perf_counter_ns(), data))

    th = threading.Thread(target=receive, daemon=True)
    th.start()
    proc = subprocess.Popen([sys.executable, "-m", "machinima", "lipsync", "live", "--vmc", f"127.0.0.1:{rx.getsockname()[1]}", "--input", "-"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
    try:
        assert "reading s16le" in proc.stderr.readline().decode()  # ready: the clock starts now
        pcm = (audio * 32767).astype("<i2").tobytes()
        written = []
        t0 = time.perf_counter()
        for i in range(0, len(pcm), 2 * CHUNK):  # the speaker's pace: absolute deadlines, 10 ms apart
            delay = t0 + i / 2 / 16000 - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            os.write(proc.stdin.fileno(), pcm[i:i + 2 * CHUNK])
            written.append(time.perf_counter_ns())
        time.sleep(0.3)
        proc.stdin.close()
        out = proc.stdout.read().decode()
        assert proc.wait(timeout=30) == 0, proc.stderr.read().decode()
    finally:
        if proc.poll() is None:
            proc.kill()
        done.set()
        th.join(2)
        rx.close()
    hops = 1 + (audio.size - FRAME) // HOP
    assert f"sent {hops} VMC messages" in out and len(got) == hops  # loopback loses nothing
    # datagram k's window ends at sample FRAME + k*HOP: it cannot leave before that chunk is written
    lat_ms = np.array([(t - written[(FRAME + k * HOP - 1) // CHUNK]) / 1e6 for k, (t, _) in enumerate(got)])
    assert lat_ms.min() > 0
    assert np.percentile(lat_ms, 95) < 100, np.percentile(lat_ms, [50, 95, 100])
    weights = [_blend(d) for _, d in got]
    assert set(weights[0]) == {"A", "I", "U", "E", "O"} and weights[0]["A"] < 0.01  # silence first
    assert max(w["A"] for w in weights) > 0.5  # the mouth opens with the speech


def test_pipe_chunks_arrive_without_waiting_for_a_full_buffer():
    """A 10 ms chunk in the pipe is handed over at once (a plain ``read(4096)`` would sit on it)."""
    r, w = os.pipe()
    got = []
    with open(r, "rb") as fh:
        th = threading.Thread(target=lambda: got.append(next(pcm_chunks(fh))), daemon=True)
        th.start()
        os.write(w, np.zeros(CHUNK, "<i2").tobytes())
        th.join(2)
        os.close(w)
    assert got and got[0].size == CHUNK


def test_live_in_process_with_templates(vowels):
    """The core and the UDP driver in one process: vowels drive their own channel; each
    datagram's latency is counted from its chunk's arrival to sendto returning."""
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    port = rx.getsockname()[1]
    seen: list[np.ndarray] = []
    live = LiveLipSync(VowelTemplates.calibrate(vowels))
    audio = np.concatenate([np.zeros(3200, np.float32), vowels["U"], np.zeros(3200, np.float32)])
    stats = run_live(realtime_chunks(audio, speed=8.0), "127.0.0.1", port, live, on_message=seen.append)
    rx.close()
    assert stats.sent == 1 + (audio.size - FRAME) // HOP == len(stats.latencies_ms) and stats.errors == 0
    w = np.array(seen)
    assert w[:, 2].max() > 0.5 and w[:, 2].max() > w[:, 0].max()  # U, not A
    assert stats.percentile(95) < 100
    hops = LiveLipSync().feed(np.zeros(FRAME + 3 * HOP, np.float32))
    assert [h.end_sample for h in hops] == [FRAME, FRAME + HOP, FRAME + 2 * HOP, FRAME + 3 * HOP]

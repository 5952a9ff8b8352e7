"""Live lip sync, measured from outside (``lipsync.latency``): PCM written into
`machinima lipsync live --input -` at the speaker's pace, VMC datagrams caught by a real UDP
receiver and decoded by python-osc; the latency runs from writing the chunk that completes a
window to its datagram arriving."""

import os
import socket
import threading
from pathlib import Path

import numpy as np
import pytest
from pythonosc.osc_bundle import OscBundle

from lipsync.errors import LipSyncError
from lipsync.live import LiveLipSync, load_templates, pcm_chunks, realtime_chunks, run_live, save_templates
from lipsync.latency import CHUNK
from lipsync.mfcc import FRAME, HOP, VowelTemplates, loudness_openness


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
    from lipsync.latency import measure_live_command

    samples, _ = speech
    audio = np.concatenate([np.zeros(4000, np.float32), samples[:16000 * 2]])
    audio = audio[: audio.size // CHUNK * CHUNK]
    m = measure_live_command(audio)
    hops = 1 + (audio.size - FRAME) // HOP
    assert f"sent {hops} VMC messages" in m.stdout and len(m.received) == hops  # loopback loses nothing
    lat_ms = m.latencies_ms()
    assert lat_ms.min() > 0  # no datagram before the audio it describes
    assert np.percentile(lat_ms, 95) < 100, np.percentile(lat_ms, [50, 95, 100])
    weights = [_blend(d) for _, d in m.received]
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

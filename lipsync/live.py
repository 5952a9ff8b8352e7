"""Live lip sync: audio chunks in, VMC blendshape messages out (``/VMC/Ext/Blend/Val`` per VRM
vowel + ``/VMC/Ext/Blend/Apply``). Vowels come from MFCC templates calibrated per speaker
(``mfcc.VowelTemplates``); without templates the mouth opens by loudness only (``A``).

Sans-I/O core (``LiveLipSync.feed(samples) -> [Hop]``) driven by a UDP sender (``run_live``) and a
source that plays a file in real time or reads raw PCM from a stream. A hop's message can leave
only once the last sample of its 25 ms window has arrived, so the latency that counts is from the
arrival of the chunk that completes a window to its datagram leaving the socket: ``run_live``
measures exactly that (``LiveStats``), and the tests measure it again from outside, from writing
a chunk into the command's stdin to a UDP receiver getting the datagram.
"""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Callable, Iterable, Iterator

import numpy as np

from machinima.vmc import encode_blendshapes

from .audio import ANALYSIS_RATE
from .errors import LipSyncError
from .mfcc import FRAME, HOP, VowelTemplates, mfcc
from .visemes import VRM_CHANNELS

VRM_BLEND_NAMES = {"A": "A", "I": "I", "U": "U", "E": "E", "O": "O"}


@dataclass(frozen=True)
class Hop:
    """One 10 ms hop's output: the sample count at the end of its window (counted from the first
    sample fed), its smoothed A I U E O weights and the VMC bundle to send."""

    end_sample: int
    weights: np.ndarray
    message: bytes


@dataclass
class LiveLipSync:
    templates: VowelTemplates | None = None
    attack: float = 0.03
    release: float = 0.08
    gate_rms: float = 0.01
    _buf: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    _state: np.ndarray = field(default_factory=lambda: np.zeros(5, np.float32))
    _consumed: int = 0  # samples dropped from the front of _buf so far

    def feed(self, samples: np.ndarray) -> list[Hop]:
        """Consume 16 kHz samples; one hop (and VMC message) per complete 25 ms window, 10 ms apart."""
        self._buf = np.concatenate([self._buf, np.asarray(samples, np.float32)])
        if self._buf.size < FRAME:
            return []
        n = 1 + (self._buf.size - FRAME) // HOP
        window = self._buf[: FRAME + (n - 1) * HOP]
        first_end = self._consumed + FRAME
        self._buf = self._buf[n * HOP:]
        self._consumed += n * HOP
        if self.templates is not None:
            weights = self.templates.weights(window)
        else:
            _, rms = mfcc(window)
            weights = np.zeros((rms.size, 5), np.float32)
            weights[:, 0] = np.clip((rms - self.gate_rms) / (8 * self.gate_rms), 0, 1)
        out = []
        dt = HOP / ANALYSIS_RATE
        up, down = 1 - np.exp(-dt / self.attack), 1 - np.exp(-dt / self.release)
        for i, w in enumerate(weights):
            k = np.where(w > self._state, up, down)
            self._state = self._state + (w - self._state) * k
            msg = encode_blendshapes({VRM_BLEND_NAMES[c]: float(v) for c, v in zip(VRM_CHANNELS, self._state)})
            out.append(Hop(first_end + i * HOP, self._state.copy(), msg))
        return out


@dataclass
class LiveStats:
    """Datagrams sent, send errors, and per datagram the ms from the arrival of the chunk that
    completed its window to the datagram leaving the socket."""

    sent: int = 0
    errors: int = 0
    latencies_ms: list[float] = field(default_factory=list)

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else 0.0


def save_templates(path: str | Path, t: VowelTemplates) -> None:
    from machinima.fsutil import atomic_write_json

    atomic_write_json(path, {"version": 1, "templates": {k: v.tolist() for k, v in t.templates.items()},
                             "silence_rms": t.silence_rms, "speech_rms": t.speech_rms})


def load_templates(path: str | Path) -> VowelTemplates:
    try:
        doc = json.loads(Path(path).read_text())
        return VowelTemplates({k: np.asarray(v, np.float32) for k, v in doc["templates"].items()},
                              float(doc["silence_rms"]), float(doc["speech_rms"]))
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise LipSyncError(f"{path} is not a calibration file ({exc})", hint="make one with `machinima lipsync calibrate`") from None


def realtime_chunks(samples: np.ndarray, chunk_ms: float = 10.0, *, speed: float = 1.0) -> Iterator[np.ndarray]:
    """Yield chunks of a recording on a real-time schedule (absolute deadlines: a chunk
    "arrives" when its last sample would have been spoken)."""
    n = int(ANALYSIS_RATE * chunk_ms / 1000)
    t0 = time.perf_counter()
    for i in range(0, samples.size, n):
        deadline = t0 + (i + n) / ANALYSIS_RATE / speed
        delay = deadline - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        yield samples[i:i + n]


def pcm_chunks(stream: BinaryIO, max_bytes: int = 4096) -> Iterator[np.ndarray]:
    """Raw s16le mono audio from a pipe as it arrives: ``read1`` returns whatever the pipe holds
    (up to ``max_bytes``) without waiting for a full buffer, so no sample waits in Python's
    buffering while the speaker talks, and each chunk's arrival is when it really came."""
    read = getattr(stream, "read1", stream.read)
    carry = b""
    while True:
        b = read(max_bytes)
        if not b:
            return
        b = carry + b
        whole = len(b) // 2 * 2
        carry = b[whole:]
        if whole:
            yield np.frombuffer(b[:whole], "<i2").astype(np.float32) / 32768


def run_live(chunks: Iterable[np.ndarray], host: str, port: int, live: LiveLipSync,
             on_message: Callable[[np.ndarray], None] | None = None) -> LiveStats:
    """Send one VMC message per hop to host:port over UDP. A chunk's arrival is when the source
    hands it over; each datagram's latency runs from there to ``sendto`` returning. An
    unreachable receiver is not fatal (UDP): errors are counted and sending goes on."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    stats = LiveStats()
    try:
        for chunk in chunks:
            arrived = time.perf_counter_ns()
            for hop in live.feed(chunk):
                try:
                    sock.sendto(hop.message, (host, port))
                    stats.sent += 1
                    stats.latencies_ms.append((time.perf_counter_ns() - arrived) / 1e6)
                except OSError:
                    stats.errors += 1
                if on_message:
                    on_message(hop.weights)
    finally:
        sock.close()
    return stats

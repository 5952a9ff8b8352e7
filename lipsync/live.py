"""Live lip sync: audio chunks in, VMC blendshape messages out (``/VMC/Ext/Blend/Val`` per VRM
vowel + ``/VMC/Ext/Blend/Apply``), with the latency from a chunk's arrival to its message
measured. Vowels come from MFCC templates calibrated per speaker (``mfcc.VowelTemplates``);
without templates the mouth opens by loudness only (``A``).

Sans-I/O core (``LiveLipSync.feed(samples) -> [(weights, bytes)]``) driven by a UDP sender and
a source that plays a file in real time or reads raw PCM from a stream.
"""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from machinima.vmc import encode_blendshapes

from .audio import ANALYSIS_RATE
from .errors import LipSyncError
from .mfcc import FRAME, HOP, VowelTemplates, mfcc
from .visemes import VRM_CHANNELS

VRM_BLEND_NAMES = {"A": "A", "I": "I", "U": "U", "E": "E", "O": "O"}


@dataclass
class LiveLipSync:
    templates: VowelTemplates | None = None
    attack: float = 0.03
    release: float = 0.08
    gate_rms: float = 0.01
    _buf: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    _state: np.ndarray = field(default_factory=lambda: np.zeros(5, np.float32))
    latencies_ms: list[float] = field(default_factory=list)

    def feed(self, samples: np.ndarray, arrived_ns: int | None = None) -> list[tuple[np.ndarray, bytes]]:
        """Consume 16 kHz samples; one VMC message per complete 10 ms hop."""
        arrived_ns = arrived_ns or time.perf_counter_ns()
        self._buf = np.concatenate([self._buf, np.asarray(samples, np.float32)])
        if self._buf.size < FRAME:
            return []
        n = 1 + (self._buf.size - FRAME) // HOP
        window = self._buf[: FRAME + (n - 1) * HOP]
        self._buf = self._buf[n * HOP:]
        if self.templates is not None:
            weights = self.templates.weights(window)
        else:
            _, rms = mfcc(window)
            weights = np.zeros((rms.size, 5), np.float32)
            weights[:, 0] = np.clip((rms - self.gate_rms) / (8 * self.gate_rms), 0, 1)
        out = []
        dt = HOP / ANALYSIS_RATE
        up, down = 1 - np.exp(-dt / self.attack), 1 - np.exp(-dt / self.release)
        for w in weights:
            k = np.where(w > self._state, up, down)
            self._state = self._state + (w - self._state) * k
            msg = encode_blendshapes({VRM_BLEND_NAMES[c]: float(v) for c, v in zip(VRM_CHANNELS, self._state)})
            out.append((self._state.copy(), msg))
        self.latencies_ms.append((time.perf_counter_ns() - arrived_ns) / 1e6)
        return out


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
    """Yield chunks of a recording on a real-time schedule (absolute deadlines)."""
    n = int(ANALYSIS_RATE * chunk_ms / 1000)
    t0 = time.perf_counter()
    for i in range(0, samples.size, n):
        deadline = t0 + (i + n) / ANALYSIS_RATE / speed
        delay = deadline - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        yield samples[i:i + n]


def run_live(chunks: Iterator[np.ndarray], host: str, port: int, live: LiveLipSync,
             on_message: Callable[[np.ndarray], None] | None = None) -> int:
    """Send one VMC message per hop to host:port over UDP; returns messages sent. An unreachable
    receiver is not fatal (UDP): errors are counted and sending goes on."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sent = errors = 0
    try:
        for chunk in chunks:
            for weights, msg in live.feed(chunk):
                try:
                    sock.sendto(msg, (host, port))
                    sent += 1
                except OSError:
                    errors += 1
                if on_message:
                    on_message(weights)
    finally:
        sock.close()
    return sent

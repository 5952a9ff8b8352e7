"""Live lip sync's latency measured from outside, as a performer would feel it.

``measure_live_command`` starts ``machinima lipsync live --input -`` as a subprocess, writes PCM
into its stdin at the speaker's pace (10 ms chunks on absolute deadlines, like a sound card),
catches its VMC datagrams with a UDP receiver on loopback, and pairs them: datagram ``k`` belongs
to the window ending at sample ``FRAME + k * HOP``, which cannot be analysed before the chunk
holding that sample was written. Everything between (pipe, Python's buffering, analysis,
smoothing, OSC encoding, the socket) is inside the figure. Used by the tests and
``bench/lipsync.py``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from .errors import LipSyncError
from .mfcc import FRAME, HOP

CHUNK = 160  # samples: 10 ms at 16 kHz


@dataclass
class LiveMeasurement:
    """What came back: per datagram its arrival (ns) and bytes, and the write time of each chunk."""

    written_ns: list[int] = field(default_factory=list)
    received: list[tuple[int, bytes]] = field(default_factory=list)
    stdout: str = ""
    stderr: str = ""

    def latencies_ms(self) -> np.ndarray:
        """Per datagram: ms from writing the chunk that completed its window to receiving it."""
        return np.array([(t - self.written_ns[(FRAME + k * HOP - 1) // CHUNK]) / 1e6
                         for k, (t, _) in enumerate(self.received) if (FRAME + k * HOP - 1) // CHUNK < len(self.written_ns)])

    def since_sample_ms(self, sample: int) -> np.ndarray:
        """Per datagram: ms from writing the chunk holding ``sample`` to receiving it (negative before)."""
        t0 = self.written_ns[sample // CHUNK]
        return np.array([(t - t0) / 1e6 for t, _ in self.received])


def measure_live_command(samples: np.ndarray, *, extra_args: tuple[str, ...] = (), ready_timeout: float = 60.0) -> LiveMeasurement:
    """Run the live command on ``samples`` (16 kHz float) in real time; see the module doc."""
    pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(0.2)
    m = LiveMeasurement()
    done = threading.Event()

    def receive() -> None:
        while not done.is_set():
            try:
                data = rx.recv(65536)
            except socket.timeout:
                continue
            m.received.append((time.perf_counter_ns(), data))

    th = threading.Thread(target=receive, daemon=True)
    th.start()
    cmd = [sys.executable, "-m", "machinima", "lipsync", "live", "--vmc", f"127.0.0.1:{rx.getsockname()[1]}", "--input", "-", *extra_args]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
    try:
        ready = _readline(proc, ready_timeout)
        if "reading s16le" not in ready:
            raise LipSyncError(f"the live command did not start: {ready or proc.stderr.read().decode(errors='replace')}")
        t0 = time.perf_counter()
        for i in range(0, len(pcm), 2 * CHUNK):  # absolute deadlines: late writes do not pile up
            delay = t0 + i / 2 / 16000 - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            m.written_ns.append(time.perf_counter_ns())  # stamped before the write: a datagram can arrive before the write returns
            os.write(proc.stdin.fileno(), pcm[i:i + 2 * CHUNK])
        time.sleep(0.3)  # the last datagrams
        proc.stdin.close()
        m.stdout = proc.stdout.read().decode(errors="replace")
        proc.wait(timeout=30)
        m.stderr = proc.stderr.read().decode(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        done.set()
        th.join(2)
        rx.close()
    if proc.returncode != 0:
        raise LipSyncError(f"the live command failed ({proc.returncode}): {m.stderr.strip()[-300:]}")
    return m


def _readline(proc: subprocess.Popen, timeout: float) -> str:
    """The first line of the command's stderr, or '' after ``timeout`` seconds."""
    line: list[bytes] = []
    th = threading.Thread(target=lambda: line.append(proc.stderr.readline()), daemon=True)
    th.start()
    th.join(timeout)
    return line[0].decode(errors="replace") if line else ""

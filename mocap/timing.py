"""Timing of one performer's stream, sans-I/O: ordering, counters, jitter buffer, gap fill,
One-Euro smoothing, and per-source health figures.

``StreamTiming`` is fed frames as they arrive (``push``) and asked for the frames that are
ready at a given monotonic time (``pop_ready``). It orders by the sender's sample counter when
the protocol has one (Xsens), else by the sender's clock (VMC ``/VMC/Ext/T``), else by arrival.

Counters: ``received``, ``dropped`` (gaps in the sender's sequence), ``duplicates``,
``out_of_order`` (arrived after a later frame but still in time: reordered and delivered),
``late`` (arrived after a later frame was already released: not delivered live, still
recorded), ``filled`` (frames interpolated over short gaps, live output only).

Stamps: with a sender clock, a frame's stamp is the sender time mapped onto the local monotonic
clock by the transit of the first frame (``t_ns = sender_ns + anchor``): recorded timing is the
sender's own, free of network jitter, at most shifted by a constant. The anchor moves only when
the mapping breaks: a frame arriving ``reanchor_early_ms`` before its mapped time (the first
frame was held up) or ``reanchor_late_ms`` after it (the sender restarted its clock); each move
is counted as ``reanchored``. ``latency`` is each frame's transit above the smallest transit
seen. Without a sender clock the receive stamp is used.
"""

from __future__ import annotations

import bisect
import math
import time
from collections import Counter, deque
from dataclasses import dataclass, field

import numpy as np

from machinima import quat

from .frames import Frame

NS = 1_000_000_000


class StreamTiming:
    def __init__(self, *, delay_ms: float = 0.0, max_gap_ms: float = 100.0, fill_gaps: bool = True, max_buffer: int = 256,
                 reanchor_early_ms: float = 20.0, reanchor_late_ms: float = 1000.0) -> None:
        if delay_ms < 0 or max_gap_ms < 0:
            raise ValueError("delay_ms and max_gap_ms must be >= 0")
        self.delay_ns = int(delay_ms * 1e6)
        self.max_gap_ns = int(max_gap_ms * 1e6)
        self.fill_gaps = fill_gaps
        self.max_buffer = max_buffer
        self.reanchor_early_ns = int(reanchor_early_ms * 1e6)
        self.reanchor_late_ns = int(reanchor_late_ms * 1e6)
        self._anchor_ns: int | None = None
        self.counts: Counter[str] = Counter()
        self._buf: list[tuple[float, int, Frame]] = []  # (key, tiebreak, frame), sorted
        self._n = 0
        self._seen: deque[float] = deque(maxlen=64)
        self._seen_set: set[float] = set()
        self._max_key: float | None = None
        self._last_out: Frame | None = None
        self._last_key: float | None = None
        self._offset_ns: int | None = None
        self._periods: deque[float] = deque(maxlen=32)
        self._period: float | None = None  # median of _periods, refreshed every 16 frames
        self._n_periods = 0
        self.latency_ns: deque[int] = deque(maxlen=512)

    @staticmethod
    def _key(f: Frame) -> float:
        if f.seq is not None:
            return float(f.seq)
        if f.sender_time_s is not None:
            return f.sender_time_s
        return f.t_recv_ns / NS

    def push(self, f: Frame) -> bool:
        """Take a frame in; False when it is a duplicate (dropped)."""
        self.counts["received"] += 1
        if f.sender_time_s is not None:
            sender_ns = int(f.sender_time_s * NS)
            transit = f.t_recv_ns - sender_ns
            if self._offset_ns is None or transit < self._offset_ns:
                self._offset_ns = transit
            if self._anchor_ns is None:
                self._anchor_ns = transit
            elif transit < self._anchor_ns - self.reanchor_early_ns or transit > self._anchor_ns + self.reanchor_late_ns:
                self._anchor_ns = transit
                self.counts["reanchored"] += 1
            f.t_ns = sender_ns + self._anchor_ns
            self.latency_ns.append(transit - self._offset_ns)
        else:
            f.t_ns = f.t_recv_ns
        k = self._key(f)
        if k in self._seen_set:
            self.counts["duplicates"] += 1
            return False
        if len(self._seen) == self._seen.maxlen:
            self._seen_set.discard(self._seen[0])
        self._seen.append(k)
        self._seen_set.add(k)
        if self._last_key is not None and k < self._last_key:
            self.counts["late"] += 1
            f.meta["late"] = True
            return True  # the caller records it; it is not delivered live
        if self._max_key is not None and k < self._max_key:
            self.counts["out_of_order"] += 1
        self._max_key = k if self._max_key is None else max(self._max_key, k)
        self._n += 1
        bisect.insort(self._buf, (k, self._n, f))
        if len(self._buf) > self.max_buffer:
            self.counts["overflow"] += 1
            self._buf.pop(0)
        return True

    def pop_ready(self, now_ns: int | None = None) -> list[Frame]:
        """Frames whose hold time is over, in order, with interpolated frames over short gaps."""
        now = time.monotonic_ns() if now_ns is None else now_ns
        out: list[Frame] = []
        while self._buf and self._buf[0][2].t_recv_ns + self.delay_ns <= now:
            k, _, f = self._buf.pop(0)
            out.extend(self._release(k, f))
        return out

    def flush(self) -> list[Frame]:
        out: list[Frame] = []
        while self._buf:
            k, _, f = self._buf.pop(0)
            out.extend(self._release(k, f))
        return out

    def _release(self, k: float, f: Frame) -> list[Frame]:
        out: list[Frame] = []
        prev, pk = self._last_out, self._last_key
        if prev is not None and pk is not None:
            missing = self._missing(pk, k, f)
            if missing > 0:
                self.counts["dropped"] += missing
                span = f.t_ns - prev.t_ns
                if self.fill_gaps and 0 < span <= self.max_gap_ns and missing <= 64:
                    for j in range(1, missing + 1):
                        w = j / (missing + 1)
                        out.append(interpolate(prev, f, w))
                    self.counts["filled"] += missing
            elif f.seq is None:
                dt = k - pk
                if dt > 0:
                    self._periods.append(dt)
                    self._n_periods += 1
                    if self._n_periods in (4, 8) or self._n_periods % 16 == 0:
                        self._period = float(np.median(self._periods))
        out.append(f)
        self._last_out, self._last_key = f, k
        return out

    def _missing(self, pk: float, k: float, f: Frame) -> int:
        if f.seq is not None:
            return max(int(k - pk) - 1, 0)
        period = self._period
        if f.sender_time_s is None or period is None or period <= 0:
            return 0
        n = round((k - pk) / period) - 1
        return n if n > 0 and (k - pk) > 1.5 * period else 0


def interpolate(a: Frame, b: Frame, w: float) -> Frame:
    """A frame between a and b: positions lerped, rotations slerped."""
    pose = np.empty_like(a.pose)
    pose[:, :3] = a.pose[:, :3] + (b.pose[:, :3] - a.pose[:, :3]) * w
    pose[:, 3:7] = quat.slerp(a.pose[:, 3:7], b.pose[:, 3:7], w).astype(np.float32)
    t = int(a.t_ns + (b.t_ns - a.t_ns) * w)
    st = None if a.sender_time_s is None or b.sender_time_s is None else a.sender_time_s + (b.sender_time_s - a.sender_time_s) * w
    seq = None
    return Frame(a.performer, a.source, t, pose, st, seq, None, t_ns=t, interpolated=True)


class OneEuro:
    """One-Euro filter (Casiez et al. 2012) on whole poses (55, 7), per bone and channel.

    ``min_cutoff`` (Hz) sets smoothing when still, ``beta`` how fast it opens up with speed.
    Quaternions are sign-aligned to the previous output, filtered and renormalised. For live
    preview only: the take keeps the raw frames.
    """

    def __init__(self, *, min_cutoff: float = 1.0, beta: float = 0.5, d_cutoff: float = 1.0) -> None:
        if min_cutoff <= 0 or d_cutoff <= 0 or beta < 0:
            raise ValueError("min_cutoff and d_cutoff must be > 0 and beta >= 0")
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None
        self._t: int | None = None

    @staticmethod
    def _alpha(cutoff, dt: float):
        tau = 1.0 / (2 * math.pi * cutoff)
        return 1.0 / (1.0 + tau / dt)

    def __call__(self, pose: np.ndarray, t_ns: int) -> np.ndarray:
        x = np.asarray(pose, dtype=np.float64).copy()
        if self._x is None or self._t is None or t_ns <= self._t:
            if self._x is not None and self._t is not None and t_ns <= self._t:
                return self._x.astype(np.float32)
            self._x, self._dx, self._t = x, np.zeros_like(x), t_ns
            return x.astype(np.float32)
        dt = (t_ns - self._t) / NS
        sign = np.where(np.sum(x[:, 3:7] * self._x[:, 3:7], axis=1, keepdims=True) < 0, -1.0, 1.0)
        x[:, 3:7] *= sign
        dx = (x - self._x) / dt
        a_d = self._alpha(self.d_cutoff, dt)
        dx_hat = self._dx + a_d * (dx - self._dx)
        cutoff = self.min_cutoff + self.beta * np.abs(dx_hat)
        a = self._alpha(cutoff, dt)
        x_hat = self._x + a * (x - self._x)
        x_hat[:, 3:7] = quat.normalize(x_hat[:, 3:7])
        self._x, self._dx, self._t = x_hat, dx_hat, t_ns
        return x_hat.astype(np.float32)


@dataclass
class Health:
    """Per-source health: rate, loss, latency, last seen, rejections by reason."""

    name: str
    window_s: float = 2.0
    frames: int = 0
    packets: int = 0
    bytes: int = 0
    last_seen_ns: int | None = None
    rejects: Counter = field(default_factory=Counter)
    performers: set = field(default_factory=set)
    _stamps: deque = field(default_factory=lambda: deque(maxlen=8192))

    def saw_packet(self, n_bytes: int, now_ns: int) -> None:
        self.packets += 1
        self.bytes += n_bytes
        self.last_seen_ns = now_ns

    def saw_frame(self, performer: str, now_ns: int) -> None:
        self.frames += 1
        self.performers.add(performer)
        self._stamps.append(now_ns)

    def rate_hz(self, now_ns: int | None = None) -> float:
        now = time.monotonic_ns() if now_ns is None else now_ns
        lo = now - int(self.window_s * NS)
        n = sum(1 for s in self._stamps if s >= lo)
        return n / self.window_s

    def summary(self, timings: dict[str, StreamTiming] | None = None, now_ns: int | None = None) -> dict:
        now = time.monotonic_ns() if now_ns is None else now_ns
        counts: Counter[str] = Counter()
        lat: list[int] = []
        for t in (timings or {}).values():
            counts.update(t.counts)
            lat.extend(t.latency_ns)
        received = counts.get("received", 0)
        dropped = counts.get("dropped", 0)
        loss = 100.0 * dropped / (received + dropped) if received + dropped else 0.0
        lat_sorted = sorted(lat)

        def pct(p: float) -> float | None:
            if not lat_sorted:
                return None
            return lat_sorted[min(len(lat_sorted) - 1, int(p * len(lat_sorted)))] / 1e6

        return {
            "source": self.name,
            "performers": sorted(self.performers),
            "packets": self.packets,
            "frames": self.frames,
            "rate_hz": round(self.rate_hz(now), 1),
            "loss_pct": round(loss, 3),
            "latency_ms_p50": pct(0.5),
            "latency_ms_p99": pct(0.99),
            "last_seen_s": None if self.last_seen_ns is None else round((now - self.last_seen_ns) / NS, 3),
            "rejects": dict(self.rejects),
            "timing": {k: v for k, v in counts.items()},
        }

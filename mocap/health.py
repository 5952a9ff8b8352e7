"""Per-source health figures of a listener (rate, loss, transit, how far behind, rejections),
each saying what it measures. Split from ``mocap.timing`` (which re-exports ``Health``)."""

from __future__ import annotations

import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .timing import StreamTiming

NS = 1_000_000_000

__all__ = ["Health"]


def _pct(sorted_ns: list[int], p: float) -> float | None:
    if not sorted_ns:
        return None
    return round(sorted_ns[min(len(sorted_ns) - 1, int(p * len(sorted_ns)))] / 1e6, 3)


@dataclass
class Health:
    """Per-source health: rate, loss, transit, how far the listener is behind, last seen,
    rejections by reason.

    ``summary()`` says what each figure measures: ``transit_ms_p50/p99`` is each frame's
    transit (sender clock to the kernel's arrival stamp) above the smallest transit seen, i.e.
    network and sender jitter (None without a sender clock: nothing to measure it against);
    ``behind_ms_p99`` is how long datagrams waited in the socket before the listener read them;
    ``loss_pct`` is None ("unknown") when no stream has a sample counter or a sender clock
    (VMC without ``/VMC/Ext/T``): a missing frame cannot be told from a pause.
    """

    name: str
    window_s: float = 2.0
    frames: int = 0
    packets: int = 0
    bytes: int = 0
    last_seen_ns: int | None = None
    rejects: Counter = field(default_factory=Counter)
    performers: set = field(default_factory=set)
    _stamps: deque = field(default_factory=lambda: deque(maxlen=8192))
    behind_ns: deque = field(default_factory=lambda: deque(maxlen=2048))

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
        known = False
        for t in (timings or {}).values():
            counts.update(t.counts)
            lat.extend(t.latency_ns)
            known = known or t.loss_known
        received = counts.get("received", 0)
        dropped = counts.get("dropped", 0)
        loss = None
        if known:
            loss = round(100.0 * dropped / (received + dropped), 3) if received + dropped else 0.0
        lat.sort()
        behind = sorted(self.behind_ns)
        return {
            "source": self.name,
            "performers": sorted(self.performers),
            "packets": self.packets,
            "frames": self.frames,
            "rate_hz": round(self.rate_hz(now), 1),
            "loss_pct": loss,
            "transit_ms_p50": _pct(lat, 0.5),
            "transit_ms_p99": _pct(lat, 0.99),
            "behind_ms_p99": _pct(behind, 0.99),
            "last_seen_s": None if self.last_seen_ns is None else round((now - self.last_seen_ns) / NS, 3),
            "rejects": dict(self.rejects),
            "timing": {k: v for k, v in counts.items()},
        }

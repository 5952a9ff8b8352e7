"""Drift-free real-time scheduling: absolute deadlines, sleep then spin, measured jitter.

``Ticker`` calls a function at ``start + k * period`` for k = 0, 1, 2 ... Deadlines are computed
from the start and the tick number with integer nanoseconds (exact for rational rates such as
29.97), never by adding ``sleep(dt)`` after each tick, so lateness never accumulates. It sleeps
until ``spin_ns`` before a deadline and spins on ``time.perf_counter_ns`` for the rest, which
keeps the wake-up error well under a millisecond on a loaded machine. When a tick is more than
``max_late_periods`` late (the process was stopped, the machine stalled), the missed deadlines
are skipped and counted instead of being sent in a burst.

``Playhead`` is the media clock of a playback: position = anchor + (now - wall anchor) * speed,
re-anchored on pause, play, seek and speed changes (also absolute, so also drift-free).
Both are thread-safe where they must be: the playhead is driven from a CLI keyboard thread or a
plugin connection while the ticker reads it.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Callable

import numpy as np

from machinima.timecode import NS_PER_S, parse_rate

from .errors import BridgeError


@dataclass
class JitterStats:
    """Wake-up error (actual - deadline) of every tick, in nanoseconds."""

    late_ns: list[int] = field(default_factory=list)
    skipped: int = 0
    ticks: int = 0
    busy_ns: int = 0  # time spent inside the tick function
    realtime: bool = False  # the ticking thread ran with the SCHED_FIFO real-time policy

    def add(self, late: int) -> None:
        self.late_ns.append(late)
        self.ticks += 1

    def summary(self) -> dict[str, float]:
        """mean / p50 / p99 / max of the absolute deviation from schedule, in milliseconds."""
        if not self.late_ns:
            return {"ticks": 0, "skipped": self.skipped, "realtime": self.realtime, "mean_ms": 0.0, "p50_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0}
        a = np.abs(np.asarray(self.late_ns, dtype=np.float64)) / 1e6
        return {
            "ticks": self.ticks,
            "skipped": self.skipped,
            "realtime": self.realtime,
            "mean_ms": round(float(a.mean()), 4),
            "p50_ms": round(float(np.percentile(a, 50)), 4),
            "p99_ms": round(float(np.percentile(a, 99)), 4),
            "max_ms": round(float(a.max()), 4),
        }


class Ticker:
    """Calls ``tick(k, deadline_ns)`` at absolute deadlines ``start + k * period``.

    ``rate`` in Hz (exact rationals accepted: "59.94"); ``spin_ns``: how long before a deadline
    the sleep ends and the spin begins (0 = sleep only); ``max_late_periods``: beyond this
    lateness, missed ticks are skipped (counted in ``stats.skipped``).
    """

    def __init__(
        self,
        rate: float | str | Fraction,
        *,
        spin_ns: int = 1_000_000,
        max_late_periods: int = 2,
        clock: Callable[[], int] = time.perf_counter_ns,
        sleep: Callable[[float], None] = time.sleep,
        realtime: bool = True,
        rt_priority: int = 10,
    ) -> None:
        self.realtime = realtime
        self.rt_priority = rt_priority
        try:
            self.rate = parse_rate(rate)
        except Exception as exc:
            raise BridgeError(f"tick rate {rate!r} is not usable: {exc}") from None
        if spin_ns < 0 or max_late_periods < 1:
            raise BridgeError("spin_ns must be >= 0 and max_late_periods >= 1")
        self.spin_ns = int(spin_ns)
        self.max_late_periods = int(max_late_periods)
        self.clock = clock
        self.sleep = sleep
        self.stats = JitterStats()
        self._stop = threading.Event()

    @property
    def period_ns(self) -> float:
        return NS_PER_S / float(self.rate)

    def deadline(self, start_ns: int, k: int) -> int:
        return start_ns + (k * NS_PER_S * self.rate.denominator) // self.rate.numerator

    def stop(self) -> None:
        """Ask a running ``run`` to return after the current tick (thread-safe)."""
        self._stop.set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def wait_until(self, deadline_ns: int) -> int:
        """Sleep, then spin, until ``deadline_ns``; returns the wake-up time."""
        clock = self.clock
        now = clock()
        remaining = deadline_ns - now
        if remaining > self.spin_ns:
            self.sleep((remaining - self.spin_ns) / NS_PER_S)
            now = clock()
        while now < deadline_ns:
            now = clock()
        return now

    def run(self, tick: Callable[[int, int], bool | None], *, max_ticks: int | None = None, start_ns: int | None = None) -> JitterStats:
        """Tick until ``tick`` returns False, ``stop()`` is called, or ``max_ticks`` ran."""
        self._stop.clear()
        restore = self._enter_realtime() if self.realtime else None
        old_switch = sys.getswitchinterval()
        sys.setswitchinterval(min(old_switch, 0.0005))
        try:
            return self._run(tick, max_ticks, start_ns)
        finally:
            sys.setswitchinterval(old_switch)
            if restore is not None:
                try:
                    os.sched_setscheduler(0, *restore)
                except OSError:
                    pass

    def _enter_realtime(self) -> tuple[int, object] | None:
        if not hasattr(os, "sched_setscheduler"):
            return None
        try:
            old = (os.sched_getscheduler(0), os.sched_getparam(0))
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(self.rt_priority))
        except (OSError, AttributeError):
            return None
        self.stats.realtime = True
        return old

    def _run(self, tick: Callable[[int, int], bool | None], max_ticks: int | None, start_ns: int | None) -> JitterStats:
        clock = self.clock
        start = clock() if start_ns is None else int(start_ns)
        k = 0
        limit = self.max_late_periods * self.period_ns
        while not self._stop.is_set() and (max_ticks is None or self.stats.ticks < max_ticks):
            deadline = self.deadline(start, k)
            now = self.wait_until(deadline)
            late = now - deadline
            if late > limit:
                # Stalled: jump to the most recent deadline instead of bursting the missed ones.
                missed = int(late // self.period_ns)
                self.stats.skipped += missed
                k += missed
                deadline = self.deadline(start, k)
                late = now - deadline
            self.stats.add(late)
            t0 = clock()
            keep = tick(k, deadline)
            self.stats.busy_ns += clock() - t0
            if keep is False:
                break
            k += 1
        return self.stats


def naive_loop(rate: float, tick: Callable[[int, int], object], n: int, clock: Callable[[], int] = time.perf_counter_ns) -> JitterStats:
    """The baseline: ``tick(); sleep(period)`` with the error measured against the ideal
    schedule (lateness accumulates). Used by the benchmark and the tests for comparison."""
    stats = JitterStats()
    period = NS_PER_S / rate
    start = clock()
    for k in range(n):
        now = clock()
        stats.add(int(now - (start + k * period)))
        tick(k, now)
        time.sleep(1.0 / rate)
    return stats


class Playhead:
    """Media time of a playback in seconds within ``[lo_s, hi_s]``, thread-safe.

    ``position()`` is computed from the wall clock and an anchor, so it never drifts; pause,
    play, seek and speed re-anchor. With ``loop`` the position wraps to ``lo_s`` at ``hi_s``.
    """

    def __init__(
        self,
        lo_s: float,
        hi_s: float,
        *,
        speed: float = 1.0,
        loop: bool = False,
        tail_s: float = 0.0,
        clock: Callable[[], int] = time.perf_counter_ns,
    ) -> None:
        if hi_s < lo_s:
            raise BridgeError(f"playback range is empty: from {lo_s:.3f} s to {hi_s:.3f} s")
        self._check_speed(speed)
        self.lo_s = float(lo_s)
        self.hi_s = float(hi_s)
        self.loop = loop
        self.tail_s = float(tail_s)  # a loop lasts hi - lo + tail (the last frame's duration)
        self.clock = clock
        self._lock = threading.Lock()
        self._speed = float(speed)
        self._paused = False
        self._anchor_s = self.lo_s
        self._wall_ns = clock()
        self.version = 0  # bumps on every change, so observers can report state changes

    @staticmethod
    def _check_speed(speed: float) -> None:
        if not (0.0 < float(speed) <= 16.0):
            raise BridgeError(f"speed {speed} is out of range", hint="use a factor in (0, 16], e.g. 0.5 for half speed")

    def _raw(self, now: int) -> float:
        if self._paused:
            return self._anchor_s
        return self._anchor_s + (now - self._wall_ns) / NS_PER_S * self._speed

    def _wrap(self, pos: float) -> float:
        if pos < self.lo_s:
            return self.lo_s
        span = self.hi_s - self.lo_s + self.tail_s
        if self.loop and span > 0:
            pos = self.lo_s + max((pos - self.lo_s + 1e-9) % span - 1e-9, 0.0)  # 1 ns guards float modulo
        return min(pos, self.hi_s)

    def position(self, now_ns: int | None = None) -> float:
        with self._lock:
            return self._wrap(self._raw(self.clock() if now_ns is None else now_ns))

    def finished(self, now_ns: int | None = None) -> bool:
        """True once a non-looping playback has passed its end (never while paused)."""
        with self._lock:
            if self.loop or self._paused:
                return False
            return self._raw(self.clock() if now_ns is None else now_ns) > self.hi_s

    def _reanchor(self, pos: float | None = None) -> None:
        now = self.clock()
        self._anchor_s = self._wrap(self._raw(now) if pos is None else pos)
        self._wall_ns = now
        self.version += 1

    def restart(self, start_ns: int) -> None:
        """Anchor the playhead at its current position to the wall time ``start_ns`` (the
        ticker's first deadline), so tick k samples exactly ``k * period * speed`` later."""
        with self._lock:
            self._anchor_s = self._wrap(self._anchor_s)
            self._wall_ns = int(start_ns)
            self.version += 1

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def speed(self) -> float:
        return self._speed

    def pause(self) -> None:
        with self._lock:
            if not self._paused:
                self._reanchor()
                self._paused = True

    def play(self) -> None:
        with self._lock:
            if self._paused:
                self._reanchor()
                self._paused = False

    def toggle(self) -> None:
        (self.play if self._paused else self.pause)()

    def seek(self, pos_s: float) -> None:
        with self._lock:
            self._reanchor(min(max(float(pos_s), self.lo_s), self.hi_s))

    def nudge(self, delta_s: float) -> None:
        with self._lock:
            self._reanchor(min(max(self._raw(self.clock()) + delta_s, self.lo_s), self.hi_s))

    def set_speed(self, speed: float) -> None:
        self._check_speed(speed)
        with self._lock:
            self._reanchor()
            self._speed = float(speed)

    def state(self) -> str:
        if self._paused:
            return "paused"
        return "stopped" if self.finished() else "playing"

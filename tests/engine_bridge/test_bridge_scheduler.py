"""The ticker keeps absolute deadlines (no drift), skips when stalled, and measures jitter;
the playhead pauses, seeks, changes speed and loops without drift."""

from __future__ import annotations

import time
from fractions import Fraction

import numpy as np
import pytest

from engine_bridge.errors import BridgeError
from engine_bridge.scheduler import Playhead, Ticker, naive_loop


def test_deadlines_are_exact_for_rational_rates():
    t = Ticker("29.97")
    assert t.rate == Fraction(30000, 1001)
    start = 123
    # 30000 ticks of 29.97 fps are exactly 1001 seconds: no rounding error accumulates.
    assert t.deadline(start, 30000) == start + 1001 * 1_000_000_000
    assert t.deadline(start, 1) == start + 33_366_666


def test_slow_ticks_do_not_accumulate_lateness():
    """A tick that takes 60% of the period every few ticks must not push later deadlines."""
    rate = 100
    t = Ticker(rate)
    wakes = []

    def tick(k, deadline):
        wakes.append((k, time.perf_counter_ns(), deadline))
        if k % 3 == 0:
            time.sleep(0.006)

    start = time.perf_counter_ns() + 1_000_000
    t.run(tick, max_ticks=60, start_ns=start)
    ks = np.array([w[0] for w in wakes])
    assert list(ks) == list(range(60))
    late = np.array([w[1] - (start + k * 10_000_000) for k, w in zip(ks, wakes)]) / 1e6
    # The last tick is as close to its deadline as the first: no accumulation.
    assert np.median(late[-10:]) < 2.0
    # The naive loop with the same slow tick drifts by at least the sleep time per slow tick.
    naive = naive_loop(rate, lambda k, d: time.sleep(0.006) if k % 3 == 0 else None, 30)
    assert naive.late_ns[-1] / 1e6 > 20 * 6 / 3 * 0.5
    assert abs(late[-1]) < naive.late_ns[-1] / 1e6


def test_stall_skips_missed_ticks_instead_of_bursting():
    t = Ticker(200, max_late_periods=2)
    seen = []

    def tick(k, deadline):
        seen.append(k)
        if len(seen) == 6:
            time.sleep(0.05)  # 10 periods

    stats = t.run(tick, max_ticks=20)
    assert stats.skipped >= 7
    assert seen[6] - seen[5] >= 8, seen  # jumped ahead
    assert all(b > a for a, b in zip(seen, seen[1:]))


def test_jitter_is_measured_and_small():
    t = Ticker(120)
    stats = t.run(lambda k, d: None, max_ticks=120)
    s = stats.summary()
    assert s["ticks"] == 120 and set(s) >= {"mean_ms", "p50_ms", "p99_ms", "max_ms", "realtime"}
    # With the real-time policy (root here) the spin keeps p99 under a millisecond on a quiet
    # machine (the benchmark measures it; 3 ms leaves room for a shared CI box); an
    # ordinary thread on a shared 2-core machine can lose a whole scheduler slice.
    assert s["p99_ms"] < (3.0 if s["realtime"] else 10.0)
    assert s["p50_ms"] < 0.5


def test_stop_from_another_thread():
    import threading

    t = Ticker(100)
    threading.Timer(0.1, t.stop).start()
    t0 = time.monotonic()
    stats = t.run(lambda k, d: None)
    assert time.monotonic() - t0 < 2 and 5 <= stats.ticks <= 40


def test_bad_rates_are_errors():
    with pytest.raises(BridgeError):
        Ticker(0)
    with pytest.raises(BridgeError):
        Ticker("fast")


class FakeClock:
    def __init__(self):
        self.now = 0

    def __call__(self):
        return self.now

    def advance(self, s):
        self.now += int(s * 1e9)


def test_playhead_pause_seek_speed_loop():
    c = FakeClock()
    ph = Playhead(0.0, 10.0, clock=c)
    c.advance(2)
    assert ph.position() == pytest.approx(2.0)
    ph.pause()
    c.advance(5)
    assert ph.position() == pytest.approx(2.0) and ph.state() == "paused"
    ph.play()
    c.advance(1)
    assert ph.position() == pytest.approx(3.0)
    ph.set_speed(0.5)
    c.advance(2)
    assert ph.position() == pytest.approx(4.0)
    ph.seek(9.0)
    c.advance(4)  # 2 s of media at half speed -> past the end, no loop: held at the end
    assert ph.position() == pytest.approx(10.0) and ph.finished()
    ph.loop = True
    assert ph.position() == pytest.approx(1.0) and not ph.finished()
    ph.seek(-5)
    assert ph.position() == pytest.approx(0.0)
    with pytest.raises(BridgeError):
        ph.set_speed(0)
    with pytest.raises(BridgeError):
        Playhead(5.0, 1.0)


def test_playhead_has_no_drift_over_many_reads():
    c = FakeClock()
    ph = Playhead(0.0, 1e6, clock=c, speed=1.5)
    for _ in range(100000):
        c.now += 8_333_333
        ph.position()
    assert ph.position() == pytest.approx(100000 * 8_333_333 / 1e9 * 1.5, abs=1e-6)

"""Frames without a sender clock (senders without /VMC/Ext/T, or a clock lost mid-stream) are
placed by their arrival and never counted late because of it."""

from __future__ import annotations

import numpy as np

from machinima.skeleton import rest_pose
from mocap.frames import Frame
from mocap.timing import StreamTiming

MS = 1_000_000


def _push(st: StreamTiming, recv_ns: int, sender_s: float | None) -> Frame:
    f = Frame("a", "vmc", recv_ns, rest_pose(), sender_s)
    assert st.push(f)
    st.pop_ready(recv_ns)
    return f


def test_clockless_stamps_that_step_back_are_not_late():
    """Receive stamps of one socket can step back a little (two clocks read a moment apart
    when kernel stamps are mapped onto the monotonic clock): the frames still came in order."""
    st = StreamTiming(fill_gaps=False)
    rng = np.random.default_rng(3)
    base = 10_000 * MS
    stamps = [base + k * 8 * MS + int(rng.integers(-3, 4)) * 1000 for k in range(200)]
    stamps[50] = stamps[49] - 2000  # a stamp before the previous one
    frames = [_push(st, t, None) for t in stamps]
    assert st.counts["late"] == 0 and st.counts["received"] == 200
    t = np.array([f.t_ns for f in frames])
    assert (np.diff(t) > 0).all()
    assert abs(int(t[50]) - stamps[49]) < 10  # placed right after the frame before it


def test_lost_clock_while_anchor_slews_is_not_late():
    """A sender whose first frame was held up (the anchor then slews down) loses its clock: the
    frames after it are placed after the last clocked frame, not before it."""
    st = StreamTiming(fill_gaps=False)
    t0 = 50_000 * MS
    frames = [_push(st, t0 + 40 * MS, 0.0)]  # held up 40 ms
    for k in range(1, 4):  # then on time: the anchor heads 39 ms down, at most 4 ms a frame
        frames.append(_push(st, t0 + int(k / 120 * 1e9) + MS, k / 120))
    for k in range(4, 40):  # clock lost
        frames.append(_push(st, t0 + int(k / 120 * 1e9) + MS, None))
    assert st.counts["late"] == 0 and st.counts["received"] == 40
    t = np.array([f.t_ns for f in frames])
    assert (np.diff(t) > 0).all()
    # the clockless frames keep their spacing on arrival (8.3 ms) once they are past the held-up ones
    assert abs(np.median(np.diff(t[-20:])) - 1e9 / 120) < 1000


def test_a_frame_without_its_clock_does_not_make_the_next_ones_late():
    """Under a flood datagrams queue up (transit grows) and some are lost: a split frame whose
    part with T was lost comes out without a clock. Placed by the smallest transit it would land
    after the frames that follow it, and they would all count as late."""
    st = StreamTiming(fill_gaps=False)
    t0 = 80_000 * MS
    frames = []
    for k in range(300):
        queue = min(k, 200) * 200_000  # the socket fills: 0.2 ms more delay a frame, up to 40 ms
        recv = t0 + int(k / 1000 * 1e9) + MS + queue
        frames.append(_push(st, recv, None if k % 7 == 3 else k / 1000))  # every 7th frame lost its T
    assert st.counts["late"] == 0 and st.counts["received"] == 300
    t = np.array([f.t_ns for f in frames])
    assert (np.diff(t) > 0).all()
    clockless = [k for k in range(300) if k % 7 == 3]
    # each is placed between its neighbours on the sender's time line
    for k in clockless[1:-1]:
        assert frames[k - 1].t_ns < frames[k].t_ns < frames[k + 1].t_ns

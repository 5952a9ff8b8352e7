"""machinima.vmc_frames without sockets: datagrams built with python-osc, stamped by the test,
fed to one VMCAssembler; every frame checked against the truth the test built."""

from __future__ import annotations

import numpy as np
from pythonosc.osc_bundle_builder import OscBundleBuilder

from machinima import vmc
from vmc_senders import BLEND, APPLY, bundle, expected_pose, frame_messages, message, root_values, split

US = 1_000


def _run(datagrams, asm=None, dec=None):
    """Feed (bytes, t_ns) pairs; returns the frames in order."""
    asm = asm or vmc.VMCAssembler()
    dec = dec or vmc.VMCDecoder()
    out = []
    for data, t in datagrams:
        pkt = dec.feed(data)
        if pkt is not None:
            out += asm.feed(pkt, t)
    return out, asm


def _single_stream(frames: int, *, intra_us: int, period_us: int, markers: str = "first"):
    """A single-message sender: frame k's messages ``intra_us`` apart, frames ``period_us`` apart."""
    out = []
    for k in range(frames):
        for j, m in enumerate(frame_messages(k, time_s=k / 60, ok=False, markers=markers)):
            out.append((m.dgram, 10**9 + k * period_us * US + j * intra_us * US))
    return out


def _frame_index(f) -> int:
    return int(round(f.time_s * 60))


def _assert_true_frame(f) -> None:
    k = _frame_index(f)
    np.testing.assert_allclose(f.pose, expected_pose(k, root=root_values(k)), atol=2e-6, err_msg=f"frame {k} mixes two frames")


def test_joined_mid_frame_the_head_vote_finds_the_boundary():
    """A listener that starts in the middle of a single-message stream (T first, 57 messages a
    frame): the first frames straddle two sender frames, then the head (the datagram after the
    longest silence) is learned and every frame is whole again."""
    stream = _single_stream(30, intra_us=20, period_us=16_667)[30:]  # joined at message 30 of frame 0
    frames, asm = _run(stream)
    assert asm.head == frozenset({vmc.KEY_TIME})
    whole = frames[-20:]
    for f in whole:
        _assert_true_frame(f)
    assert [_frame_index(f) for f in whole] == list(range(10, 30))  # the last one too: its layout is complete
    assert asm.poll(stream[-1][1] + 50_000 * US) == []


def test_flood_without_pauses_needs_no_head():
    """Datagrams evenly spaced (a sender flooding as fast as it can): no head is learned, the
    phase set at the start of the stream holds, frames are emitted as soon as they are complete."""
    stream = _single_stream(20, intra_us=5, period_us=57 * 5, markers="last")
    frames, asm = _run(stream)
    assert asm.head is None
    assert [_frame_index(f) for f in frames] == list(range(20))
    for f in frames:
        _assert_true_frame(f)
    assert asm.ended.get("layout", 0) == 19


def test_real_time_tags_group_datagrams():
    """Bundles that carry real OSC time tags (not "immediately") and no T or OK: the datagrams of
    one tag are one frame; the next tag ends it (then the learned layout does)."""
    data = []
    for k in range(6):
        for part in split(frame_messages(k, ok=False), 3):
            b = OscBundleBuilder(1_700_000_000 + k / 60)
            for m in part:
                b.add_content(m)
            data.append((b.build().dgram, 10**9 + k * 1000 * US))
    frames, asm = _run(data)
    frames += asm.flush()
    assert [f.ended_by for f in frames] == ["timetag"] + ["layout"] * 5 and all(f.parts == 3 for f in frames)
    for k, f in enumerate(frames):
        np.testing.assert_allclose(f.pose, expected_pose(k, root=root_values(k)), atol=2e-6)


def test_face_only_sender_has_no_pose():
    dgrams = [(bundle([message(BLEND, "A", 0.25), message(BLEND, "E", 0.5), message(APPLY)]).dgram, 10**9 + k * 16_000 * US) for k in range(3)]
    frames, asm = _run(dgrams)
    frames += asm.flush()
    assert len(frames) == 3 and not any(f.has_pose for f in frames)
    assert frames[-1].blendshapes == {"A": 0.25, "E": 0.5}


def test_stamped_once_by_the_first_part():
    """A frame split in two: its stamp is the first datagram's arrival and its T, whichever part
    carries T (the old listener stamped the T-less part with the receive clock)."""
    data = []
    for k in range(4):
        a, b = split(frame_messages(k, time_s=k / 60, markers="last"), 2)
        data += [(bundle(a).dgram, 10**9 + k * 16_000 * US), (bundle(b).dgram, 10**9 + k * 16_000 * US + 300 * US)]
    frames, _ = _run(data)
    assert [f.t_recv_ns for f in frames] == [10**9 + k * 16_000 * US for k in range(4)]
    assert [f.parts for f in frames] == [2, 2, 2, 2] and all(f.ended_by == "marker" for f in frames)


def test_a_sender_held_up_mid_frame_keeps_its_frame_whole():
    """A sender splitting each frame over 3 bundles (T and OK last) is held up between two
    parts for longer than ``idle_ms`` (a loaded machine): the listener polls meanwhile, but a
    frame known to lack parts waits ``stall_ms``, so the late rest joins its frame (one frame
    in, one frame out); a rest that never comes lets the partial frame out after ``stall_ms``."""
    asm, dec = vmc.VMCAssembler(idle_ms=50, stall_ms=250), vmc.VMCDecoder()
    frames, t = [], 10**9
    for k in range(6):
        parts = [bundle(p).dgram for p in split(frame_messages(k, time_s=k / 60, markers="last"), 3)]
        for j, d in enumerate(parts):
            if k == 4 and j == 1:
                t += 80_000 * US  # held up 80 ms before the second part
                assert asm.poll(t - 1) == []  # polled while held up: the first part is not a frame
            frames += asm.feed(dec.feed(d), t)
            t += 20 * US
        t += 16_667 * US
    assert [_frame_index(f) for f in frames] == list(range(6))
    for f in frames:
        _assert_true_frame(f)
    first = bundle(split(frame_messages(6, time_s=6 / 60, markers="last"), 3)[0]).dgram
    assert asm.feed(dec.feed(first), t) == []
    assert asm.poll(t + 249_000 * US) == []
    (last,) = asm.poll(t + 250_000 * US)  # the rest never came: out after stall_ms, as it is
    assert last.ended_by == "idle" and last.time_s is None

"""Xsens MVN datagrams: round trips (types 01/02, split samples), meta/scale/time code, counters,
and bad input (random bytes, truncated, wrong types, absurd counts, NaN)."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from machinima import skeleton
from mocap import xsens
from mocap.errors import XsensError
from mocap.retarget import fk
from mocap.synthetic import synthetic_poses

MAPPED = [skeleton.BONE_INDEX[b] for b in xsens.SEGMENT_BONES.values()]


def _pose(t=0.7, motion="walk"):
    return synthetic_poses(t, motion=motion, seed=2)[0]


@pytest.mark.parametrize("msg_type", [1, 2])
@pytest.mark.parametrize("split", [1, 3])
def test_pose_round_trip(msg_type, split):
    pose = _pose()
    dec = xsens.XsensDecoder()
    out = []
    for d in xsens.encode_pose(pose, 7, 1234, msg_type=msg_type, split=split, character=2):
        out += dec.feed(d)
    assert len(out) == 1 and out[0].sample == 7 and out[0].time_ms == 1234 and out[0].character == 2
    gp, gr = fk(pose)
    gq, gs = fk(out[0].pose)
    np.testing.assert_allclose(gq[MAPPED], gp[MAPPED], atol=1e-5)
    np.testing.assert_allclose(np.abs(np.sum(gr[MAPPED] * gs[MAPPED], axis=-1)), 1.0, atol=1e-5)


def test_counters_drop_dup_late_incomplete():
    pose = _pose()
    dec = xsens.XsensDecoder()
    frames = {k: xsens.encode_pose(pose, k, k * 8) for k in range(1, 8)}
    got = []
    for k in (1, 2, 2, 5, 4):  # dup of 2, gap of 3-4, then 4 arrives late: delivered, flagged
        got += dec.feed(frames[k][0])
    assert [s.sample for s in got] == [1, 2, 5, 4] and [s.late for s in got] == [False, False, False, True]
    assert dec.counts["dropped"] == 1 and dec.counts["duplicate"] == 1 and dec.counts["late"] == 1
    parts = xsens.encode_pose(pose, 9, 72, split=3)
    assert dec.feed(parts[0]) == [] and dec.feed(parts[2]) == []  # part 1 lost
    got = dec.feed(xsens.encode_pose(pose, 10, 80)[0])
    assert [s.sample for s in got] == [10] and dec.counts["incomplete"] == 0  # part 1 may still come
    got = dec.feed(xsens.encode_pose(pose, 10 + dec.reorder_window, 90)[0])
    assert dec.counts["incomplete"] == 1  # now it cannot


def test_meta_scale_timecode_and_points():
    dec = xsens.XsensDecoder()
    assert dec.feed(xsens.encode_meta(3, "Ana")) == []
    assert dec.names[3] == "Ana"
    dec.feed(xsens.encode_timecode(3, "01:02:03.040"))
    assert dec.timecodes[3] == "01:02:03.040" and xsens.timecode_seconds("01:02:03.040") == pytest.approx(3723.04)
    name = b"Pelvis"
    payload = struct.pack(">i", 1) + struct.pack(">i", len(name)) + name + struct.pack(">3f", 0.0, 0.0, 95.0) + struct.pack(">i", 0)
    dec.feed(xsens.encode_header(13, 0, 1, 0, len(payload), character=3) + payload)
    assert dec.scale[3]["Pelvis"] == (0.0, 0.0, 95.0)
    pts = struct.pack(">i3f", 269, 10.0, 95.0, 0.0)
    got = dec.feed(xsens.encode_header(3, 1, 1, 0, len(pts)) + pts)
    assert got[0].pose is None and np.allclose(got[0].points[269], [0.1, 0.95, 0.0])


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"MXTP02" + b"\x00" * 10, "truncated"),
        (b"XXXX02" + b"\x00" * 30, "not_mxtp"),
        (xsens.encode_header(2, 1, 23, 0, 100) + b"\x00" * 50, "truncated"),
        (xsens.encode_header(2, 1, 100, 0, 64) + b"\x00" * 64, "bad_count"),
        (xsens.encode_header(2, 1, 255, 0, 255 * 32) + b"\x00" * (255 * 32), "too_many_items"),
        (xsens.encode_header(20, 1, 1, 0, 4) + b"\x00" * 4, "ignored"),
        (xsens.encode_header(2, 1, 1, 0, 32) + struct.pack(">i7f", 99, 0, 0, 0, 1, 0, 0, 0), "bad_segments"),
        (xsens.encode_header(2, 1, 1, 0, 32) + struct.pack(">i7f", 3, 0, 0, 0, 1, 0, 0, 0), "no_segments"),
    ],
)
def test_bad_datagrams_are_counted(data, reason):
    dec = xsens.XsensDecoder(max_items=128)
    assert dec.feed(data) == []
    assert dec.counts[reason] == 1


def test_nonfinite_sample_rejected_next_one_kept():
    pose = _pose()
    good = xsens.encode_pose(pose, 1, 0)[0]
    bad = bytearray(xsens.encode_pose(pose, 2, 8)[0])
    bad[24 + 4:24 + 8] = struct.pack(">f", float("nan"))
    dec = xsens.XsensDecoder()
    assert len(dec.feed(good)) == 1 and dec.feed(bytes(bad)) == []
    assert len(dec.feed(xsens.encode_pose(pose, 3, 16)[0])) == 1
    assert dec.counts["nonfinite"] == 1


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=900), st.integers(0, 255))
def test_random_bytes_never_escape(data, k):
    dec = xsens.XsensDecoder()
    dec.feed(data)
    dec.feed(b"MXTP0" + bytes([48 + k % 10]) + data)
    with pytest.raises(XsensError):
        xsens.decode_datagram(b"MXTP99" + data[:10])


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_mutated_datagrams_never_escape(data):
    d = bytearray(xsens.encode_pose(_pose(0.2, "idle"), 5, 40)[0])
    for _ in range(data.draw(st.integers(1, 6))):
        d[data.draw(st.integers(0, len(d) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(d)))
    dec = xsens.XsensDecoder()
    for s in dec.feed(bytes(d[:cut])):
        assert s.pose is None or np.isfinite(s.pose).all()

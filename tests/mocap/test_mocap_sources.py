"""VMCSource without sockets: single-message streams, performer naming, sender limits, flood."""

from __future__ import annotations

import numpy as np

from machinima import osc, vmc
from mocap.sources import RateLimiter, VMCSource
from mocap.synthetic import synthetic_poses
from mocap.xsens_source import XsensSource
from mocap import xsens


def _bone(name, y):
    return osc.encode_message(vmc.ADDR_BONE, (name, 0.0, y, 0.0, 0.0, 0.0, 0.0, 1.0))


def test_single_message_stream_makes_frames_on_time_and_repeats():
    src = VMCSource("vmc")
    a = ("10.0.0.2", 39540)
    assert src.feed(_bone("Hips", 1.0), a, 1) == []
    assert src.feed(_bone("Head", 0.2), a, 2) == []
    assert src.feed(osc.encode_message(vmc.ADDR_TIME, (0.5,)), a, 3) == []  # T first or last? not known yet
    (f,) = src.feed(_bone("Hips", 1.1), a, 4)  # Hips repeats: the first frame is done
    assert f.sender_time_s == 0.5 and f.pose[0, 1] == 1.0 and f.performer == "vmc-1" and f.t_recv_ns == 1
    assert src.feed(_bone("Head", 0.3), a, 5) == []
    (g,) = src.feed(osc.encode_message(vmc.ADDR_TIME, (0.6,)), a, 6)  # every part of the layout is in
    assert g.sender_time_s == np.float32(0.6) and g.pose[0, 1] == np.float32(1.1) and g.t_recv_ns == 4
    assert src.feed(_bone("Hips", 1.2), a, 7) == []
    assert src.poll(8 + 49_000_000) == []
    assert src.poll(7 + 50_000_000) == []  # a frame known to lack parts (Head, T) waits longer: the rest may be late
    (h,) = src.poll(7 + 250_000_000)  # the sender went quiet: its last (partial) frame comes out
    assert h.pose[0, 1] == np.float32(1.2) and h.sender_time_s is None


def test_performers_named_by_address_root_name_or_order():
    src = VMCSource("vmc", performers={"10.0.0.9:1": "zoe"})
    pose = synthetic_poses(0.0)[0]
    for k, addr in enumerate((("10.0.0.9", 1), ("10.0.0.8", 1), ("10.0.0.7", 1))):
        src.feed(vmc.encode_frame(pose, root_name="ana" if k == 2 else "root"), addr, 1 + k)
    a, b, c = src.flush()
    assert (a.performer, b.performer, c.performer) == ("zoe", "vmc-2", "ana")


def test_sender_limit_and_flood_counted():
    src = VMCSource("vmc", max_senders=2, max_packets_per_s=100)
    pkt = vmc.encode_frame(synthetic_poses(0.0)[0])
    for k in range(3):
        src.feed(pkt, ("h", k), 1)
    assert src.rejects["too_many_senders"] == 1
    frames = sum(len(src.feed(pkt, ("h", 0), 1_000_000 + i)) for i in range(200))  # 200 packets in 0.2 ms
    assert frames <= 30 and src.rejects["flood"] >= 170
    later = src.feed(pkt, ("h", 0), 2_000_000_000)  # a second later the sender is heard again
    assert len(later) == 1


def test_rate_limiter_refills():
    lim = RateLimiter(10, burst=2)
    assert [lim.allow(("a",), 0) for _ in range(3)] == [True, True, False]
    assert lim.allow(("a",), 200_000_000)  # 0.2 s later: two tokens back
    assert lim.allow(("b",), 0)  # another sender has its own bucket


def test_xsens_source_names_and_counts():
    src = XsensSource("xsens", performers={"1": "kai"})
    pose = synthetic_poses(0.5, motion="walk")[0]
    src.feed(xsens.encode_meta(0, "Ana"), ("h", 1), 1)
    (a,) = src.feed(xsens.encode_pose(pose, 1, 500, character=0)[0], ("h", 1), 2)
    (b,) = src.feed(xsens.encode_pose(pose, 1, 500, character=1)[0], ("h", 1), 3)
    (c,) = src.feed(xsens.encode_pose(pose, 3, 516, character=1)[0], ("h", 1), 4)
    assert (a.performer, b.performer) == ("Ana", "kai") and a.sender_time_s == 0.5 and c.seq == 3
    assert src.rejects["dropped"] == 1

"""Xsens MVN over real loopback UDP, from datagrams this test builds byte by byte following
Xsens' public "MVN real-time network streaming Protocol Specification" (not machinima's
encoder): drops, swapped pairs, duplicates, a stray high-counter datagram, a counter restart and
garbage, all in one stream. The take must hold every sample that was sent minus the drops, in
order, and every counter must be exact."""

from __future__ import annotations

import os
import socket
import struct

import numpy as np

from mocap.xsens_source import XsensSource
from vmc_senders import Pacer, free_udp_port, record

# Header (24 bytes, big-endian): ID string "MXTP02" (6), sample counter (4), datagram counter
# (1, high bit: last datagram of the sample), number of items (1), time code in ms (4),
# character ID (1), number of body segments (1), number of props (1), number of finger
# tracking segments (1), reserved (2), payload size (2).
HEADER = ">6sIBBIBBBBHH"
# Type 02 item (32 bytes): segment ID (4), position x y z in cm (3 x 4, Z up), orientation
# quaternion re i j k (4 x 4).
ITEM = ">i3f4f"


def mxtp02(sample: int, time_ms: int, height_cm: float, *, segments: int = 23) -> bytes:
    items = b"".join(struct.pack(ITEM, sid, 0.0, 0.0, height_cm + 5.0 * (sid - 1), 1.0, 0.0, 0.0, 0.0) for sid in range(1, 24))
    head = struct.pack(HEADER, b"MXTP02", sample, 0x80, 23, time_ms, 0, segments, 0, 0, 0, len(items))
    return head + items


def height(sample: int) -> float:
    return 90.0 + 0.01 * sample  # cm: every sample has its own pelvis height


def test_mvn_stream_with_every_fault(tmp_path):
    port = free_udp_port()
    before = [s for s in range(150) if s not in (10, 11, 57)]  # 10, 11 and 57 are lost
    after = list(range(50))  # the sender restarted: its counter starts over at 0
    order = []
    for s in before:
        order.append(s)
        if s in (30, 90):
            order.append(s)  # duplicates
    for a, b in ((20, 21), (80, 81)):  # swapped pairs
        i, j = order.index(a), order.index(b)
        order[i], order[j] = order[j], order[i]
    garbage = [os.urandom(40), b"MXTP02" + b"\x00" * 9, mxtp02(5, 20, 91.0)[:-7], b"#bundle\x00" + os.urandom(24)]

    def sender() -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        pace = Pacer()
        for n, s in enumerate(order):
            sock.sendto(mxtp02(s, 4 * s, height(s)), ("127.0.0.1", port))
            if n % 37 == 5:
                sock.sendto(garbage[n % len(garbage)], ("127.0.0.1", port))
            if n == 100:  # a stray datagram with a high counter and a bad segment count
                sock.sendto(mxtp02(1_000_000, 4_000_000, 50.0, segments=99), ("127.0.0.1", port))
            if order[n + 1:n + 2] in ([20], [80]):
                continue  # the swapped pair leaves back to back
            pace.wait(0.004)
        pace.wait(0.1)
        for s in after:
            sock.sendto(mxtp02(s, 4 * s, height(s)), ("127.0.0.1", port))
            pace.wait(0.004)
        sock.close()

    src = XsensSource("xsens")
    take, summary, ingest = record(tmp_path, {port: src}, [sender], delay_ms=20)
    tr = take.store.read_mocap("xsens-0")
    assert len(tr) == len(before) + len(after)  # every sample sent, minus the drops
    np.testing.assert_allclose(tr.values[:, 0, 1], [height(s) / 100 for s in before + after], atol=1e-6)  # in order
    assert np.all(np.diff(tr.t_ns) > 0)
    gaps = [e for e in take.store.events(kind="gap") if e["payload"]["performer"] == "xsens-0"]
    assert [g["payload"]["reason"] for g in gaps] == ["sender restarted"]
    c = src.decoder.counts
    assert (c["dropped"], c["duplicate"], c["late"], c["restarts"], c["bad_segments"]) == (3, 2, 2, 1, 1), c
    assert c["samples"] == len(before) + len(after)
    t = ingest.timing["xsens"]["xsens-0"].counts
    assert (t["dropped"], t["late"], t["out_of_order"], t["restarts"]) == (3, 0, 2, 1), t  # put back in order live
    assert sum(v for k, v in c.items() if k in ("not_mxtp", "truncated", "bad_size")) == sum(1 for n in range(len(order)) if n % 37 == 5)
    assert summary[0]["loss_pct"] == round(100 * 3 / (len(before) + len(after) + 3), 3)

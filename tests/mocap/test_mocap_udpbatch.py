"""Batched receive over real loopback UDP: python-osc senders, recvmmsg (where the platform has
it) and the recvmsg_into fallback give the same datagrams in the same order, oversize datagrams
are refused with a count, and kernel stamps never step back."""

from __future__ import annotations

import socket
import time

import pytest

from machinima.udpbatch import BatchReceiver, have_recvmmsg
from machinima.udprecv import open_udp

from vmc_senders import bundle, client, frame_messages


def _send_and_drain(batched: bool, datagrams: list[bytes], *, slots: int = 16, max_datagram: int = 65507, senders: int = 3):
    rx = open_udp("127.0.0.1", 0)
    port = rx.getsockname()[1]
    got: list[tuple[bytes, tuple, int]] = []
    batches: list[int] = []

    def on_batch(b):
        batches.append(b.n)
        got.extend(b)

    r = BatchReceiver(rx, on_batch, slots=slots, max_datagram=max_datagram, batched=batched)
    clients = [client(port) for _ in range(senders)]
    try:
        for i, d in enumerate(datagrams):
            clients[i % senders]._sock.sendto(d, ("127.0.0.1", port))
        deadline = time.monotonic() + 10
        while len(got) < len(datagrams) - sum(r.refused.values()) and time.monotonic() < deadline:
            r.drain()
            time.sleep(0.005)
        addrs = [("127.0.0.1", c._sock.getsockname()[1]) for c in clients]
    finally:
        r.close()
        for c in clients:
            c._sock.close()
    return got, r, addrs, batches


def _vmc_datagrams(n: int) -> list[bytes]:
    return [bundle(frame_messages(k, name=f"p{k % 3}", time_s=k / 60)).dgram for k in range(n)]


@pytest.mark.parametrize("batched", [True, False])
def test_every_datagram_in_order_with_its_sender(batched):
    if batched and not have_recvmmsg():
        pytest.skip("no recvmmsg on this platform")
    grams = _vmc_datagrams(120)
    got, r, addrs, batches = _send_and_drain(batched, grams)
    assert [g[0] for g in got] == grams
    assert [g[1] for g in got] == [addrs[i % 3] for i in range(120)]
    stamps = [g[2] for g in got]
    assert all(b <= a for a, b in zip(stamps[1:], stamps)) and stamps[-1] <= time.monotonic_ns()
    assert r.datagrams == 120 and r.errors == 0 and not r.refused
    assert max(batches) > 1 if batched else True  # many datagrams per system call


def test_fallback_gives_the_same_batches():
    if not have_recvmmsg():
        pytest.skip("no recvmmsg on this platform")
    grams = _vmc_datagrams(60) + [b"#bundle\x00" + bytes(8)] + [bytes([i]) * (4 * i + 4) for i in range(40)]
    a, ra, addrs_a, _ = _send_and_drain(True, grams, slots=7, senders=1)
    b, rb, addrs_b, _ = _send_and_drain(False, grams, slots=7, senders=1)
    assert [g[0] for g in a] == [g[0] for g in b] == grams
    assert [g[1] for g in a] == [addrs_a[0]] * len(grams) and [g[1] for g in b] == [addrs_b[0]] * len(grams)
    assert ra.batches == rb.batches and ra.datagrams == rb.datagrams


@pytest.mark.parametrize("batched", [True, False])
def test_oversize_datagrams_are_refused_and_counted(batched):
    if batched and not have_recvmmsg():
        pytest.skip("no recvmmsg on this platform")
    grams = [b"/ok\x00" * 10, b"x" * 2000, b"/ok\x00" * 20, b"y" * 1025, b"z" * 1024]
    got, r, _, _ = _send_and_drain(batched, grams, slots=4, max_datagram=1024, senders=1)
    assert [g[0] for g in got] == [grams[0], grams[2], grams[4]]  # none cut short, the rest in order
    assert r.refused == {"too_large": 2} and r.datagrams == 3


def test_kernel_stamps_are_arrival_times():
    """A datagram that waited in the socket keeps its arrival time, not the read time."""
    rx = open_udp("127.0.0.1", 0)
    got = []
    r = BatchReceiver(rx, lambda b: got.extend(b), slots=8)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sent = time.monotonic_ns()
    tx.sendto(b"/a\x00\x00", rx.getsockname())
    time.sleep(0.2)
    r.drain()
    r.close()
    tx.close()
    assert len(got) == 1
    waited = (time.monotonic_ns() - got[0][2]) / 1e6
    assert waited >= 150 and got[0][2] >= sent - 1_000_000  # stamped on arrival (needs SO_TIMESTAMPNS: Linux)

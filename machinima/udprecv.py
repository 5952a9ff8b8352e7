"""Receiving UDP for capture: non-blocking sockets drained in batches, each datagram stamped
with the kernel's arrival time.

Shared by ``machinima mocap listen`` (``mocap/listener.py``) and the stage's local sources
(``server/udp.py``): both only move datagrams from here into a sans-I/O source.

Why kernel stamps: a listener that falls behind (a burst, a busy machine) reads datagrams
late; stamped when read, every one of them would look late, a sender's clock would seem to
drift and frames would be re-timed. ``SO_TIMESTAMPNS`` gives the time each datagram reached the
socket; it is converted to ``time.monotonic_ns`` (the clock every stamp in machinima uses) and
the read time is kept too, so how far behind the listener is can be shown on its own
(``behind``). Where the option is missing, the read time is the stamp.

Why batches: one wake-up of the event loop reads every datagram waiting (up to ``batch``),
instead of one callback per datagram.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from typing import Callable

__all__ = ["LoopReader", "UDPReceiver", "open_udp"]

SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
_TS = struct.Struct("qq")
MAX_DATAGRAM = 65535


def open_udp(host: str, port: int, *, rcvbuf: int = 4 << 20) -> socket.socket:
    """A bound, non-blocking UDP socket with kernel receive stamps (when the OS has them).
    Raises ``OSError`` (port in use, bad address) for the caller to word."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        except OSError:
            pass
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        except OSError:
            pass
        sock.bind((host, port))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class LoopReader:
    """Drains ``self.sock`` on every readable event of an asyncio loop (``attach``) and closes
    it (``close``); subclasses define ``drain``. Shared by ``UDPReceiver`` and
    ``machinima.udpbatch.BatchReceiver``."""

    sock: socket.socket
    _loop: asyncio.AbstractEventLoop | None = None

    def drain(self) -> int:  # pragma: no cover - defined by subclasses
        raise NotImplementedError

    def attach(self, loop: asyncio.AbstractEventLoop | None = None):
        self._loop = loop or asyncio.get_running_loop()
        self._loop.add_reader(self.sock.fileno(), self.drain)
        return self

    def close(self) -> None:
        if self._loop is not None:
            try:
                self._loop.remove_reader(self.sock.fileno())
            except (ValueError, OSError):
                pass
            self._loop = None
        self.sock.close()


class UDPReceiver(LoopReader):
    """Drains ``sock`` into ``on_datagram(data, addr, t_arrival_ns, t_read_ns)``.

    ``drain()`` reads until the socket is empty or ``batch`` datagrams were read; ``backlog``
    is True when it stopped because of ``batch`` (more are waiting). ``attach(loop)`` drains
    on every readable event of an asyncio loop. Counters: ``datagrams``, ``errors`` (socket
    errors such as ICMP port unreachable, which Linux reports on UDP sockets).
    """

    def __init__(self, sock: socket.socket, on_datagram: Callable[[bytes, tuple, int, int], None], *, batch: int = 512) -> None:
        self.sock = sock
        self.on_datagram = on_datagram
        self.batch = batch
        self.datagrams = 0
        self.errors = 0
        self.backlog = False
        self._loop: asyncio.AbstractEventLoop | None = None
        try:
            self._stamps = bool(sock.getsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS))
        except OSError:
            self._stamps = False

    def drain(self) -> int:
        recvmsg = self.sock.recvmsg
        cb = self.on_datagram
        mono = time.monotonic_ns
        unpack = _TS.unpack
        n = 0
        self.backlog = False
        # kernel stamps are CLOCK_REALTIME: one offset per batch maps them to monotonic
        offset = time.time_ns() - mono()
        stamps = self._stamps
        try:
            while n < self.batch:
                data, anc, _flags, addr = recvmsg(MAX_DATAGRAM, 64)
                now = mono()
                t = now
                if stamps and anc:
                    sec, nsec = unpack(anc[0][2])
                    t = sec * 1_000_000_000 + nsec - offset
                    if t > now:  # the two clocks were read a moment apart
                        t = now
                n += 1
                cb(data, addr, t, now)
            else:
                self.backlog = True
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            self.errors += 1
        self.datagrams += n
        return n

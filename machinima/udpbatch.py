"""Batched UDP receive: many datagrams per system call into a preallocated ring of buffers.

Why: a capture listener's floor is the cost of taking a datagram off the socket. One
``recvmsg`` per datagram costs a system call, a new ``bytes``, an address tuple and an
ancillary-data list: a few microseconds of Python per datagram before any decoding. On Linux
``recvmmsg(2)`` (called through ctypes, no C extension to build) fills up to ``slots``
buffers of a numpy ring in one call, with every datagram's length, sender address and kernel
arrival stamp (``SO_TIMESTAMPNS``) in arrays: the decoder then works on the whole batch.
Elsewhere (or when ctypes cannot find ``recvmmsg``) the same ring is filled one datagram at a
time with ``recvmsg_into``: the same batch comes out either way (tested against each other).

A datagram larger than ``max_datagram`` is refused, never cut short: the kernel flags it
``MSG_TRUNC`` and it is counted in ``refused["too_large"]`` (a cut VMC bundle would decode as
garbage). Stamps are the kernel's arrival times mapped onto ``time.monotonic_ns`` (one
clock offset per call), never later than the read and never before the previous datagram of
this socket (two clocks read a moment apart must not reorder a sender's datagrams); where the
kernel gives none the read time is the stamp.

    rx = BatchReceiver(open_udp("127.0.0.1", 39539), on_batch)   # 1024 slots
    rx.attach(loop)            # or call rx.drain() yourself
    def on_batch(b: Batch): ...   # b.n, b.data[i, :b.lens[i]], b.keys[i] -> b.addr(key), b.stamps[i]
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import errno
import socket
import struct
import sys
import time
from collections import Counter
from typing import Callable

import numpy as np

from .udprecv import SO_TIMESTAMPNS, LoopReader

__all__ = ["Batch", "BatchReceiver", "have_recvmmsg"]

MSG_TRUNC = 0x20
MSG_CTRUNC = 0x08
MSG_DONTWAIT = 0x40
_NAME = 28  # sizeof(struct sockaddr_in6): room for either family
_CTRL = 64  # CMSG_SPACE(sizeof(struct timespec)) is 32; room to spare
_TS = struct.Struct("qq")


class _IOVec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


class _MsgHdr(ctypes.Structure):
    _fields_ = [("msg_name", ctypes.c_void_p), ("msg_namelen", ctypes.c_uint32), ("msg_iov", ctypes.c_void_p),
                ("msg_iovlen", ctypes.c_size_t), ("msg_control", ctypes.c_void_p), ("msg_controllen", ctypes.c_size_t),
                ("msg_flags", ctypes.c_int)]


class _MMsgHdr(ctypes.Structure):
    _fields_ = [("msg_hdr", _MsgHdr), ("msg_len", ctypes.c_uint)]


_recvmmsg = None
if sys.platform.startswith("linux"):
    try:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        _recvmmsg = _libc.recvmmsg
        _recvmmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int, ctypes.c_void_p]
        _recvmmsg.restype = ctypes.c_int
    except (OSError, AttributeError):
        _recvmmsg = None


def have_recvmmsg() -> bool:
    """True when this platform's batched receive (Linux ``recvmmsg``) is usable."""
    return _recvmmsg is not None


class Batch:
    """Datagrams taken off a socket in one drain step, in arrival order. ``n`` datagrams:
    ``data[i, :lens[i]]`` (rows of the receiver's ring: valid until its next drain),
    ``lens``, ``stamps`` (monotonic ns, arrival), ``keys`` (int64 sender keys: one per
    address; ``addr(key)`` gives the address tuple), ``read_ns`` (when they were read)."""

    __slots__ = ("n", "data", "lens", "stamps", "keys", "read_ns", "_addrs")

    def __init__(self, n: int, data: np.ndarray, lens: np.ndarray, stamps: np.ndarray, keys: np.ndarray, read_ns: int, addrs: dict) -> None:
        self.n = n
        self.data = data
        self.lens = lens
        self.stamps = stamps
        self.keys = keys
        self.read_ns = read_ns
        self._addrs = addrs

    def addr(self, key: int) -> tuple:
        return self._addrs[int(key)]

    def datagram(self, i: int) -> bytes:
        return self.data[i, : self.lens[i]].tobytes()

    def __iter__(self):
        """(bytes, address, stamp) per datagram: the slow way, for consumers without a batch path."""
        addrs = self._addrs
        for i, (ln, k, t) in enumerate(zip(self.lens.tolist(), self.keys.tolist(), self.stamps.tolist())):
            yield self.data[i, :ln].tobytes(), addrs[k], t


def _v4_key(ip: bytes, port: int) -> int:
    return (int.from_bytes(ip, "big") << 16) | port


class BatchReceiver(LoopReader):
    """Drains ``sock`` (non-blocking, from ``machinima.udprecv.open_udp``) into ``on_batch``.

    ``slots`` datagrams per call, each up to ``max_datagram`` bytes (the ring is
    ``slots * max_datagram`` bytes of address space; only the pages datagrams fill are ever
    touched, e.g. 8 MB for 1024 bundles of 4.6 kB); ``batched=None`` uses
    ``recvmmsg`` where available (``False``: the ``recvmsg_into`` fallback). ``drain()``
    reads until the socket is empty or ``max_batches`` batches were read and returns the
    datagram count; ``backlog`` is True when it stopped with more waiting. Counters:
    ``datagrams``, ``batches``, ``errors`` (socket errors such as ICMP port unreachable),
    ``refused`` (reason -> count: ``too_large``).
    """

    def __init__(self, sock: socket.socket, on_batch: Callable[[Batch], None], *, slots: int = 1024, max_datagram: int = 65507,
                 batched: bool | None = None, max_batches: int = 16) -> None:
        if slots < 1 or max_datagram < 1:
            raise ValueError("slots and max_datagram must be >= 1")
        self.sock = sock
        self.on_batch = on_batch
        self.slots = slots
        self.max_datagram = max_datagram
        self.max_batches = max_batches
        self.batched = have_recvmmsg() if batched is None else (batched and have_recvmmsg())
        self.datagrams = 0
        self.batches = 0
        self.errors = 0
        self.refused: Counter[str] = Counter()
        self.backlog = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._last_stamp = 0
        self._addrs: dict[int, tuple] = {}
        self._v6: dict[bytes, int] = {}
        size = (max_datagram + 1 + 7) & ~7  # one byte more: a datagram that fills it exactly was not cut
        self._size = size
        self.data = np.zeros((slots, size), dtype=np.uint8)  # calloc'd: pages are touched only when used
        self._names = np.zeros((slots, _NAME), dtype=np.uint8)
        self._ctrl = np.zeros((slots, _CTRL), dtype=np.uint8)
        try:
            self._stamps = bool(sock.getsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS))
        except OSError:
            self._stamps = False
        if self.batched:
            self._setup_ctypes()
        else:
            self._views = [memoryview(self.data[i]) for i in range(slots)]

    # --- ctypes ring -------------------------------------------------------------------------
    def _setup_ctypes(self) -> None:
        n = self.slots
        self._iov = (_IOVec * n)()
        self._hdrs = (_MMsgHdr * n)()
        base = self.data.ctypes.data
        names = self._names.ctypes.data
        ctrl = self._ctrl.ctypes.data
        for i in range(n):
            self._iov[i].iov_base = base + i * self._size
            self._iov[i].iov_len = self._size
            h = self._hdrs[i].msg_hdr
            h.msg_name = names + i * _NAME
            h.msg_iov = ctypes.addressof(self._iov[i])
            h.msg_iovlen = 1
            h.msg_control = ctrl + i * _CTRL
        arr = np.frombuffer(self._hdrs, dtype=np.dtype(_MMsgHdr))
        self._namelen = arr["msg_hdr"]["msg_namelen"]
        self._ctrllen = arr["msg_hdr"]["msg_controllen"]
        self._flags = arr["msg_hdr"]["msg_flags"]
        self._mlen = arr["msg_len"]
        self._hdr_ptr = ctypes.addressof(self._hdrs)
        self._fd = self.sock.fileno()

    def _recv_ctypes(self) -> int:
        self._namelen[:] = _NAME
        self._ctrllen[:] = _CTRL if self._stamps else 0
        while True:
            n = _recvmmsg(self._fd, self._hdr_ptr, self.slots, MSG_DONTWAIT, None)
            if n >= 0:
                return n
            err = ctypes.get_errno()
            if err in (errno.EAGAIN, errno.EWOULDBLOCK):
                return 0
            if err == errno.EINTR:
                continue
            self.errors += 1  # a pending socket error (ICMP unreachable...) is reported once
            return -1

    def _batch_ctypes(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        lens = self._mlen[:n].astype(np.int64)
        flags = self._flags[:n]
        names = self._names[:n]
        fam = names[:, :2].copy().view(np.uint16)[:, 0]
        port = names[:, 2].astype(np.int64) << 8 | names[:, 3]
        ip = names[:, 4:8].copy().view(">u4")[:, 0].astype(np.int64)
        keys = ip << 16 | port
        v6 = fam != socket.AF_INET
        if v6.any():
            for i in np.flatnonzero(v6).tolist():
                keys[i] = self._v6_key(bytes(names[i]))
        stamps = np.zeros(n, dtype=np.int64)
        has = np.zeros(n, dtype=bool)
        if self._stamps:
            c = self._ctrl[:n]
            c64 = c.view(np.int64)
            c32 = c.view(np.int32)
            has = (self._ctrllen[:n] >= 32) & (c32[:, 2] == socket.SOL_SOCKET) & (c32[:, 3] == SO_TIMESTAMPNS) & (flags & MSG_CTRUNC == 0)
            stamps = c64[:, 2] * 1_000_000_000 + c64[:, 3]
        return lens, flags, keys, np.where(has, stamps, -1)

    def _v6_key(self, raw: bytes) -> int:
        k = self._v6.get(raw)
        if k is None:
            k = -len(self._v6) - 1
            self._v6[raw] = k
            port = int.from_bytes(raw[2:4], "big")
            flow = int.from_bytes(raw[4:8], "big")
            scope = int.from_bytes(raw[24:28], sys.byteorder)
            self._addrs[k] = (socket.inet_ntop(socket.AF_INET6, raw[8:24]), port, flow, scope)
        return k

    # --- fallback: one recvmsg_into per datagram into the same ring ---------------------------
    def _recv_each(self) -> tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        n = 0
        lens = np.zeros(self.slots, dtype=np.int64)
        flags = np.zeros(self.slots, dtype=np.int64)
        keys = np.zeros(self.slots, dtype=np.int64)
        stamps = np.full(self.slots, -1, dtype=np.int64)
        recv = self.sock.recvmsg_into
        anc_size = 64 if self._stamps else 0
        addrs = self._addrs
        try:
            while n < self.slots:
                nbytes, anc, fl, addr = recv([self._views[n]], anc_size, 0)
                lens[n], flags[n] = nbytes, fl
                if len(addr) == 2:
                    k = _v4_key(socket.inet_aton(addr[0]), addr[1])
                    if k not in addrs:
                        addrs[k] = addr
                else:
                    k = self._v6_tuple_key(addr)
                keys[n] = k
                for level, typ, blob in anc:
                    if level == socket.SOL_SOCKET and typ == SO_TIMESTAMPNS and len(blob) >= 16 and not fl & MSG_CTRUNC:
                        sec, nsec = _TS.unpack_from(blob)
                        stamps[n] = sec * 1_000_000_000 + nsec
                n += 1
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            self.errors += 1
            if n == 0:
                n = -1
        k = max(n, 0)
        return n, lens[:k], flags[:k], keys[:k], stamps[:k]

    def _v6_tuple_key(self, addr: tuple) -> int:
        host = addr[0].split("%", 1)[0]
        raw = b"\x00" * 2 + addr[1].to_bytes(2, "big") + addr[2].to_bytes(4, "big") + socket.inet_pton(socket.AF_INET6, host) + addr[3].to_bytes(4, sys.byteorder)
        k = self._v6.get(raw)
        if k is None:
            k = -len(self._v6) - 1
            self._v6[raw] = k
            self._addrs[k] = addr
        return k

    # --- draining ---------------------------------------------------------------------------
    def drain(self) -> int:
        """Read what is waiting (up to ``max_batches`` batches), one ``on_batch`` per batch."""
        total = 0
        self.backlog = False
        for _ in range(self.max_batches):
            if self.batched:
                n = self._recv_ctypes()
                if n > 0:
                    lens, flags, keys, raw = self._batch_ctypes(n)
            else:
                n, lens, flags, keys, raw = self._recv_each()
            if n < 0:
                continue  # a socket error was taken off the socket: read on
            if n == 0:
                return total
            now = time.monotonic_ns()
            offset = time.time_ns() - time.monotonic_ns()  # kernel stamps are CLOCK_REALTIME
            stamps = np.where(raw >= 0, raw - offset, now)
            np.minimum(stamps, now, out=stamps)  # the two clocks were read a moment apart
            stamps[0] = max(int(stamps[0]), self._last_stamp)
            np.maximum.accumulate(stamps, out=stamps)  # one socket's arrivals are in order
            self._last_stamp = int(stamps[-1])
            if self.batched:
                new = [k for k in set(keys.tolist()) if k not in self._addrs]
                for k in new:
                    self._addrs[k] = (socket.inet_ntoa((k >> 16).to_bytes(4, "big")), k & 0xFFFF)
            bad = (flags & MSG_TRUNC != 0) | (lens > self.max_datagram)
            data = self.data
            if bad.any():
                self.refused["too_large"] += int(bad.sum())
                good = np.flatnonzero(~bad)
                data, lens, keys, stamps = self.data[good], lens[good], keys[good], stamps[good]
            m = int(lens.shape[0])
            self.datagrams += m
            self.batches += 1
            total += n
            if m:
                self.on_batch(Batch(m, data, lens, stamps, keys, now, self._addrs))
            if n < self.slots:
                return total
        self.backlog = True
        return total

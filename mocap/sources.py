"""Sources by name, and the VMC source.

A source is a sans-I/O object: ``feed(data, addr, t_recv_ns) -> list[Frame]``, with a
``rejects`` Counter (reason -> count) and a ``kind``; sources that hold a frame until they know
it is complete also have ``poll(now_ns) -> list[Frame]`` (emit frames of senders gone quiet)
and ``flush() -> list[Frame]`` (stream end). Listeners only move bytes into it.

Sources register by name: the built-in ones below, plus any package that declares an entry
point in the ``machinima.mocap_sources`` group (``name = "pkg.module:Class"``); a plugin that
fails to import is logged and skipped. ``get_source(name)`` returns the class, imported when
first used.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections import Counter
from importlib.metadata import entry_points
from typing import Callable, Iterator, Protocol


import numpy as np

from machinima import vmc
from machinima.vmc_batch import replay
from machinima.vmc_frames import VMCAssembler
from machinima.vmc_single import SingleMessages

from .errors import MocapError
from .frames import Frame

log = logging.getLogger("machinima.mocap")

BUILTIN: dict[str, str] = {
    "vmc": "mocap.sources:VMCSource",
    "osc": "mocap.oscmap:OSCMapSource",
    "xsens": "mocap.xsens_source:XsensSource",
}
ENTRY_POINT_GROUP = "machinima.mocap_sources"


class Source(Protocol):
    kind: str
    name: str
    rejects: Counter

    def feed(self, data: bytes, addr: tuple, t_recv_ns: int) -> list[Frame]: ...


def registry() -> dict[str, str]:
    """Name -> 'module:Class' of every known source (built-ins, then entry points)."""
    out = dict(BUILTIN)
    try:
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            out.setdefault(ep.name, ep.value)
    except Exception as exc:  # a broken environment must not stop capture
        log.warning("could not read %s entry points: %s", ENTRY_POINT_GROUP, exc)
    return out


def get_source(kind: str) -> Callable[..., Source]:
    reg = registry()
    if kind not in reg:
        raise MocapError(f"unknown mocap source {kind!r}", hint=f"known: {', '.join(sorted(reg))}")
    mod, _, attr = reg[kind].partition(":")
    try:
        return getattr(importlib.import_module(mod), attr)
    except Exception as exc:
        raise MocapError(f"mocap source {kind!r} ({reg[kind]}) failed to load: {exc}") from None


class RateLimiter:
    """Token bucket per sender address: a flood is dropped before it costs any parsing."""

    def __init__(self, rate: float, burst: float | None = None, max_senders: int = 256) -> None:
        self.rate = float(rate)
        self.burst = float(burst if burst is not None else rate / 4)
        self.max_senders = max_senders
        self._state: dict[tuple, tuple[float, int]] = {}

    def allow(self, addr: tuple, now_ns: int) -> bool:
        st = self._state.get(addr)
        if st is None:
            if len(self._state) >= self.max_senders:
                oldest = min(self._state, key=lambda a: self._state[a][1])
                del self._state[oldest]
            self._state[addr] = (self.burst - 1, now_ns)
            return True
        tokens, last = st
        tokens += (now_ns - last) * 1e-9 * self.rate
        if tokens > self.burst:
            tokens = self.burst
        if tokens < 1:
            self._state[addr] = (tokens, now_ns)
            return False
        self._state[addr] = (tokens - 1, now_ns)
        return True

    def allow_n(self, addr: tuple, n: int, now_ns: int) -> int:
        """How many of ``n`` datagrams that came together (a batch) may pass: the bucket is
        refilled once, to ``now_ns``."""
        if addr not in self._state:
            if not self.allow(addr, now_ns):
                return 0
            return 1 + (self.allow_n(addr, n - 1, now_ns) if n > 1 else 0)
        tokens, last = self._state[addr]
        tokens = min(self.burst, tokens + (now_ns - last) * 1e-9 * self.rate)
        k = max(0, min(n, int(tokens)))
        self._state[addr] = (tokens - k, now_ns)
        return k


class _Sender:
    __slots__ = ("decoder", "asm", "performer", "key", "tried", "singles")

    def __init__(self, decoder: vmc.VMCDecoder, asm: VMCAssembler, performer: str, key: str) -> None:
        self.decoder = decoder
        self.asm = asm
        self.performer = performer
        self.key = key
        self.tried = -1  # the assembler's frame count when a replay last failed to fit
        self.singles = SingleMessages(decoder)


_NONE: list[Frame] = []


class _Rows:
    """A batch's datagrams as the per-packet path reads them: lengths and stamps as lists
    (``arr_lens`` / ``arr_stamps``: the arrays, for ``replay``), bytes from one flat
    memoryview of the ring (``flat``, row ``r`` at ``r * width``; None when the rows are
    not one contiguous block: then ``data``). Converted once per batch, not once per
    datagram."""

    __slots__ = ("data", "arr_lens", "arr_stamps", "lens", "stamps", "flat", "width")

    def __init__(self, data: np.ndarray, lens: np.ndarray, stamps: np.ndarray) -> None:
        self.data = data
        self.arr_lens = lens
        self.arr_stamps = stamps
        self.lens = lens.tolist()
        self.stamps = stamps.tolist()
        self.width = int(data.shape[1])
        self.flat = memoryview(data.reshape(-1)) if data.flags.c_contiguous and data.dtype == np.uint8 else None


class VMCSource:
    """VMC over OSC on one port; each sender address is a performer.

    The performer's name: ``performers[host:port]`` when given, else the Root/Pos name when it
    is not the default "root" (machinima's senders put the performer's name there), else
    ``<name>-<k>`` in order of first appearance. Frames are assembled per sender by
    ``machinima.vmc_frames.VMCAssembler``: one bundle, a bundle split over datagrams or one
    message per datagram all give one frame; ``poll(now_ns)`` emits a sender's pending frame
    after ``idle_ms`` of quiet and ``flush()`` at stream end (the last frame is never lost).
    Limits: ``max_senders``, ``max_packets_per_s`` per sender (a flood is counted as ``flood``).
    """

    kind = "vmc"

    def __init__(self, name: str = "vmc", *, performers: dict[str, str] | None = None, max_senders: int = 64,
                 max_packets_per_s: float = 100000.0, decoder_limits: dict | None = None, idle_ms: float = 50.0,
                 replay_min_frames: int = 4) -> None:
        self.name = name
        self.replay_min_frames = max(1, int(replay_min_frames))
        self.performer_names = dict(performers or {})
        self.max_senders = max_senders
        self.idle_ms = idle_ms
        self.rejects: Counter[str] = Counter()
        self._limiter = RateLimiter(max_packets_per_s, max_senders=max_senders * 4)
        self._decoder_limits = dict(decoder_limits or {})
        self._senders: dict[tuple, _Sender] = {}
        self._count = 0

    def _sender(self, addr: tuple) -> _Sender | None:
        if len(self._senders) >= self.max_senders:
            self.rejects["too_many_senders"] += 1
            return None
        self._count += 1
        key = f"{addr[0]}:{addr[1]}" if len(addr) >= 2 else str(addr)
        dec = vmc.VMCDecoder(**self._decoder_limits)
        dec.rejects = self.rejects  # one counter for the whole source
        s = _Sender(dec, VMCAssembler(idle_ms=self.idle_ms), self.performer_names.get(key, f"{self.name}-{self._count}"), key)
        self._senders[addr] = s
        return s

    def feed(self, data: bytes, addr: tuple, t_recv_ns: int | None = None) -> list[Frame]:
        now = time.monotonic_ns() if t_recv_ns is None else t_recv_ns
        if not self._limiter.allow(addr, now):
            self.rejects["flood"] += 1
            return _NONE
        s = self._senders.get(addr) or self._sender(addr)
        if s is None:
            return _NONE
        return self._feed(s, data, now)

    def feed_batch(self, batch) -> Iterator:
        """A ``machinima.udpbatch.Batch``: Frames and (performer, ``FrameBlock``) pairs, in
        order per sender, yielded as each is made (a live output gets the first frame of a
        batch before the rest are decoded). A sender with at least ``replay_min_frames``
        frames waiting that repeat its last frame layout is replayed in blocks
        (``machinima.vmc_batch``); the rest go one by one through ``feed``'s path, in arrival
        order across senders. Why the minimum: a replay costs a fixed few dozen numpy calls,
        more than decoding two or three datagrams one by one; the blocks pay off from a few
        frames on, i.e. when the listener reads a backlog, not at a live sender's pace."""
        keys = batch.keys
        data, lens, stamps = batch.data, batch.lens, batch.stamps
        rb = _Rows(data, lens, stamps)
        first = keys[0]
        if batch.n == 1 or (keys == first).all():
            groups = [(int(first), np.arange(batch.n))]
        else:
            order = np.argsort(keys, kind="stable")
            ks = keys[order]
            cut = np.flatnonzero(ks[1:] != ks[:-1]) + 1
            groups = [(int(keys[g[0]]), g) for g in np.split(order, cut)]
        slow: list[tuple[np.ndarray, _Sender]] = []  # (rows, sender) fed one by one, in arrival order
        for key, rows in groups:
            addr = batch.addr(key)
            n = rows.shape[0]
            ok = self._limiter.allow_n(addr, n, int(stamps[rows[-1]]))
            if ok < n:
                self.rejects["flood"] += n - ok
                rows = rows[:ok]
                n = ok
            if not n:
                continue
            s = self._senders.get(addr) or self._sender(addr)
            if s is None:
                self.rejects["too_many_senders"] += n - 1
                continue
            cyc = s.asm.cycle
            if n < self.replay_min_frames * (1 if cyc is None else len(cyc[0])):
                slow.append((rows, s))
                continue
            yield from self._replay_rows(s, rb, rows)
        if not slow:
            return
        feed_row = self._feed_row
        if len(slow) == 1:
            rows, s = slow[0]
            for r in rows.tolist():
                out = feed_row(s, rb, r)
                if out:
                    yield from out
            return
        # several senders one by one: in arrival order across them
        who: list = [None] * batch.n
        for rows, s in slow:
            for r in rows.tolist():
                who[r] = s
        for r, s in enumerate(who):
            if s is not None:
                out = feed_row(s, rb, r)
                if out:
                    yield from out

    def _feed_row(self, s: _Sender, rb: "_Rows", r: int) -> list:
        """One datagram (row ``r`` of a batch) through the per-packet path. Every datagram of
        a sender without bundles comes this way (~58 a frame): its length and stamp come from
        lists and its bytes from one flat view of the ring (no numpy scalar per datagram)."""
        ln = rb.lens[r]
        flat = rb.flat
        if flat is not None:
            o = r * rb.width
            d = flat[o:o + ln].tobytes()
        else:
            d = rb.data[r, :ln].tobytes()
        t = rb.stamps[r]
        pkt = s.singles.packet(d, ln) if ln and d[0] == 47 else None
        if pkt is None:
            return self._feed(s, d, t)
        # a single message (machinima.vmc_single: its layout seen before, only numbers read)
        done = s.asm.feed(pkt, t)
        if pkt.root_name is not None:
            self._rename(s, pkt.root_name)
        return [self._frame(s, f) for f in done] if done else _NONE

    def _replay_rows(self, s: _Sender, rb: "_Rows", rows: np.ndarray) -> Iterator:
        """One sender's rows of a batch: replayed in blocks while they fit its cycle, one by
        one until the next frame ends where they do not (then a replay is tried again)."""
        asm, dec = s.asm, s.decoder
        n = rows.shape[0]
        rl = rows.tolist()
        pos = 0
        feed_row = self._feed_row
        while pos < n:
            if asm.cycle is not None and not asm.pending and asm.frames != s.tried and n - pos >= len(asm.cycle[0]):
                blk = replay(dec, asm, rb.data, rb.arr_lens, rb.arr_stamps, rows[pos:])
                if blk is not None:
                    self._rename(s, blk.root_name)
                    yield (s.performer, blk)
                    pos += blk.n * len(asm.cycle[0])
                    continue
                s.tried = asm.frames
            frames_before = asm.frames
            while pos < n:
                out = feed_row(s, rb, rl[pos])
                pos += 1
                if out:
                    yield from out
                if asm.frames != frames_before:
                    break

    def _rename(self, s: _Sender, root_name: str | None) -> None:
        if root_name is not None and root_name != "root" and s.performer.startswith(f"{self.name}-") and s.key not in self.performer_names:
            s.performer = root_name

    def _feed(self, s: _Sender, data: bytes, now: int) -> list[Frame]:
        pkt = s.decoder.feed(data)  # its rejects are counted straight into self.rejects
        if pkt is None:
            return _NONE
        done = s.asm.feed(pkt, now)
        self._rename(s, pkt.root_name)
        if not done:
            return _NONE
        return [self._frame(s, f) for f in done]

    def poll(self, now_ns: int) -> list[Frame]:
        """Frames of senders quiet for ``idle_ms`` (call when the socket has been drained)."""
        out: list[Frame] = []
        for s in self._senders.values():
            if s.asm.pending:
                out.extend(self._frame(s, f) for f in s.asm.poll(now_ns))
        return out

    def flush(self) -> list[Frame]:
        """Stream end: every sender's pending frame."""
        out: list[Frame] = []
        for s in self._senders.values():
            out.extend(self._frame(s, f) for f in s.asm.flush())
        return out

    def _frame(self, s: _Sender, f: vmc.VMCFrame) -> Frame:
        return Frame(s.performer, self.name, f.t_recv_ns, f.pose if f.has_pose else None, f.time_s, None, f.blendshapes)

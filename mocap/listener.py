"""Listening: asyncio UDP endpoints drive the sans-I/O sources; ``Ingest`` times, normalises,
records and fans frames out.

    ingest = Ingest(delay_ms=0, smoothing=OneEuro params or None, recorder=Recorder(take))
    ingest.add_source(VMCSource("vmc"))
    await serve(ingest, [("vmc", "0.0.0.0", 39539)], seconds=10)

Per datagram: the source parses it (never raises: bad input is counted by reason), each frame
goes through calibration (if any), the performer's ``StreamTiming`` (order, counters, jitter
buffer), the recorder (raw frames, in order, no duplicates) and the live outputs (gap-filled,
One-Euro smoothed if asked). Each source has its own socket, its own rate limiter per sender
and its own counters, so a flood on one never stalls another; an exception inside a source is
counted as ``internal_error`` and the loop goes on.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections import Counter
from typing import Any, Callable, Iterable

import numpy as np

from .errors import MocapError
from .frames import Frame
from .retarget import Calibration
from .timing import Health, OneEuro, StreamTiming

log = logging.getLogger("machinima.mocap")


class Recorder:
    """Writes raw frames into a take open for recording (``Take.create``)."""

    def __init__(self, take: Any) -> None:
        self.take = take
        self._streams: set[str] = set()
        self._blend: dict[str, list[str]] = {}
        self.frames = 0
        self.skipped_blend = 0

    def write(self, f: Frame) -> None:
        name = f.performer
        if name not in self._streams:
            self.take.add_performer(name, source=f.source)
            self._streams.add(name)
        self.take.store.append(f"mocap/{name}", f.t_ns, f.pose)
        self.frames += 1
        if f.blendshapes:
            chans = self._blend.get(name)
            if chans is None:
                chans = self._blend[name] = sorted(f.blendshapes)
                self.take.store.add_blend_stream(name, chans, {"performer": name, "source": f.source})
            if set(f.blendshapes) - set(chans):
                self.skipped_blend += 1
            self.take.store.append(f"blend/{name}", f.t_ns, np.array([f.blendshapes.get(c, 0.0) for c in chans], dtype=np.float32))

    def close(self, health: list[dict] | None = None, status: str = "complete") -> str:
        if health is not None:
            self.take.manifest.extra["mocap"] = {"version": 1, "sources": health}
        self.take.finalize(status)
        return self.take.id


class Ingest:
    """Everything between datagrams and frames, without sockets (tests call it directly)."""

    def __init__(
        self,
        *,
        delay_ms: float = 0.0,
        max_gap_ms: float = 100.0,
        fill_gaps: bool = True,
        smoothing: dict | None = None,
        calibrations: dict[str, Calibration] | None = None,
        recorder: Recorder | None = None,
        on_frame: Callable[[Frame], None] | None = None,
    ) -> None:
        self.delay_ms = delay_ms
        self.max_gap_ms = max_gap_ms
        self.fill_gaps = fill_gaps
        self.smoothing = smoothing
        self.calibrations = dict(calibrations or {})
        self.recorder = recorder
        self.on_frame = on_frame
        self.sources: dict[str, Any] = {}
        self.health: dict[str, Health] = {}
        self.timing: dict[str, dict[str, StreamTiming]] = {}
        self._filters: dict[str, OneEuro] = {}
        self.latest: dict[str, Frame] = {}
        self.errors: Counter[str] = Counter()
        self.record_error: str | None = None
        self.live_frames = 0

    def add_source(self, source: Any) -> Any:
        if source.name in self.sources:
            raise MocapError(f"two sources are named {source.name!r}")
        self.sources[source.name] = source
        self.health[source.name] = Health(source.name)
        self.timing[source.name] = {}
        return source

    def datagram(self, source: str, data: bytes, addr: tuple, t_recv_ns: int | None = None) -> list[Frame]:
        """Feed one datagram; returns the live frames it made ready (also sent to on_frame)."""
        now = time.monotonic_ns() if t_recv_ns is None else t_recv_ns
        src = self.sources[source]
        h = self.health[source]
        h.saw_packet(len(data), now)
        try:
            frames = src.feed(data, addr, now)
        except Exception as exc:  # a bug in a source must not take the listener down
            self.errors["internal_error"] += 1
            src.rejects["internal_error"] += 1
            log.exception("mocap source %s failed on a datagram: %s", source, exc)
            return []
        timings = self.timing[source]
        pushed = []
        for f in frames:
            cal = self.calibrations.get(f.performer)
            if cal is not None:
                f.pose = cal.apply(f.pose)
            st = timings.get(f.performer)
            if st is None:
                st = timings[f.performer] = StreamTiming(delay_ms=self.delay_ms, max_gap_ms=self.max_gap_ms, fill_gaps=self.fill_gaps)
            if st.push(f):
                pushed.append(st)
                h.saw_frame(f.performer, now)
                if f.meta.get("late") and self.recorder is not None:
                    self._record(f)
        if self.delay_ms > 0:
            return self.tick(now, only=source)
        out: list[Frame] = []  # no jitter buffer: release what this datagram made ready
        for st in pushed:
            for f in st.pop_ready(now):
                if not f.interpolated and self.recorder is not None:
                    self._record(f)
                out.append(self._live(f))
        return out

    def tick(self, now_ns: int | None = None, *, only: str | None = None, flush: bool = False) -> list[Frame]:
        now = time.monotonic_ns() if now_ns is None else now_ns
        out: list[Frame] = []
        for name, timings in self.timing.items():
            if only is not None and name != only:
                continue
            for st in timings.values():
                ready = st.flush() if flush else st.pop_ready(now)
                for f in ready:
                    if not f.interpolated and self.recorder is not None:
                        self._record(f)
                    out.append(self._live(f))
        return out

    def _record(self, f: Frame) -> None:
        try:
            self.recorder.write(f)  # type: ignore[union-attr]
        except Exception as exc:
            self.errors["record_error"] += 1
            self.record_error = str(exc)
            if self.errors["record_error"] == 1:
                log.error("recording %s failed (live output goes on): %s", f.performer, exc)

    def _live(self, f: Frame) -> Frame:
        if self.smoothing is not None:
            flt = self._filters.get(f.performer)
            if flt is None:
                flt = self._filters[f.performer] = OneEuro(**self.smoothing)
            f = Frame(f.performer, f.source, f.t_recv_ns, flt(f.pose, f.t_ns), f.sender_time_s, f.seq, f.blendshapes, t_ns=f.t_ns, interpolated=f.interpolated, meta=f.meta)
        self.latest[f.performer] = f
        self.live_frames += 1
        if self.on_frame is not None:
            try:
                self.on_frame(f)
            except Exception as exc:
                self.errors["output_error"] += 1
                log.exception("live output failed: %s", exc)
        return f

    def summary(self, now_ns: int | None = None) -> list[dict]:
        out = []
        for name, h in self.health.items():
            h.rejects = Counter({k: v for k, v in self.sources[name].rejects.items() if v and k not in ("samples",)})
            out.append(h.summary(self.timing[name], now_ns))
        return out


class _Endpoint(asyncio.DatagramProtocol):
    def __init__(self, ingest: Ingest, source: str) -> None:
        self.ingest = ingest
        self.source = source
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            except OSError:
                pass

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        try:
            self.ingest.datagram(self.source, data, addr, time.monotonic_ns())
        except Exception as exc:
            self.ingest.errors["internal_error"] += 1
            log.exception("mocap listener %s: %s", self.source, exc)

    def error_received(self, exc: Exception) -> None:
        self.ingest.errors["socket_error"] += 1


async def open_endpoints(ingest: Ingest, bindings: Iterable[tuple[str, str, int]]) -> list[asyncio.DatagramTransport]:
    """Bind one UDP socket per (source name, host, port); a port in use is a clear error."""
    loop = asyncio.get_running_loop()
    transports = []
    for name, host, port in bindings:
        try:
            tr, _ = await loop.create_datagram_endpoint(lambda n=name: _Endpoint(ingest, n), local_addr=(host, port))
        except OSError as exc:
            for t in transports:
                t.close()
            raise MocapError(f"cannot listen on UDP {host}:{port} for {name}: {exc.strerror or exc}", hint="is another listener (or VSeeFace, MVN...) using that port? pick another with --vmc/--xsens/--osc") from None
        transports.append(tr)
    return transports


async def serve(ingest: Ingest, bindings: Iterable[tuple[str, str, int]], *, seconds: float | None = None,
                stop: asyncio.Event | None = None, tick_ms: float = 1.0, on_interval: Callable[[], Any] | None = None,
                interval_s: float = 0.5, ready: asyncio.Event | None = None) -> list[dict]:
    """Listen until ``seconds`` pass or ``stop`` is set; returns the final health summary."""
    transports = await open_endpoints(ingest, bindings)
    if ready is not None:
        ready.set()
    loop = asyncio.get_running_loop()
    end = None if seconds is None else loop.time() + seconds
    next_report = loop.time() + interval_s
    try:
        while True:
            if stop is not None and stop.is_set():
                break
            if end is not None and loop.time() >= end:
                break
            await asyncio.sleep(tick_ms / 1000.0 if ingest.delay_ms > 0 else 0.05)
            if ingest.delay_ms > 0:
                ingest.tick()
            if on_interval is not None and loop.time() >= next_report:
                next_report = loop.time() + interval_s
                res = on_interval()
                if asyncio.iscoroutine(res):
                    await res
    finally:
        for t in transports:
            t.close()
        ingest.tick(flush=True)
    return ingest.summary()

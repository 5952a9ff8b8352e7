"""Everything between datagrams and frames, without sockets: ``Ingest`` times, normalises,
records and fans frames out (``mocap.listener`` drives it from real sockets; tests call it
directly).

    ingest = Ingest(delay_ms=0, smoothing={"min_cutoff": 1, "beta": 0.5} or None, writer=TakeWriter(take))
    ingest.add_source(VMCSource("vmc"))
    ingest.datagram("vmc", data, addr, t_arrival_ns)   # -> live frames this datagram made ready
    ingest.tick(now_ns)                                  # jitter buffer, idle senders, commits
    ingest.finish()                                      # stream end: last frames, final commit

Per datagram: the source parses it (never raises: bad input is counted by reason), each frame
goes through calibration (if any), the performer's ``StreamTiming`` (order, counters, jitter
buffer), the take writer (raw frames; late frames too; a sender restart leaves a gap record)
and the live outputs (gap-filled when someone takes live frames and the listener is not behind,
One-Euro smoothed per bone if asked). An exception inside a
source is counted as ``internal_error`` and the loop goes on; a recording error stops recording
(``record_error``) while live output goes on.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import Any, Callable

from .errors import MocapError
from .frames import Frame
from .retarget import Calibration
from .health import Health
from .smoothing import OneEuro
from .timing import StreamTiming

log = logging.getLogger("machinima.mocap")
_NONE: list[Frame] = []
_BEHIND_NS = 20_000_000  # a listener reading datagrams this late is behind: no gap fill


class Ingest:
    """Sources in, timed frames out: to the take writer and to ``on_frame``."""

    def __init__(
        self,
        *,
        delay_ms: float = 0.0,
        max_gap_ms: float = 100.0,
        fill_gaps: bool = True,
        smoothing: dict | None = None,
        calibrations: dict[str, Calibration] | None = None,
        writer: Any = None,
        on_frame: Callable[[Frame], None] | None = None,
    ) -> None:
        self.delay_ms = delay_ms
        self.max_gap_ms = max_gap_ms
        self.fill_gaps = fill_gaps
        self.smoothing = smoothing
        self.calibrations = dict(calibrations or {})
        self.writer = writer
        self.on_frame = on_frame
        self.sources: dict[str, Any] = {}
        self.health: dict[str, Health] = {}
        self.timing: dict[str, dict[str, StreamTiming]] = {}
        self._filters: dict[str, OneEuro] = {}
        self.latest: dict[str, Frame] = {}
        self.errors: Counter[str] = Counter()
        self.record_error: str | None = None
        self.live_frames = 0
        self.recorded = 0

    def add_source(self, source: Any) -> Any:
        if source.name in self.sources:
            raise MocapError(f"two sources are named {source.name!r}")
        self.sources[source.name] = source
        self.health[source.name] = Health(source.name)
        self.timing[source.name] = {}
        return source

    # --- input ---------------------------------------------------------------------------------
    def datagram(self, source: str, data: bytes, addr: tuple, t_recv_ns: int | None = None, t_read_ns: int | None = None) -> list[Frame]:
        """Feed one datagram (``t_recv_ns``: its arrival; ``t_read_ns``: when it was read);
        returns the live frames it made ready (also sent to ``on_frame``)."""
        now = time.monotonic_ns() if t_recv_ns is None else t_recv_ns
        src = self.sources[source]
        h = self.health[source]
        h.packets += 1
        h.bytes += len(data)
        h.last_seen_ns = now
        if t_read_ns is not None:
            h.behind_ns.append(t_read_ns - now)
        try:
            frames = src.feed(data, addr, now)
        except Exception as exc:  # a bug in a source must not take the listener down
            self.errors["internal_error"] += 1
            src.rejects["internal_error"] += 1
            log.exception("mocap source %s failed on a datagram: %s", source, exc)
            return _NONE
        if not frames:
            return _NONE
        return self._take(source, frames, now if t_read_ns is None else t_read_ns)

    def batch(self, source: str, b: Any) -> None:
        """Feed a ``machinima.udpbatch.Batch`` (many datagrams of one socket, read at
        ``b.read_ns``). A source with ``feed_batch`` (VMC) turns the steady state of its
        senders into blocks of frames, timed and recorded as blocks; others get the datagrams
        one by one. Live frames go to ``on_frame`` as with ``datagram``."""
        src = self.sources[source]
        fb = getattr(src, "feed_batch", None)
        if fb is None:
            for data, addr, t in b:
                self.datagram(source, data, addr, t, b.read_ns)
            return
        h = self.health[source]
        now = b.read_ns
        h.packets += b.n
        h.bytes += int(b.lens.sum())
        h.last_seen_ns = int(b.stamps[-1])
        h.behind_ns.extend((now - b.stamps[-2048:]).tolist())
        items = iter(fb(b))  # frames come out as the source makes them: each goes on at once
        while True:
            try:
                item = next(items)
            except StopIteration:
                return
            except Exception as exc:  # a bug in a source must not take the listener down
                self.errors["internal_error"] += 1
                src.rejects["internal_error"] += 1
                log.exception("mocap source %s failed on a batch: %s", source, exc)
                return
            if type(item) is Frame:
                self._take(source, [item], now)
            else:
                self._take_block(source, item[0], item[1], now)

    def _take_block(self, source: str, performer: str, blk: Any, now: int) -> None:
        """A block of one performer's frames (``machinima.vmc_batch.FrameBlock``): timed by
        ``StreamTiming.push_block`` and recorded as one block when nothing needs them one by
        one (calibration, a jitter buffer, live gap fill or smoothing); else frame by frame."""
        timings = self.timing[source]
        st = timings.get(performer)
        if st is None:
            st = timings[performer] = StreamTiming(delay_ms=self.delay_ms, max_gap_ms=self.max_gap_ms, fill_gaps=self.fill_gaps)
        n = blk.n
        plain = (self.delay_ms <= 0 and self.smoothing is None and self.on_frame is None and performer not in self.calibrations)
        if plain:
            st.fill_gaps = False
            t = st.push_block(performer, source, blk.t_recv_ns, blk.time_s, blk.pose)
            if t is not None:
                h = self.health[source]
                h.frames += n
                h.performers.add(performer)
                h._stamps.extend([now] * min(n, 8192))
                if self.writer is not None and self.record_error is None:
                    try:
                        if blk.pose is not None:
                            self.writer.poses(performer, t, blk.pose, source=source)
                        if blk.blendshapes:
                            for tk, bs in zip(t.tolist(), blk.blendshapes):
                                self.writer.blend(performer, tk, bs, source=source)
                    except Exception as exc:
                        self._record_failed(exc)
                    else:
                        self.recorded += n
                self.latest[performer] = st._last_out
                self.live_frames += n
                return
        times = blk.time_s.tolist()
        poses = blk.pose
        bl = blk.blendshapes
        frames = [Frame(performer, source, tr, None if poses is None else poses[k], None if times[k] != times[k] else times[k], None,
                        None if bl is None else bl[k]) for k, tr in enumerate(blk.t_recv_ns.tolist())]
        self._take(source, frames, now)

    def _take(self, source: str, frames: list[Frame], now: int) -> list[Frame]:
        timings = self.timing[source]
        h = self.health[source]
        out: list[Frame] = []
        writer = self.writer
        cals = self.calibrations
        no_delay = self.delay_ms <= 0
        fill = self.fill_gaps and self.on_frame is not None
        for f in frames:
            performer = f.performer
            if cals and f.pose is not None:
                cal = cals.get(performer)
                if cal is not None:
                    f.pose = cal.apply(f.pose)
            st = timings.get(performer)
            if st is None:
                st = timings[performer] = StreamTiming(delay_ms=self.delay_ms, max_gap_ms=self.max_gap_ms, fill_gaps=self.fill_gaps)
            # Gap fill is for live viewers: pointless without one, and harmful when the listener
            # is behind (the gaps are its own drops; filling them would put it further behind).
            st.fill_gaps = fill and now - f.t_recv_ns < _BEHIND_NS
            if not st.push(f):
                continue
            h.frames += 1
            h.performers.add(performer)
            h._stamps.append(now)
            if f.meta and writer is not None:
                if f.meta.get("restart"):
                    self._record_gap(f, "sender restarted")
                if f.meta.get("late"):
                    self._record(f)
            if no_delay:
                for g in st.pop_ready(now):
                    if writer is not None and not g.interpolated:
                        self._record(g)
                    out.append(self._live(g) if self.smoothing is not None or self.on_frame is not None else self._latest(g))
        if not no_delay:
            return self.tick(now, only=source, commit=False)
        return out

    def _latest(self, f: Frame) -> Frame:
        self.latest[f.performer] = f
        self.live_frames += 1
        return f

    # --- time ----------------------------------------------------------------------------------
    def poll(self, source: str, now_ns: int) -> list[Frame]:
        """Frames a source held back until its senders went quiet (call when the socket of
        ``source`` has been drained)."""
        poll = getattr(self.sources[source], "poll", None)
        frames = poll(now_ns) if poll is not None else _NONE
        return self._take(source, frames, now_ns) if frames else _NONE

    def tick(self, now_ns: int | None = None, *, only: str | None = None, flush: bool = False, commit: bool = True) -> list[Frame]:
        """Release what the jitter buffers hold past their delay, and commit the take when its
        interval has passed (the clock, not the next frame, decides)."""
        now = time.monotonic_ns() if now_ns is None else now_ns
        out: list[Frame] = []
        for name, timings in self.timing.items():
            if only is not None and name != only:
                continue
            for st in timings.values():
                ready = st.flush() if flush else st.pop_ready(now)
                for f in ready:
                    if not f.interpolated and self.writer is not None:
                        self._record(f)
                    out.append(self._live(f))
        if commit and self.writer is not None and self.record_error is None:
            try:
                self.writer.tick()
            except Exception as exc:
                self._record_failed(exc)
        return out

    def finish(self) -> list[Frame]:
        """Stream end: every source's pending frames, then every jitter buffer, then a commit."""
        out: list[Frame] = []
        for name, src in self.sources.items():
            flush = getattr(src, "flush", None)
            if flush is not None:
                frames = flush()
                if frames:
                    out.extend(self._take(name, frames, time.monotonic_ns()))
        out.extend(self.tick(flush=True, commit=False))
        if self.writer is not None and self.record_error is None:
            try:
                self.writer.commit()
            except Exception as exc:
                self._record_failed(exc)
        return out

    # --- outputs -------------------------------------------------------------------------------
    def _record(self, f: Frame) -> None:
        if self.record_error is not None:
            return
        try:
            if f.pose is not None:
                self.writer.pose(f.performer, f.t_ns, f.pose, source=f.source)
            if f.blendshapes:
                self.writer.blend(f.performer, f.t_ns, f.blendshapes, source=f.source)
        except Exception as exc:
            self._record_failed(exc)
            return
        self.recorded += 1

    def _record_gap(self, f: Frame, reason: str) -> None:
        if self.record_error is None:
            try:
                self.writer.gap(f.performer, reason, f.t_ns)
            except Exception as exc:
                self._record_failed(exc)

    def _record_failed(self, exc: Exception) -> None:
        self.errors["record_error"] += 1
        if self.record_error is None:
            self.record_error = str(exc)
            log.error("recording failed (live output goes on): %s", exc)

    def _live(self, f: Frame) -> Frame:
        if self.smoothing is not None and f.pose is not None:
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

    def end_take(self, status: str = "complete", summary: list[dict] | None = None) -> dict[str, Any]:
        """Finalise the take being recorded, the health summary in ``extra.mocap``; after a
        recording error (a full disk) the take ends as ``failed`` with a note. Call ``finish``
        first (``serve`` does)."""
        writer = self.writer
        extra = {"mocap": {"version": 1, "sources": summary if summary is not None else self.summary()}}
        if self.record_error is None:
            try:
                return writer.close(status, extra=extra)
            except Exception as exc:  # the disk filled up at the very end
                self._record_failed(exc)
        writer.take.manifest.extra.update(extra)
        return writer.abort(self.record_error)

    def summary(self, now_ns: int | None = None) -> list[dict]:
        out = []
        for name, h in self.health.items():
            h.rejects = Counter({k: v for k, v in self.sources[name].rejects.items() if v and k not in ("samples",)})
            out.append(h.summary(self.timing[name], now_ns))
        return out

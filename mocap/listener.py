"""Listening: UDP sockets drive the sans-I/O sources through ``Ingest``.

    ingest = Ingest(delay_ms=0, writer=TakeWriter(take))
    ingest.add_source(VMCSource("vmc"))
    await serve(ingest, [("vmc", "0.0.0.0", 39539)], seconds=10)

Each source has its own socket (``machinima.udpbatch``: many datagrams per ``recvmmsg``
call, every datagram stamped with the kernel's arrival time, handed over as one batch), its
own rate limiter per sender and its own counters, so a flood on one never stalls another. A
timer every ``tick_ms`` releases jitter buffers and emits the frames of senders that went
quiet (the last frame of a stream: only once that socket has been drained, so the rest of a
frame still waiting there is never cut off). The take is committed on the writer's interval
by a ``machinima.committimer.CommitTimer`` thread of idle priority (the loop commits itself
when that thread gets no CPU), so frames received before a pause are on disk within ~100 ms
without any further traffic. At the end every pending frame is flushed and committed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Callable, Iterable

from machinima.committimer import CommitTimer
from machinima.udpbatch import BatchReceiver
from machinima.udprecv import open_udp

from .errors import MocapError
from .ingest import Ingest

log = logging.getLogger("machinima.mocap")

__all__ = ["Ingest", "open_endpoints", "poll_quiet", "serve"]


def open_endpoints(ingest: Ingest, bindings: Iterable[tuple[str, str, int]], *, batched: bool | None = None) -> dict[str, BatchReceiver]:
    """Bind one UDP socket per (source name, host, port); a port in use is a clear error.
    ``batched``: ``recvmmsg`` where available (None), or the one-by-one fallback (False)."""
    receivers: dict[str, BatchReceiver] = {}
    for name, host, port in bindings:
        try:
            sock = open_udp(host, port)
        except OSError as exc:
            for r in receivers.values():
                r.close()
            raise MocapError(f"cannot listen on UDP {host}:{port} for {name}: {exc.strerror or exc}", hint="is another listener (or VSeeFace, MVN...) using that port? pick another with --vmc/--xsens/--osc") from None

        def on_batch(b, n: str = name) -> None:
            try:
                ingest.batch(n, b)
            except Exception as exc:  # never let one batch stop the socket
                ingest.errors["internal_error"] += 1
                log.exception("mocap listener %s: %s", n, exc)

        receivers[name] = BatchReceiver(sock, on_batch, batched=batched)
    return receivers


def poll_quiet(ingest: Ingest, receivers: dict[str, BatchReceiver], now_ns: int | None = None) -> int:
    """Emit the pending frames of senders that went quiet; returns the time it judged at.

    Why it drains first: "quiet for ``idle_ms``" must mean that nothing of the sender arrived
    since its last datagram, up to ``now``. A listener that was held up (a loaded machine
    descheduled it, a slow consumer) may find the rest of a split frame already waiting in its
    socket, sent a moment after the part it read last: judged by the clock alone, that part
    would have looked quiet for the whole hold-up and come out as a frame of its own (41 frames
    of 40). So the time is read first, then the socket is drained (everything that arrived
    before it is fed), and only then are senders judged; a socket with a backlog is not
    judged at all."""
    now = time.monotonic_ns() if now_ns is None else now_ns
    for name, r in receivers.items():
        r.drain()
        if not r.backlog:
            ingest.poll(name, now)
    return now


async def serve(ingest: Ingest, bindings: Iterable[tuple[str, str, int]], *, seconds: float | None = None,
                stop: asyncio.Event | None = None, tick_ms: float = 10.0, on_interval: Callable[[], Any] | None = None,
                interval_s: float = 0.5, ready: asyncio.Event | None = None, idle_commits: bool = True) -> list[dict]:
    """Listen until ``seconds`` pass or ``stop`` is set; returns the final health summary.
    ``idle_commits``: the commit thread at idle priority (False: normal priority)."""
    receivers = open_endpoints(ingest, bindings)
    timer = None
    if ingest.writer is not None:
        timer = CommitTimer(ingest.writer, idle_priority=idle_commits, on_error=ingest._record_failed).start()
    loop = asyncio.get_running_loop()
    for r in receivers.values():
        r.attach(loop)
    if ready is not None:
        ready.set()
    end = None if seconds is None else loop.time() + seconds
    next_report = loop.time() + interval_s
    period = (min(tick_ms, 1.0) if ingest.delay_ms > 0 else tick_ms) / 1000.0
    try:
        while True:
            if stop is not None and stop.is_set():
                break
            if end is not None and loop.time() >= end:
                break
            await asyncio.sleep(period)
            now = poll_quiet(ingest, receivers)
            ingest.tick(now, commit=timer is None or timer.due())
            if on_interval is not None and loop.time() >= next_report:
                next_report = loop.time() + interval_s
                res = on_interval()
                if asyncio.iscoroutine(res):
                    await res
    finally:
        if timer is not None:
            timer.stop()
        for r in receivers.values():
            r.drain()
            while r.backlog:  # what already arrived belongs to the take
                r.drain()
            r.close()
        ingest.finish()
    return ingest.summary()

"""The stage's tick (steps 5 and 6 of ``server.stage``): fan the latest frames out to viewers as
soon as every live performer has a new one, flush the recorder, and once a second the health,
slow viewers, expired tokens and the stage ``state``. A mixin of ``StageServer``."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from machinima import protocol as P

from .conn import Conn, ws_frame as _ws_frame

log = logging.getLogger("machinima.server")


class StageTick:
    """``_tick_loop``, the fan-out and ``state()`` of ``StageServer``."""

    async def _tick_loop(self) -> None:
        """Fan out as soon as every live performer has a new frame, or ``coalesce_s`` after
        the first new one, at most 1.25 x ``tick`` times a second: frames do not wait for a
        fixed clock (a fixed 60 Hz tick alone adds up to 16.7 ms of latency)."""
        loop = asyncio.get_running_loop()
        period = 1.0 / self.tick
        coalesce = min(0.004, period / 4)
        spacing = 0.8 * period
        last = 0.0
        next_second = loop.time() + 1.0
        while True:
            try:
                await asyncio.wait_for(self._new_frames.wait(), period)
            except asyncio.TimeoutError:
                pass
            if self._new_frames.is_set():
                deadline = loop.time() + coalesce
                while True:
                    self._new_frames.clear()
                    live = [s for s in self.sources.values() if s.conn is not None and s.kind != P.KIND_BLEND]
                    left = deadline - loop.time()
                    if left <= 0 or all(s.dirty for s in live):
                        break
                    try:
                        await asyncio.wait_for(self._new_frames.wait(), left)
                    except asyncio.TimeoutError:
                        break
                wait = last + spacing - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
            try:
                if any(s.dirty for s in self.sources.values()):
                    self._fanout()
                    last = loop.time()
                if self.recorder.recording:
                    self._guard(self.recorder.tick)
                now = loop.time()
                if now >= next_second:
                    self._every_second(now - next_second + 1.0)
                    next_second = now + 1.0
                elif self._state_dirty:
                    self._broadcast_state()
            except Exception:
                log.exception("tick failed")

    def _groups(self) -> dict[tuple[Any, int], list[Conn]]:
        """Frame subscribers grouped by interest (performers, encoding); rebuilt on changes."""
        if self._groups_cache is None:
            groups: dict[tuple[Any, int], list[Conn]] = {}
            for c in self.conns.values():
                if c.frames and not c.closing and c.ws is not None:
                    groups.setdefault((c.performers, c.encoding), []).append(c)
            self._groups_cache = groups
        return self._groups_cache

    def _fanout(self) -> None:
        dirty = [s for s in self.sources.values() if s.dirty]
        if not dirty:
            return
        self.tick_seq += 1
        limit = self.limits.viewer_buffer
        stats = self.stats
        for (interest, enc), conns in self._groups().items():
            if interest is None:
                parts = [s.encoded(enc) for s in dirty]
            else:
                parts = [s.encoded(enc) for s in dirty if s.name in interest]
            if not parts:
                continue
            data = _ws_frame(P.encode_bundle(parts, seq=self.tick_seq), 0x2)
            sent = 0
            for conn in conns:
                if not conn.is_open():  # closing, half-closed, gone: never raise, never wait
                    continue
                if conn.ws.transport.get_write_buffer_size() > limit:
                    conn.dropped += 1
                    stats["skipped"] += 1
                    continue
                sent += conn.write(data)
            stats["bundles_out"] += sent
        if self._live is not None:
            self._live.publish(dirty, self.tick_seq)
        for s in dirty:
            s.dirty = False

    def _every_second(self, span: float) -> None:
        for s in self.sources.values():
            s.rate = s.window_count / max(span, 1e-3)
            s.window_count = 0
        now, wall = time.monotonic(), time.time()
        slow = self.limits.slow_close_s
        for c in list(self.conns.values()):
            if c.dropped > c.dropped_told:
                c.write(_ws_frame(P.encode_control("dropped", count=c.dropped - c.dropped_told, total=c.dropped).encode(), 0x1))
                c.dropped_told = c.dropped
            if c.probe is not None and now - c.drained_at > slow:
                self._close(c, P.CLOSE_SLOW, f"too slow: nothing read for {slow:g} s (read faster or subscribe to fewer performers / f16)")
            if c.expires <= wall and not (self.recorder.recording and c.published):  # a take's publisher goes after stop
                self._close(c, P.CLOSE_EXPIRED, "expired token: the token's lifetime ended (issue a new one with `machinima server token`)")
        self._broadcast_state()

    def _broadcast_state(self) -> None:
        self._state_dirty = False
        frame = _ws_frame(P.encode_control("state", stage=self.state()).encode(), 0x1)
        for c in list(self.conns.values()):
            if c.events and c.is_open() and c.ws.transport.get_write_buffer_size() <= self.limits.viewer_buffer:
                c.write(frame)

    def state(self) -> dict[str, Any]:
        now = time.monotonic()
        take = self.recorder.take
        roles: dict[str, int] = {}
        named = []
        for c in self.conns.values():
            roles[c.role] = roles.get(c.role, 0) + 1
            if c.role != "observer" and len(named) < 50:
                named.append({"name": c.name, "role": c.role, "client": c.client})
        return {
            "recording": take is not None,
            "take": take.id if take else None,
            "elapsed_s": round((time.monotonic_ns() - self.recorder.started_ns) / 1e9, 2) if take else None,
            "recorded_samples": self.recorder.frames if take else None,
            "slate": dict(self.slate),
            "last_take": self.last_take,
            "error": self.recorder.last_error,
            "recovered": self.recovered,
            "performers": [s.health(now) for s in self.sources.values() if s.kind != P.KIND_BLEND],
            "clients": named,
            "roles": roles,
            "tick": self.tick,
            "stats": dict(self.stats),
            "live": self._live.summary() if self._live is not None else None,
        }

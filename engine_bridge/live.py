"""Relay of the live stage to engines: ``machinima bridge live --server URL --vmc HOST:PORT``.

A ``StageClient`` (hub, ``machinima.client``) subscribes to the performers the mapping names
and keeps the newest pose and blendshape weights of each (the stage's POSE and BLEND frames);
the ticker sends them (VMC ``/VMC/Ext/Blend/Val`` + ``Apply`` for avatars with
``blendshapes = true``) to every target at the
engines' rate on absolute deadlines (sample-and-hold: a performer whose frames stop arriving
keeps its last pose, and the report counts the stale ticks). The same connection forwards the
cameras and events that plugins or OSC publish (this client is an ``engine`` on the stage).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from machinima.errors import MachinimaError
from machinima.timecode import NS_PER_S, Timecode

from .errors import BridgeError
from .mapping import Mapping
from .scheduler import Ticker
from .targets import BridgeFrame, Target, create_target

log = logging.getLogger("machinima.bridge")


@dataclass
class LiveReport:
    frames_received: int = 0
    blend_frames_received: int = 0
    ticks: int = 0
    missing: list[str] = field(default_factory=list)
    jitter: dict[str, Any] = field(default_factory=dict)
    targets: dict[str, dict[str, Any]] = field(default_factory=dict)
    forwarded: dict[str, int] = field(default_factory=lambda: {"camera": 0, "event": 0})


class LiveRelay:
    """Relays the stage at ``url`` (token of an ``engine`` client) to the mapping's engines."""

    def __init__(self, url: str, token: str, mapping: Mapping, *, rate: float = 60.0, client: str = "engine-bridge", open_timeout: float = 10.0, spin_ns: int = 1_000_000) -> None:
        self.url, self.token, self.mapping = url, token, mapping
        rates = [e.rate for e in mapping.engines if e.rate]
        self.rate = float(max(rates + [rate]))
        self.default_rate = float(rate)  # engines without their own rate
        self.ticker = Ticker(self.rate, spin_ns=spin_ns)
        self.client_name = client
        self.open_timeout = open_timeout
        self.latest: dict[str, np.ndarray] = {}
        self.latest_blend: dict[str, dict[str, float]] = {}
        self.report = LiveReport()
        self.targets: list[Target] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="stage-relay", daemon=True)
        self._client: Any = None
        self._reader: Any = None

    # --- stage connection (on the relay's own loop thread) -------------------------------------
    def connect(self) -> dict[str, Any]:
        from machinima.client import StageClient

        self._thread.start()

        async def go() -> dict[str, Any]:
            self._client = StageClient(self.url, self.token, client=self.client_name, reconnect=True, open_timeout=self.open_timeout)
            welcome = await self._client.open()
            await self._client.subscribe(frames=True, performers=self.mapping.performers() or None, encoding="f32", events=False)
            return welcome

        try:
            welcome = asyncio.run_coroutine_threadsafe(go(), self._loop).result(self.open_timeout + 5)
        except MachinimaError as exc:
            self.close()
            raise BridgeError(f"cannot relay the stage at {self.url}: {exc}", hint="is `machinima server` running there, and is the token valid?") from None
        on_stage = [p.get("name") for p in (self._client.stage or {}).get("performers", []) if isinstance(p, dict) and p.get("kind", "performer") == "performer"]
        self.report.missing = [p for p in self.mapping.performers() if p not in on_stage]
        if self.report.missing:
            log.warning("not on the stage yet: %s (their avatars wait for their first frame)", ", ".join(self.report.missing))
        self._reader = asyncio.run_coroutine_threadsafe(self._read(), self._loop)
        return welcome

    async def _read(self) -> None:
        from machinima.protocol import KIND_BLEND, KIND_POSE

        async for frame in self._client.frames():
            if frame.kind == KIND_POSE and frame.values is not None:
                self.latest[frame.name] = np.asarray(frame.values, dtype=np.float32)
                self.report.frames_received += 1
            elif frame.kind == KIND_BLEND and frame.names:
                self.latest_blend[frame.name] = frame.blendshapes
                self.report.blend_frames_received += 1

    # --- sink for plugins / OSC (thread-safe: hops onto the relay loop) ------------------------
    def camera(self, name: str, t_ns: int, values: np.ndarray) -> None:
        self._forward(self._client.send_camera(name, np.asarray(values, dtype=np.float32)), "camera")

    def event(self, name: str, t_ns: int, payload: dict[str, Any], source: str = "engine") -> None:
        self._forward(self._client.event(name, payload), "event")

    def _forward(self, coro: Any, kind: str) -> None:
        if self._client is None:
            raise BridgeError("not connected to the stage")
        try:
            asyncio.run_coroutine_threadsafe(coro, self._loop).result(5)
        except MachinimaError as exc:
            raise BridgeError(f"the stage refused the {kind}: {exc}") from None
        self.report.forwarded[kind] += 1

    # --- ticking -------------------------------------------------------------------------------
    def run(self, *, duration_s: float | None = None, max_ticks: int | None = None) -> LiveReport:
        if self._client is None:
            self.connect()
        context = {"controller": None, "sink": self, "info": {"mode": "live", "stage": self.url}}
        try:
            for e in self.mapping.engines:
                t = create_target(e, **context)
                t.open()
                self.targets.append(t)
            rates = [float(t.engine.rate or self.default_rate) for t in self.targets]
            start = time.perf_counter_ns() + 2_000_000
            end = None if duration_s is None else start + int(duration_s * NS_PER_S)

            def tick(k: int, deadline: int) -> bool:
                if end is not None and deadline > end:
                    return False
                t_s = (deadline - start) / NS_PER_S
                poses = dict(self.latest)
                frame = BridgeFrame(k, t_s, self._tc(deadline - start), poses, dict(self.latest_blend), "live")
                for t, r in zip(self.targets, rates):
                    # a slower engine gets the ticks where its own frame counter advances
                    if k and r < self.rate - 1e-9 and int(k * r / self.rate + 1e-9) == int((k - 1) * r / self.rate + 1e-9):
                        continue
                    t.send(frame)
                self.report.ticks += 1
                return True

            self.ticker.run(tick, max_ticks=max_ticks, start_ns=start)
        finally:
            self.report.jitter = self.ticker.stats.summary()
            for t in self.targets:
                t.close()
            self.report.targets = {t.name: t.stats.as_dict() for t in self.targets}
            self.close()
        return self.report

    def _tc(self, ns: int) -> str:
        return str(Timecode.from_ns(ns, self.rate))

    def stop(self) -> None:
        self.ticker.stop()

    def close(self) -> None:
        if self._client is not None and self._loop.is_running():
            try:
                asyncio.run_coroutine_threadsafe(self._client.close(), self._loop).result(5)
            except Exception:
                pass
        if self._loop.is_running():

            async def cancel_rest() -> None:  # e.g. the websocket keepalive: no "Task was destroyed"
                rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
                for t in rest:
                    t.cancel()
                await asyncio.gather(*rest, return_exceptions=True)

            try:
                asyncio.run_coroutine_threadsafe(cancel_rest(), self._loop).result(5)
            except Exception:
                pass
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)

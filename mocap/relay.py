"""Relay listened frames to the stage server as a performer client (``--server URL --token T``).

Latest-wins per performer: a slow connection skips stale poses instead of queueing them. Each
performer gets its own sequence counter (the stage counts loss per performer from it) and the
stamp is the wall clock at reception, as the stage protocol expects. Blendshapes travel as
BLEND frames beside the pose (latest-wins too: each carries the performer's whole set).
"""

from __future__ import annotations

import asyncio
import time

from machinima import protocol as P
from machinima.client import StageClient

from .frames import Frame


class StageRelay:
    def __init__(self, url: str, token: str, *, reconnect: bool = True) -> None:
        self.client = StageClient(url, token, client="machinima-mocap", reconnect=reconnect)
        self.sent = 0
        self.skipped = 0
        self.errors = 0
        self._latest: dict[str, Frame] = {}
        self._blend: dict[str, Frame] = {}
        self._seq: dict[str, int] = {}
        self._event = asyncio.Event()
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        await self.client.open()
        self._task = asyncio.create_task(self._run())

    def offer(self, f: Frame) -> None:
        if f.pose is not None:
            if f.performer in self._latest:
                self.skipped += 1
            self._latest[f.performer] = f
        if f.blendshapes:
            self._blend[f.performer] = f
        self._event.set()

    async def _run(self) -> None:
        while True:
            await self._event.wait()
            self._event.clear()
            batch, self._latest = self._latest, {}
            blends, self._blend = self._blend, {}
            for kind, frames in ((P.KIND_POSE, batch), (P.KIND_BLEND, blends)):
                for name, f in frames.items():
                    key = P.source_key(kind, name)
                    seq = self._seq.get(key, -1) + 1
                    self._seq[key] = seq
                    wall = time.time_ns() - (time.monotonic_ns() - f.t_recv_ns)
                    try:
                        if kind == P.KIND_POSE:
                            data = P.encode_pose(name, f.pose, seq=seq, t_ns=wall)
                        else:
                            data = P.encode_blend(name, f.blendshapes or {}, seq=seq, t_ns=wall)
                        await self.client.send_frame(data)
                        self.sent += 1
                    except P.ProtocolError:
                        self.errors += 1

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
        await self.client.close()

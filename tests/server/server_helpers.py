"""Shared helpers for the stage tests: an in-process server, tokens, synthetic performers."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from machinima import protocol as P
from machinima.client import StageClient
from machinima.skeleton import BONE_INDEX, rest_pose

REPO = Path(__file__).resolve().parents[2]


def run(coro, timeout: float = 60.0):
    async def main():
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(main())


def synthetic_pose(t: float, phase: float = 0.0) -> np.ndarray:
    """A performer walking in place: hips sway, arms swing (canonical local pose)."""
    pose = rest_pose()
    pose[0, :3] = (0.3 * math.sin(t + phase), 0.95 + 0.02 * math.sin(4 * t), 0.2 * math.cos(t))
    for bone, sign in (("LeftUpperArm", 1), ("RightUpperArm", -1)):
        a = 0.6 * math.sin(2 * t + phase) * sign
        pose[BONE_INDEX[bone], 3:7] = (0.0, 0.0, math.sin(a / 2), math.cos(a / 2))
    return pose


@contextlib.asynccontextmanager
async def stage(root: Path, **kwargs):
    from server.stage import Limits, StageServer

    limits = kwargs.pop("limits", None) or Limits(**kwargs.pop("limit_kw", {}))
    srv = StageServer(root, port=0, limits=limits, **kwargs)
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


def url(srv) -> str:
    return f"ws://127.0.0.1:{srv.port}/stage"


def token(root: Path, role: str, name: str, ttl: float = 3600) -> str:
    from server.auth import load_secret

    return P.make_token(load_secret(root), role, name, ttl_s=ttl)


async def client(srv, role: str, name: str, **kw) -> StageClient:
    c = StageClient(url(srv), token(srv.root, role, name), client="test", **kw)
    await c.open()
    return c


async def perform(c: StageClient, frames: int, rate: float = 60.0, phase: float = 0.0) -> int:
    """Publish ``frames`` poses at ``rate`` Hz; returns how many were sent."""
    t0 = time.perf_counter()
    for i in range(frames):
        await c.send_pose(synthetic_pose(i / rate, phase))
        await asyncio.sleep(max(0.0, t0 + (i + 1) / rate - time.perf_counter()))
    return frames


async def fill_the_take_store(srv, perf: StageClient, frames: int = 20) -> int:
    """Record ``frames`` poses, then make the recording take's store full (SQLite's
    max_page_count: a real "disk full" from the database, without a small filesystem) and keep
    sending noisy poses until the stage stops the recording; returns how many were sent after."""
    await perform(perf, frames, 120)
    await wait_for(lambda: srv.recorder.frames >= frames)
    srv.recorder.writer.commit()
    db = srv.recorder.take.store._db
    db.execute(f"PRAGMA max_page_count={db.execute('PRAGMA page_count').fetchone()[0] + 1}")  # the disk is now full
    i = 0
    while srv.recorder.recording and i < 2000:
        await perf.send_pose(synthetic_pose(i / 60) + np.random.default_rng(i).normal(0, 0.1, (55, 7)).astype(np.float32))
        i += 1
        await asyncio.sleep(0.002)
    return i


async def wait_for(pred, timeout: float = 10.0, step: float = 0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        await asyncio.sleep(step)
    raise AssertionError("condition not met in time")


async def refused(srv_url: str, first_message: str | bytes) -> tuple[int | None, str, list]:
    """Connect, send ``first_message``, read until the server closes: (close code, reason,
    messages received)."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    msgs = []
    async with connect(srv_url, compression=None, proxy=None, ping_interval=None, max_size=None) as ws:
        await ws.send(first_message)
        try:
            async for m in ws:
                msgs.append(m)
        except ConnectionClosed:
            pass
        return ws.close_code, ws.close_reason, msgs


def server_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    return env


class ServerProcess:
    """``python -m server`` in a subprocess (for kill -9 and the browser test)."""

    def __init__(self, root: Path, *extra: str, cwd: Path | None = None) -> None:
        """``root`` as the user types it: relative to ``cwd`` when that is given."""
        self.root = root
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "server", "--root", str(root), "--port", "0", "--log-level", "warning", *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=server_env(), text=True, cwd=cwd,
        )
        line = self.proc.stdout.readline()
        if not line.startswith("listening on"):
            self.proc.kill()
            raise RuntimeError(f"server did not start: {line!r} {self.proc.stderr.read()}")
        self.url = line.split()[-1]
        self.port = int(self.url.rsplit(":", 1)[1].split("/")[0])

    def kill9(self) -> None:
        self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        for s in (self.proc.stdout, self.proc.stderr):
            s.close()


@pytest.fixture
def root(tmp_path):
    return tmp_path / "takes"

"""Relay to the stage (a minimal stage speaking machinima.protocol over real websockets), BVH
playback, late frames recorded, blendshapes into the take, the live health table."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest

from machinima import protocol as P
from machinima import vmc
from machinima.bvh import export_bvh
from machinima.take import Take
from mocap.bvhsource import BVHPlayback
from mocap.errors import MocapError
from mocap.frames import Frame
from machinima.takewriter import TakeWriter
from mocap.listener import Ingest
from mocap.relay import StageRelay
from mocap.sources import VMCSource
from mocap.synthetic import synthetic_blendshapes, synthetic_poses


async def _fake_stage(received: list):
    from websockets.asyncio.server import serve

    async def handler(ws):
        hello = json.loads(await ws.recv())
        assert hello["type"] == "hello" and hello["token"] == "tok"
        await ws.send(P.encode_control("welcome", role="performer", name="mocap", session="s1", stage={}))
        async for raw in ws:
            if isinstance(raw, bytes):
                received.append(P.decode_frame(raw))

    return await serve(handler, "127.0.0.1", 0, subprotocols=[P.SUBPROTOCOL])


def test_relay_sends_each_performer_with_its_own_sequence():
    received: list = []

    async def run():
        server = await _fake_stage(received)
        port = server.sockets[0].getsockname()[1]
        relay = StageRelay(f"ws://127.0.0.1:{port}/stage", "tok", reconnect=False)
        await relay.start()
        for k in range(5):
            for name in ("ana", "bo"):
                relay.offer(Frame(name, "vmc", 0, synthetic_poses(k / 60, seed=1)[0]))
            await asyncio.sleep(0.02)
        for _ in range(50):
            if len(received) >= 10:
                break
            await asyncio.sleep(0.02)
        await relay.close()
        server.close()
        await server.wait_closed()
        return relay

    relay = asyncio.run(run())
    by = {}
    for f in received:
        by.setdefault(f.name, []).append(f)
    assert set(by) == {"ana", "bo"}
    for frames in by.values():
        assert [f.seq for f in frames] == list(range(len(frames)))
        assert frames[-1].values.shape == (55, 7)
    assert relay.sent == len(received) and relay.errors == 0


def test_bvh_playback_loops_with_start_offset(tmp_path):
    poses = synthetic_poses(np.arange(30) / 30, motion="wave", seed=2)
    path = export_bvh(tmp_path / "w.bvh", poses, 30)
    pb = BVHPlayback(path, start_s=0.5)
    assert pb.fps == pytest.approx(30) and pb.duration_s == pytest.approx(1.0)
    assert pb.frame_index(0.0) == 15 and pb.frame_index(0.5) == 0 and pb.frame_index(0.6) == 3
    once = BVHPlayback(path, loop=False)
    assert once.pose_at(0.99) is not None and once.pose_at(1.2) is None
    with pytest.raises(MocapError):
        BVHPlayback(path, start_s=-1)


def test_late_frames_are_recorded_not_delivered_and_blendshapes_land(tmp_path):
    take = Take.create(tmp_path / "takes", production="p", scene="1", shot="a", fps=60)
    got = []
    ing = Ingest(writer=TakeWriter(take), on_frame=got.append)
    ing.add_source(VMCSource("vmc"))
    addr = ("127.0.0.1", 5555)
    t0 = 10**12
    order = [0, 1, 3, 2, 4]  # frame 2 comes after 3 was delivered: late
    for n, k in enumerate(order):
        pkt = vmc.encode_frame(synthetic_poses(k / 60, seed=3)[0], time_s=k / 60, root_name="ana", blendshapes=synthetic_blendshapes(k / 60, 3))
        ing.datagram("vmc", pkt, addr, t0 + n * 16_000_000)
    assert [round(f.sender_time_s * 60) for f in got] == [0, 1, 3, 4]
    st = ing.timing["vmc"]["ana"].counts
    assert st["late"] == 1
    ing.finish()
    ing.end_take()
    again = Take.open(take.path)
    tr = again.store.read_mocap("ana")
    assert len(tr) == 5 and np.all(np.diff(tr.t_ns) > 0)  # the late one sits in its place
    blend = again.store.read("blend/ana")
    assert len(blend) == 5 and blend.meta["channels"] == ["A", "Blink"]


def test_health_table_renders():
    from rich.console import Console

    from mocap.cli import _health_table

    ing = Ingest()
    ing.add_source(VMCSource("vmc"))
    ing.datagram("vmc", vmc.encode_frame(synthetic_poses(0.0)[0], time_s=0.0), ("h", 1))
    ing.datagram("vmc", b"garbage!", ("h", 1))
    ing.finish()  # the only frame is complete once the stream ends
    con = Console(record=True, width=160)
    con.print(_health_table(ing.summary(), ing))
    text = con.export_text()
    assert "vmc-1" in text and "not_osc 1" in text

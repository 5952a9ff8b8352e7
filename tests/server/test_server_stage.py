"""The stage server end to end on loopback: recording, idempotent commands, reconnection."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from server_helpers import client, perform, run, stage, synthetic_pose, token, wait_for
from machinima.client import StageClient
from machinima import protocol as P
from machinima.take import Take


def test_record_session_writes_every_stream(root):
    async def main():
        async with stage(root, production="film") as srv:
            director = await client(srv, "director", "dana")
            alice = await client(srv, "performer", "alice")
            bob = await client(srv, "performer", "bob")
            engine = await client(srv, "engine", "unity")
            await perform(alice, 1), await perform(bob, 1)  # join the stage before record
            await wait_for(lambda: len(srv.sources) == 2)
            res = await director.record(slate={"scene": "12", "shot": "B"}, notes=["rain"])
            assert res["take"] == "film_12_b_t001" and res["performers"] == ["alice", "bob"]
            sent = await asyncio.gather(perform(alice, 30, 120), perform(bob, 30, 120, phase=1.0))
            for i in range(5):
                await engine.send_camera("cam1", np.arange(12, dtype=np.float32) + i)
            await engine.event("door_open", {"door": 2})
            await director.marker("stumble", note="left foot")
            await director.note("good for the wide")
            await wait_for(lambda: srv.recorder.frames >= sum(sent) + 5)
            out = await director.stop()
            assert out == {"take": "film_12_b_t001", "status": "complete", "samples": sum(sent) + 5, "timecode_out": out["timecode_out"]}
            res2 = await director.record()
            assert res2["take"] == "film_12_b_t002" and res2["take_number"] == 2
            await director.cut()
            takes = await director.takes()
            assert [t["id"] for t in takes][:2] == ["film_12_b_t002", "film_12_b_t001"]
            assert takes[1]["markers"][0]["name"] == "stumble" and "good for the wide" in takes[1]["notes"]
            assert "cut" in takes[0]["notes"]
            for c in (director, alice, bob, engine):
                await c.close()
        take = Take.open(root / "film_12_b_t001")
        st = take.store
        assert take.manifest.status == "complete" and take.manifest.slate.scene == "12"
        assert len(st.read_mocap("alice")) == 30 and len(st.read_mocap("bob")) == 30  # the join frame came before record
        np.testing.assert_allclose(st.read_mocap("alice").values[-1], synthetic_pose(29 / 120), atol=1e-6)
        assert len(st.read("camera/cam1")) == 5
        assert st.events(kind="event")[0]["payload"] == {"name": "door_open", "payload": {"door": 2}, "from": "unity"}
        assert st.events(kind="marker")[0]["payload"]["name"] == "stumble"
        assert take.manifest.notes == ["rain", "good for the wide"]
        assert take.manifest.extra["stage"] == {"director": "dana", "server": take.manifest.extra["stage"]["server"], "loss": {"alice": 0, "bob": 0}}

    run(main())


def test_idempotent_commands_survive_a_reconnect(root):
    async def main():
        async with stage(root) as srv:
            d = await client(srv, "director", "dana")
            first = await d.record(id="rec-1")
            await d.close()
            d2 = await client(srv, "director", "dana")  # the director's laptop reconnects
            again = await d2.record(id="rec-1")
            assert again == first
            with pytest.raises(P.ProtocolError) as err:
                await d2.record(id="rec-2")
            assert err.value.code == "already_recording"
            stop1 = await d2.stop(id="stop-1")
            assert await d2.stop(id="stop-1") == stop1
            await d2.close()
        assert len([p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]) == 1

    run(main())


def test_performer_drop_mid_take_is_recorded_as_a_gap(root):
    async def main():
        async with stage(root) as srv:
            d = await client(srv, "director", "dana")
            alice = await client(srv, "performer", "alice", reconnect=True)
            await perform(alice, 3)
            await d.record()
            await perform(alice, 6)
            alice._ws.transport.abort()  # the network drops
            await wait_for(lambda: not alice.connected)
            await wait_for(lambda: alice.connected, timeout=10)
            await perform(alice, 6)
            await wait_for(lambda: srv.recorder.frames >= 12)
            state = srv.state()
            assert [p["connected"] for p in state["performers"]] == [True]
            out = await d.stop()
            await alice.close(), await d.close()
        gaps = Take.open(root / out["take"]).store.events(kind="gap")
        assert [g["payload"]["state"] for g in gaps] == ["open", "closed"]
        assert gaps[1]["payload"]["performer"] == "alice" and gaps[1]["payload"]["ms"] > 50

    run(main())


def test_viewers_get_latest_frames_in_their_encoding(root):
    async def main():
        async with stage(root) as srv:
            alice = await client(srv, "performer", "alice")
            bob = await client(srv, "performer", "bob")
            viewer = await client(srv, "observer", "v1", max_frames=1000)
            await viewer.subscribe(performers=["bob"], encoding="f16", events=False)
            await asyncio.gather(perform(alice, 10), perform(bob, 10))
            await asyncio.sleep(0.1)
            got = []
            while True:
                try:
                    got.append(await viewer.next_frame(timeout=0.2))
                except P.ProtocolError:
                    break
            assert got and {f.name for f in got} == {"bob"} and all(f.encoding == P.ENC_F16 for f in got)
            np.testing.assert_allclose(got[-1].values, synthetic_pose(9 / 60, 0.0), atol=3e-3)
            assert got[-1].seq == 9
            health = {p["name"]: p for p in srv.state()["performers"]}
            assert health["alice"]["frames"] == 10 and health["alice"]["loss"] == 0
            for c in (alice, bob, viewer):
                await c.close()

    run(main())


def test_local_udp_mocap_source_joins_the_stage_and_records(root, monkeypatch):
    pytest.importorskip("mocap.sources")  # the vmc plugin ships with the mocap package
    import socket
    from importlib.metadata import EntryPoint

    from machinima.vmc import encode_frame
    from server import udp as udp_mod

    eps = udp_mod._entry_points()
    if "vmc" not in eps:  # a dev install made before pyproject declared the plugin group
        eps["vmc"] = EntryPoint(name="vmc", value="mocap.sources:VMCSource", group=udp_mod.GROUP)
        monkeypatch.setattr(udp_mod, "_entry_points", lambda: eps)

    async def main():
        async with stage(root) as srv:
            host, port = await srv.attach_udp("vmc:127.0.0.1:0")
            d = await client(srv, "director", "dana")
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            udp.sendto(encode_frame(synthetic_pose(0), root_name="carol"), (host, port))
            await wait_for(lambda: "carol" in srv.sources)
            res = await d.record()
            assert res["performers"] == ["carol"]
            for i in range(1, 21):
                udp.sendto(encode_frame(synthetic_pose(i / 60), root_name="carol"), (host, port))
                await asyncio.sleep(1 / 120)
            await wait_for(lambda: srv.recorder.frames >= 20)
            udp.sendto(b"\x00garbage", (host, port))  # counted by the source, never a crash
            await asyncio.sleep(0.05)
            health = {p["name"]: p for p in srv.state()["performers"]}
            assert health["carol"]["connected"] and health["carol"]["client"] == f"udp-vmc-0"
            out = await d.stop()
            udp.close()
            await d.close()
        track = Take.open(root / out["take"]).store.read_mocap("carol")
        assert len(track) == 20
        np.testing.assert_allclose(track.values[-1], synthetic_pose(20 / 60), atol=1e-4)

    run(main())


def test_unknown_udp_source_is_a_clear_error(root):
    from server.errors import StageError

    async def main():
        async with stage(root) as srv:
            with pytest.raises(StageError, match="no mocap source named 'kinect9'"):
                await srv.attach_udp("kinect9:0")
            with pytest.raises(StageError, match="KIND:PORT"):
                await srv.attach_udp("vmc")

    run(main())


def test_live_workers_fan_out_to_read_only_viewers(root):
    async def main():
        async with stage(root, workers=2) as srv:
            assert srv.live_port and srv.live_port != srv.port
            live = f"ws://127.0.0.1:{srv.live_port}/live"
            viewers = [StageClient(live, token(root, "observer", f"v{i}"), max_frames=1000) for i in range(4)]
            for v in viewers:
                await v.open()
                await v.subscribe(encoding="f16", events=False)
            with pytest.raises(P.ProtocolError) as err:  # the live port is for watching only
                await viewers[0].record()
            assert err.value.code == "forbidden" and "/stage" in str(err.value)
            alice = await client(srv, "performer", "alice")
            await perform(alice, 30, 120)
            for v in viewers:
                await wait_for(lambda v=v: any(f.seq == 29 for f in list(v._frames)), timeout=10)
                last = list(v._frames)[-1]
                assert last.name == "alice" and last.encoding == P.ENC_F16
                np.testing.assert_allclose(last.values, synthetic_pose(29 / 120), atol=3e-3)
            await wait_for(lambda: (srv.state()["live"] or {}).get("viewers") == 4, timeout=10)  # workers report back
            assert srv.state()["live"]["bundles_out"] >= 4
            for v in viewers + [alice]:
                await v.close()
            procs = list(srv._live.procs)
        for p in procs:  # the workers left with the stage
            assert p.wait(10) is not None

    run(main())

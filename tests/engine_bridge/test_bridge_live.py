"""`bridge live` against the real stage server (started with its CLI): a performer's frames
reach a VMC receiver through the bridge, and a plugin's camera ends up in the director's take."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from websockets.sync.client import connect

import engine_bridge
from machinima import protocol as P
from machinima.client import SyncStageClient
from machinima.skeleton import BONE_INDEX, rest_pose
from machinima.take import Take
from machinima.vmc import VMCDecoder

from engine_bridge.errors import BridgeError
from engine_bridge.live import LiveRelay
from engine_bridge.mapping import mapping_from_flags

REPO = Path(engine_bridge.__file__).resolve().parent.parent
SECRET = bytes(range(32))


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(REPO) + os.pathsep + e.get("PYTHONPATH", "")
    return e


@pytest.fixture
def stage(tmp_path):
    root = tmp_path / "takes"
    root.mkdir()
    secret = root / ".stage-secret"  # the server's documented secret file: hex, mode 0600
    secret.write_text(SECRET.hex() + "\n")
    secret.chmod(0o600)
    proc = subprocess.Popen([sys.executable, "-m", "machinima", "server", "--port", "0", "--root", str(root), "--tick", "60", "--fps", "30", "--log-level", "warning"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env(), cwd=tmp_path)
    url = None
    end = time.monotonic() + 30
    lines = []
    while time.monotonic() < end:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith("listening on "):
            url = line.split()[2]
            break
    if url is None:
        proc.kill()
        pytest.fail(f"stage server did not start: {''.join(lines)}")
    yield url, root
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def token(role: str, name: str) -> str:
    return P.make_token(SECRET, role, name)


def test_live_relay_and_camera_back_to_the_stage(stage, udp):
    url, root = stage
    director = SyncStageClient(url, token("director", "dir"))
    alice = SyncStageClient(url, token("performer", "alice"))
    pose = rest_pose()
    pose[BONE_INDEX["Hips"], :3] = (0.25, 1.0, -0.5)
    stop = threading.Event()

    def perform():
        i = 0
        while not stop.is_set():
            p = pose.copy()
            p[BONE_INDEX["Hips"], 1] = 1.0 + 0.001 * (i % 10)
            alice.send_pose(p)
            i += 1
            time.sleep(1 / 60)

    performer = threading.Thread(target=perform, daemon=True)
    performer.start()
    rx = udp()
    m = mapping_from_flags(["alice"], vmc=[f"127.0.0.1:{rx.port}"], plugin="127.0.0.1:0")
    relay = LiveRelay(url, token("engine", "bridge"), m, rate=60)
    relay.connect()
    result = {}
    runner = threading.Thread(target=lambda: result.setdefault("rep", relay.run(duration_s=3.0)), daemon=True)
    try:
        time.sleep(0.3)
        started = director.record(slate={"production": "film", "scene": "2", "shot": "B"})
        runner.start()
        end = time.monotonic() + 5
        while not relay.targets or getattr(relay.targets[-1], "server", None) is None or relay.targets[-1].server.port == 0:
            time.sleep(0.02)
            assert time.monotonic() < end
        with connect(relay.targets[-1].server.url, open_timeout=5) as ws:
            ws.send(json.dumps({"type": "hello", "protocol": "machinima.bridge", "version": 1, "client": "UE5"}))
            welcome = json.loads(ws.recv(timeout=5))
            assert welcome["mode"] == "live"
            for i in range(3):
                ws.send(json.dumps({"type": "camera", "name": "steadicam", "id": i, "position": [0.0, 1.7, -4.0 + i], "rotation": [0, 0, 0, 1], "focal_mm": 28}))
                while json.loads(ws.recv(timeout=5)).get("type") != "ack":
                    pass
            ws.send(json.dumps({"type": "event", "name": "lights_on", "payload": {"level": 0.8}, "id": "ev"}))
            while json.loads(ws.recv(timeout=5)).get("type") != "ack":
                pass
        runner.join(10)
        stopped = director.stop()
    finally:
        stop.set()
        performer.join(2)
        alice.close()
        director.close()
    rep = result["rep"]
    assert rep.frames_received > 20 and rep.forwarded == {"camera": 3, "event": 1}
    assert rep.targets["vmc:alice"]["errors"] == 0
    rx.wait_for(100)
    dec = VMCDecoder()
    got = []
    for _, data in rx.packets:
        pkt = dec.decode(data)
        p = rest_pose()
        pkt.apply_to(p)
        got.append(p)
    assert len(got) >= 100  # 3 s at 60 Hz once the performer's frames arrived
    np.testing.assert_allclose(got[-1][BONE_INDEX["Hips"], [0, 2]], [0.25, -0.5], atol=1e-6)
    assert 1.0 <= got[-1][BONE_INDEX["Hips"], 1] <= 1.0091
    take = Take.open(root / started["take"])
    cam = take.store.read("camera/steadicam")
    assert len(cam) == 3 and cam.values[:, 2].tolist() == [-4.0, -3.0, -2.0] and cam.values[0, 7] == 28
    names = [e["payload"].get("name") for e in take.store.events(kind="event")]
    assert "lights_on" in names and stopped


def test_stage_sink_director_control_and_bad_tokens(stage, tmp_path):
    """`bridge play --server`: cameras/events go to the stage's running take, the director steers
    playback with `bridge.control` stage events; bad tokens are clear errors."""
    from bridge_helpers import make_take
    from engine_bridge.ingest import StageSink
    from engine_bridge.player import Player

    url, root = stage
    relay = LiveRelay(url, "not-a-token", mapping_from_flags(["alice"], vmc=["127.0.0.1:9"]), open_timeout=5)
    with pytest.raises(BridgeError, match="cannot relay the stage"):
        relay.connect()
    with pytest.raises(BridgeError, match="cannot connect to the stage"):
        StageSink(url, token("engine", "x")[:-4] + "AAAA")
    director = SyncStageClient(url, token("director", "dir"))
    sink = StageSink(url, token("engine", "unity"))
    try:
        started = director.record(slate={"production": "film", "scene": "3", "shot": "C"})
        for i in range(4):
            sink.camera("dolly", 0, np.array([0, 1.5, i, 0, 0, 0, 1, 40, 36, 24, 2, 0], dtype=np.float32))
        sink.event("cue", 0, {"n": 1})
        time.sleep(0.3)  # camera frames are fire-and-forget binary frames; let them land
        # the director steers the playback from the stage (console or any director client)
        src, _ = make_take(tmp_path / "src", performers=("alice",), n=60, fps=30)
        player = Player(src, mapping_from_flags(["alice"], vmc=["127.0.0.1:9"]), sink=sink)
        sink.follow_director(player)
        director.event("bridge.control", {"command": "pause"})
        director.event("bridge.control", {"command": "seek", "timecode": "01:00:01:00"})
        director.event("bridge.control", {"command": "warp"})  # a bad command: logged, ignored
        end = time.monotonic() + 5
        while sink.commands < 2 and time.monotonic() < end:
            time.sleep(0.02)
        assert player.playhead.paused and player.playhead.position() == pytest.approx(1.0)
        director.stop()
    finally:
        sink.close()
        director.close()
    take = Take.open(root / started["take"])
    cam = take.store.read("camera/dolly")
    assert len(cam) == 4 and cam.values[:, 2].tolist() == [0, 1, 2, 3] and sink.counts == {"camera": 4, "event": 1}
    assert any(e["payload"].get("name") == "cue" for e in take.store.events(kind="event"))

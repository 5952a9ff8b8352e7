"""A websocket plugin client (Python, standing in for a Unity/Unreal plugin) receives take
playback with timecode, steers it, and publishes a camera and an event that land in a take."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest
from websockets.sync.client import connect

from machinima import quat
from machinima.take import Take

from bridge_helpers import make_take
from engine_bridge.ingest import TakeSink
from engine_bridge.mapping import mapping_from_flags
from engine_bridge.player import Player
from engine_bridge.plugin_server import PluginServer


def recv_until(ws, pred, timeout=10.0):
    end = time.monotonic() + timeout
    seen = []
    while time.monotonic() < end:
        msg = json.loads(ws.recv(timeout=max(0.01, end - time.monotonic())))
        seen.append(msg)
        if pred(msg):
            return msg, seen
    raise AssertionError(f"not received; got {[m['type'] for m in seen][-20:]}")


def hello(ws):
    ws.send(json.dumps({"type": "hello", "protocol": "machinima.bridge", "version": 1, "client": "TestPlugin"}))
    return json.loads(ws.recv(timeout=5))


def test_plugin_receives_playback_and_its_camera_lands_in_the_take(tmp_path):
    path, expected = make_take(tmp_path / "src", performers=("alice", "bob"), n=90, fps=30, camera=True)
    sink = TakeSink(tmp_path / "rec", fps=30)
    m = mapping_from_flags(["alice", "bob"], plugin="127.0.0.1:0")
    player = Player(path, m, sink=sink, loop=True)
    player.open_targets()
    server = player.targets[0].server
    runner = threading.Thread(target=player.run, daemon=True)
    runner.start()
    try:
        with connect(server.url, open_timeout=5) as ws:
            welcome = hello(ws)
            assert welcome["type"] == "welcome" and welcome["mode"] == "playback" and welcome["take"] == "film_1_a_t001"
            assert {p["performer"] for p in welcome["performers"]} == {"alice", "bob"}
            ws.send(json.dumps({"type": "subscribe", "performers": ["bob"], "space": "canonical"}))
            frame, seen = recv_until(ws, lambda m: m["type"] == "frame")
            assert any(m["type"] == "playback" and m["state"] == "playing" for m in seen)
            assert set(frame["performers"]) == {"bob"} and frame["timecode"].startswith("01:00:0")
            k = round(frame["t"] * 30)
            bones = frame["performers"]["bob"]["bones"]
            np.testing.assert_allclose(bones["Hips"], expected["bob"][k, 0], atol=1e-5)
            assert len(bones) == 55
            # the take's recorded camera comes along, in the subscribed space
            cam = frame["cameras"]["dolly"]
            assert cam["position"] == pytest.approx([k / 30, 1.6, 0.0], abs=1e-5) and cam["focal_mm"] == 50
            assert cam["sensor_mm"] == [36, 24] and cam["focus_m"] == 3 and cam["rotation"] == [0, 0, 0, 1]

            # steer playback: pause, seek to a timecode, speed
            ws.send(json.dumps({"type": "playback", "command": "pause"}))
            st, _ = recv_until(ws, lambda m: m["type"] == "playback" and m["state"] == "paused")
            ws.send(json.dumps({"type": "playback", "command": "seek", "timecode": "01:00:02:00"}))
            st, _ = recv_until(ws, lambda m: m["type"] == "playback" and m["timecode"] == "01:00:02:00")
            fr, _ = recv_until(ws, lambda m: m["type"] == "frame" and m["timecode"] == "01:00:02:00")
            np.testing.assert_allclose(fr["performers"]["bob"]["bones"]["Hips"], expected["bob"][60, 0], atol=1e-5)
            ws.send(json.dumps({"type": "playback", "command": "speed", "speed": 2.0}))
            st, _ = recv_until(ws, lambda m: m["type"] == "playback" and m["speed"] == 2.0)
            ws.send(json.dumps({"type": "playback", "command": "play"}))

            # publish a camera track (Unity space) and an event, with ids to get acks
            q = quat.from_axis_angle(np.array([0, 1.0, 0]), 0.5)
            for i in range(5):
                ws.send(json.dumps({"type": "camera", "name": "crane", "id": f"c{i}", "position": [1.0, 1.5 + i * 0.1, -3.0],
                                    "rotation": list(q), "focal_mm": 35 + i, "sensor_mm": [36, 24], "focus_m": 3.0}))
                recv_until(ws, lambda m, i=i: m["type"] == "ack" and m["id"] == f"c{i}")
            ws.send(json.dumps({"type": "event", "name": "door_open", "payload": {"door": 2}, "id": "e1"}))
            recv_until(ws, lambda m: m["type"] == "ack" and m["id"] == "e1")
            # garbage from the engine: an error reply, the connection and playback keep going
            ws.send("{oops")
            err, _ = recv_until(ws, lambda m: m["type"] == "error")
            assert err["code"] == "bad_message"
            recv_until(ws, lambda m: m["type"] == "frame")
    finally:
        player.stop()
        runner.join(10)
    rec_id = sink.close()
    assert player.report.frames_sent > 0 and server.errors == 1
    take = Take.open(tmp_path / "rec" / rec_id)
    assert take.manifest.status == "complete"
    cam = take.store.read("camera/crane")
    assert len(cam) == 5
    # stored canonical: x mirrored, quaternion (x, -y, -z, w)
    np.testing.assert_allclose(cam.values[:, :3], [[-1.0, 1.5 + i * 0.1, -3.0] for i in range(5)], atol=1e-6)
    np.testing.assert_allclose(cam.values[0, 3:7], [q[0], -q[1], -q[2], q[3]], atol=1e-6)
    np.testing.assert_allclose(cam.values[:, 7], [35, 36, 37, 38, 39])
    np.testing.assert_allclose(cam.values[0, 8:11], [36, 24, 3.0])
    assert np.all(np.diff(cam.t_ns) > 0)
    events = take.store.events(kind="event")
    doors = [e for e in events if e["payload"]["name"] == "door_open"]
    assert doors and doors[0]["payload"]["payload"] == {"door": 2} and doors[0]["payload"]["source"] == "TestPlugin"
    # the playback states (play, pause, seek ...) are recorded too, to line cameras up with the source take
    states = [e["payload"]["payload"] for e in events if e["payload"]["name"] == "bridge.playback"]
    assert {"playing", "paused"} <= {s["state"] for s in states} and states[0]["take"] == "film_1_a_t001"


def test_plugin_server_limits_and_no_sink(tmp_path):
    server = PluginServer("127.0.0.1", 0, avatars={"alice": "A"}, max_errors=5).start()
    try:
        with connect(server.url, open_timeout=5) as ws:
            ws.send('{"type": "camera", "name": "c", "position": [0,0,0], "rotation": [0,0,0,1]}')
            assert json.loads(ws.recv(timeout=5))["code"] == "hello_first"
            hello(ws)
            ws.send('{"type": "camera", "name": "c", "position": [0,0,0], "rotation": [0,0,0,1]}')
            assert json.loads(ws.recv(timeout=5))["code"] == "not_recording"
            ws.send('{"type": "playback", "command": "pause"}')
            assert json.loads(ws.recv(timeout=5))["code"] == "not_playback"
            ws.send('{"type": "subscribe", "performers": ["zed"]}')
            assert json.loads(ws.recv(timeout=5))["code"] == "unknown_performer"
            # too many errors: the server closes this connection, and keeps serving others
            ws.send("x")
            with pytest.raises(Exception):
                for _ in range(5):
                    ws.recv(timeout=5)
        with connect(server.url, open_timeout=5) as ws2:
            assert hello(ws2)["type"] == "welcome"
        # an unsupported protocol version is refused with a reason
        with connect(server.url, open_timeout=5) as ws3:
            ws3.send(json.dumps({"type": "hello", "protocol": "machinima.bridge", "version": 2}))
            assert json.loads(ws3.recv(timeout=5))["code"] == "unsupported_version"
    finally:
        server.stop()

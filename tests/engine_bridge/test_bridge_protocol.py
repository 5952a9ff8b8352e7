"""The plugin protocol, sans-I/O: versioned hello, validation, errors as replies, limits."""

from __future__ import annotations

import json

import numpy as np
import pytest

from machinima import quat
from machinima.skeleton import BONE_INDEX, canonical_to_unity, rest_pose

from engine_bridge.protocol import (
    CameraSample, EngineEvent, PlaybackCommand, PluginConnection, Subscribe, camera_values, frame_performer,
)


def hello(conn, version=1):
    return conn.receive(json.dumps({"type": "hello", "protocol": "machinima.bridge", "version": version, "client": "UnityPlugin"}))


def replies(conn):
    return [json.loads(t) for t in conn.data_to_send()]


def test_hello_welcome_and_version():
    c = PluginConnection(server_info={"mode": "playback"})
    ev = hello(c)
    assert ev[0].client == "UnityPlugin"
    (w,) = replies(c)
    assert w["type"] == "welcome" and w["version"] == 1 and w["protocol"] == "machinima.bridge" and w["mode"] == "playback"
    c2 = PluginConnection()
    assert hello(c2, version=99) == []
    (err,) = replies(c2)
    assert err["code"] == "unsupported_version" and c2.should_close


def test_messages_before_hello_are_refused():
    c = PluginConnection()
    assert c.receive('{"type": "subscribe"}') == []
    assert replies(c)[0]["code"] == "hello_first"


@pytest.mark.parametrize(
    "raw, code",
    [
        (b"\xff\xfe", "bad_message"),
        ("not json", "bad_message"),
        ("[1, 2]", "bad_message"),
        ('{"type": 5}', "bad_message"),
        ('{"type": "teleport"}', "unknown_type"),
        ('{"type": "camera", "name": "c", "position": [0, 0], "rotation": [0, 0, 0, 1]}', "bad_message"),
        ('{"type": "camera", "name": "c", "position": [0, 0, 0], "rotation": [0, 0, 0, 0]}', "bad_message"),
        ('{"type": "camera", "name": "c", "position": [0, 0, "x"], "rotation": [0, 0, 0, 1]}', "bad_message"),
        ('{"type": "camera", "name": "c", "position": [0, 0, 0], "rotation": [0, 0, 0, 1], "focal_mm": -3}', "bad_message"),
        ('{"type": "event", "name": "", "payload": {}}', "bad_message"),
        ('{"type": "event", "name": "x", "payload": [1]}', "bad_message"),
        ('{"type": "subscribe", "bones": ["Tail"]}', "unknown_bone"),
        ('{"type": "subscribe", "space": "unreal"}', "bad_message"),
        ('{"type": "playback", "command": "rewind"}', "bad_message"),
        ('{"type": "playback", "command": "seek"}', "bad_message"),
        ('{"type": "playback", "command": "speed", "speed": 0}', "bad_message"),
        ("{" * 100000, "too_big"),
    ],
)
def test_garbage_gets_an_error_reply_and_nothing_else(raw, code):
    c = PluginConnection()
    hello(c)
    c.data_to_send()
    assert c.receive(raw) == []
    (err,) = replies(c)
    assert err["type"] == "error" and err["code"] == code and err["message"]
    assert not c.should_close


def test_too_many_errors_closes():
    c = PluginConnection(max_errors=3)
    for _ in range(3):
        c.receive("garbage")
    assert c.should_close


def test_valid_messages_become_events():
    c = PluginConnection()
    hello(c)
    (sub,) = c.receive('{"type": "subscribe", "performers": ["alice"], "space": "canonical", "bones": ["Hips", "Head"]}')
    assert isinstance(sub, Subscribe) and sub.performers == ["alice"] and sub.bones == ["Hips", "Head"]
    (pb,) = c.receive('{"type": "playback", "command": "seek", "timecode": "01:00:00:10"}')
    assert isinstance(pb, PlaybackCommand) and pb.timecode == "01:00:00:10"
    (ev,) = c.receive('{"type": "event", "name": "door_open", "payload": {"door": 2}, "id": 7}')
    assert isinstance(ev, EngineEvent) and ev.payload == {"door": 2} and ev.id == 7
    (cam,) = c.receive(json.dumps({"type": "camera", "name": "A", "position": [1, 2, 3], "rotation": [0, 0, 0, 1], "focal_mm": 50, "sensor_mm": [24, 18], "focus_m": 3}))
    assert isinstance(cam, CameraSample)
    assert c.receive('{"type": "ping", "id": 1}') == []
    assert replies(c)[-1] == {"type": "pong", "id": 1}


def test_camera_space_conversion():
    q = quat.from_axis_angle(np.array([0, 1.0, 0]), 0.3)
    v = camera_values({"position": [1.0, 2.0, 3.0], "rotation": list(q), "focal_mm": 50})
    # Unity in, canonical stored: x mirrored, rotation (x, -y, -z, w)
    assert v[:3] == pytest.approx([-1.0, 2.0, 3.0])
    assert v[3:7] == pytest.approx([q[0], -q[1], -q[2], q[3]], abs=1e-6)
    assert v[7:11] == pytest.approx([50, 36, 24, 0])
    c = camera_values({"position": [1.0, 2.0, 3.0], "rotation": list(q), "space": "canonical"})
    assert c[:3] == pytest.approx([1, 2, 3])


def test_frame_performer_unity_space():
    pose = rest_pose()
    pose[BONE_INDEX["Hips"], :3] = (0.5, 1.0, 0.0)
    entry = frame_performer(pose, avatar="A", space="unity", bones=["Hips"], blend={"A": 0.5})
    p, q = canonical_to_unity(pose[BONE_INDEX["Hips"], :3], pose[BONE_INDEX["Hips"], 3:7])
    assert entry["bones"]["Hips"] == pytest.approx(list(p) + list(q))
    assert entry["avatar"] == "A" and entry["blend"] == {"A": 0.5}

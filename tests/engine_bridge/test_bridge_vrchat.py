"""VRChat OSC trackers: documented addresses, three floats each, Unity space, calibration."""

from __future__ import annotations

import re

import numpy as np
import pytest

from machinima import osc, quat
from machinima.skeleton import BONE_INDEX, forward_kinematics, rest_pose

from engine_bridge.vrchat import TrackerEncoder, quat_to_unity_euler, unity_euler_to_quat

DOCUMENTED = re.compile(r"^/tracking/trackers/([1-8]|head)/(position|rotation)$")


def test_messages_match_the_documented_addresses_and_types():
    enc = TrackerEncoder({"1": "Hips", "2": "LeftFoot", "3": "RightFoot", "head": "Head"})
    msgs = [osc.decode_packet(m)[0] for m in enc.messages(rest_pose())]
    assert [m.address for m in msgs] == [
        "/tracking/trackers/1/position", "/tracking/trackers/1/rotation",
        "/tracking/trackers/2/position", "/tracking/trackers/2/rotation",
        "/tracking/trackers/3/position", "/tracking/trackers/3/rotation",
        "/tracking/trackers/head/position", "/tracking/trackers/head/rotation",
    ]
    for raw in enc.messages(rest_pose()):
        m = osc.decode_packet(raw)[0]
        assert DOCUMENTED.match(m.address)
        assert raw[len(osc._string(m.address)):].startswith(b",fff\x00")  # three 32-bit floats
        assert len(m.args) == 3 and all(isinstance(a, float) for a in m.args)


def test_known_pose_in_unity_space():
    pose = rest_pose()
    # Performer stands 1 m to canonical +X (their left) and 2 m forward (+Z), turned 90 degrees
    # to their left (about +Y, right-handed).
    pose[BONE_INDEX["Hips"], :3] = (1.0, 0.95, 2.0)
    pose[BONE_INDEX["Hips"], 3:7] = quat.from_axis_angle(np.array([0, 1.0, 0]), np.pi / 2)
    enc = TrackerEncoder({"1": "Hips", "head": "Head"})
    p, e = enc.tracker_values(pose)
    # Unity mirrors X: the position's x flips, the yaw flips sign (left-handed).
    assert p[0] == pytest.approx([-1.0, 0.95, 2.0], abs=1e-6)
    assert e[0] == pytest.approx([0.0, -90.0, 0.0], abs=1e-4)
    # The head sits above the hips in world space, whatever the yaw.
    wp, _ = forward_kinematics(pose)
    assert p[1][1] == pytest.approx(wp[BONE_INDEX["Head"], 1], abs=1e-6)


def test_unity_euler_roundtrip_and_convention():
    # Unity applies Z, then X, then Y: Quaternion.Euler(90, 0, 0) maps +Y to +Z (left-handed
    # rotation about X), i.e. the usual quaternion formula about +X by 90 degrees.
    q = unity_euler_to_quat(np.array([90.0, 0.0, 0.0]))
    assert quat.rotate(q, np.array([0, 1.0, 0])) == pytest.approx([0, 0, 1.0], abs=1e-9)
    rng = np.random.default_rng(1)
    e = rng.uniform([-80, -170, -170], [80, 170, 170], size=(50, 3))
    back = quat_to_unity_euler(unity_euler_to_quat(e))
    assert back == pytest.approx(e, abs=1e-6)


def test_calibration_and_offsets():
    pose = rest_pose()
    plain = TrackerEncoder({"1": "Hips"}).tracker_values(pose)
    cal = TrackerEncoder({"1": "Hips", "2": "LeftFoot"}, calibration={"scale": 2.0, "yaw_deg": 90.0, "position": [0.0, 0.0, 5.0]},
                         offsets={"2": {"position": [0.0, -0.1, 0.0], "rotation_deg": [0.0, 45.0, 0.0]}})
    p, e = cal.tracker_values(pose)
    hips = plain[0][0]
    # scale about the origin, yaw 90 about +Y, then +5 m on z
    expect = quat.rotate(quat.from_axis_angle(np.array([0, 1.0, 0]), np.pi / 2), hips * 2.0) + [0, 0, 5.0]
    assert p[0] == pytest.approx(expect, abs=1e-6)
    assert e[0] == pytest.approx([0, 90.0, 0], abs=1e-4)
    # tracker 2: its local offset moves it 0.1 m down in its own (yawed, upright) frame
    foot = TrackerEncoder({"1": "LeftFoot"}, calibration={"scale": 2.0, "yaw_deg": 90.0, "position": [0.0, 0.0, 5.0]}).tracker_values(pose)[0][0]
    assert p[1] == pytest.approx(foot + [0, -0.1, 0], abs=1e-6)
    assert e[1] == pytest.approx([0, 135.0, 0], abs=1e-4)

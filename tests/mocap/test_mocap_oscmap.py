"""Generic OSC profiles: shipped profiles round-trip a pose from their own space, user profiles
load, bad profiles name the field, bad packets are counted by reason."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from machinima import osc, quat, skeleton
from mocap import oscmap
from mocap.errors import ProfileError
from mocap.retarget import canonical_to_zup, fk
from mocap.synthetic import synthetic_poses


def _pose():
    return synthetic_poses(1.3, motion="walk", seed=5)[0]


def _to_space(space, p, r):
    if space == "unity":
        return skeleton.canonical_to_unity(p, r)
    if space == "unreal":
        pz, rz = canonical_to_zup(p, r)
        return pz * np.array([1, -1, 1]), rz * np.array([-1, 1, -1, 1])
    if space == "zup":
        return canonical_to_zup(p, r)
    return p, r


def _profile_packet(prof: oscmap.Profile, pose: np.ndarray, performer: str) -> bytes:
    """What a relay speaking this profile would send for ``pose``."""
    inv = {v: k for k, v in (prof.bones or {b: b for b in skeleton.BONES}).items()}
    if prof.transforms == "global":
        gp, gr = fk(pose)
    else:
        gp, gr = pose[:, :3].astype(np.float64), pose[:, 3:7].astype(np.float64)
    p, r = _to_space(prof.space, gp, gr)
    route = next(r_ for r_ in prof.routes if not r_.frame_end and "{performer}" in r_.address)
    msgs = []
    for i, bone in enumerate(skeleton.BONES):
        if bone not in inv:
            continue
        addr = route.address.replace("{performer}", performer).replace("{bone}", inv[bone])
        vals = {"px": p[i, 0] / prof.units, "py": p[i, 1] / prof.units, "pz": p[i, 2] / prof.units,
                "qx": r[i, 0], "qy": r[i, 1], "qz": r[i, 2], "qw": r[i, 3]}
        msgs.append(osc.encode_message(addr, [float(vals[c]) for c in route.args]))
    end = next(r_ for r_ in prof.routes if r_.frame_end and "{performer}" in r_.address)
    msgs.append(osc.encode_message(end.address.replace("{performer}", performer)))
    return osc.encode_bundle(msgs)


@pytest.mark.parametrize("name", ["plain", "rokoko", "moveai"])
def test_shipped_profiles_round_trip(name):
    prof = oscmap.load_profile(name)
    pose = _pose()
    src = oscmap.OSCMapSource("osc", profile=prof)
    frames = src.feed(_profile_packet(prof, pose, "ana"), ("127.0.0.1", 5000), 1)
    assert len(frames) == 1 and frames[0].performer == "ana", src.rejects
    mapped = [skeleton.BONE_INDEX[b] for b in (prof.bones.values() if prof.bones else skeleton.BONES)]
    gp, gr = fk(pose)
    gq, gs = fk(frames[0].pose)
    np.testing.assert_allclose(gq[mapped], gp[mapped], atol=2e-4)
    np.testing.assert_allclose(np.abs(np.sum(gr[mapped] * gs[mapped], axis=-1)), 1.0, atol=1e-4)
    assert not src.rejects


def test_single_messages_frame_on_repeat_and_marker():
    src = oscmap.OSCMapSource("osc", profile="plain")
    m = lambda b, y: osc.encode_message(f"/bone/{b}", [0.0, y, 0.0, 0.0, 0.0, 0.0, 1.0])  # noqa: E731
    assert src.feed(m("Hips", 1.0), ("h", 1), 1) == []
    assert src.feed(m("Head", 0.1), ("h", 1), 2) == []
    out = src.feed(m("Hips", 1.1), ("h", 1), 3)  # Hips again: the previous frame is complete
    assert len(out) == 1 and out[0].pose[0, 1] == pytest.approx(1.0)
    out = src.feed(osc.encode_message("/frame"), ("h", 1), 4)
    assert len(out) == 1 and out[0].pose[0, 1] == pytest.approx(1.1)


def test_user_profile_euler_and_rest(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('''
schema = "machinima.oscmap"
version = 1
name = "mine"
units = "cm"
rotation = "euler_deg_XYZ"
[[route]]
address = "/suit/joint"
args = ["performer", "bone", "rx", "ry", "rz", "px", "py", "pz"]
[bones]
upperarm_l = "LeftUpperArm"
[rest]
LeftUpperArm = [0, 0, 0.3826834, 0.9238795]
''')
    src = oscmap.OSCMapSource("osc", profile=path)
    pkt = osc.encode_bundle([osc.encode_message("/suit/joint", ["bo", "upperarm_l", 0.0, 0.0, 45.0, 12.0, 0.0, 0.0])])
    (f,) = src.feed(pkt, ("h", 1), 1)
    assert f.performer == "bo"
    i = skeleton.BONE_INDEX["LeftUpperArm"]
    np.testing.assert_allclose(f.pose[i, :3], [0.12, 0.0, 0.0], atol=1e-6)
    # the rest rotation (45 degrees about Z) is removed by calibration: identity at rest
    np.testing.assert_allclose(np.abs(f.pose[i, 6]), 1.0, atol=1e-6)


@pytest.mark.parametrize(
    "text, field",
    [
        ('version = 1\n[[route]]\naddress="/a/{bone}"', "schema"),
        ('schema="machinima.oscmap"\nversion=1\nunits="ft"\n[[route]]\naddress="/a/{bone}"', "units"),
        ('schema="machinima.oscmap"\nversion=1\nspace="left"\n[[route]]\naddress="/a/{bone}"', "space"),
        ('schema="machinima.oscmap"\nversion=1', "route"),
        ('schema="machinima.oscmap"\nversion=1\n[[route]]\naddress="a/{bone}"', "address"),
        ('schema="machinima.oscmap"\nversion=1\n[[route]]\naddress="/a/{bone}"\nargs=["px","wat"]', "args"),
        ('schema="machinima.oscmap"\nversion=1\n[[route]]\naddress="/a"\nargs=["px"]', "bone"),
        ('schema="machinima.oscmap"\nversion=1\n[[route]]\naddress="/a/{bone}"\n[bones]\nx="Tail"', "bones.x"),
        ('schema="machinima.oscmap"\nversion=2\n[[route]]\naddress="/a/{bone}"', "version"),
        ("schema = [", "TOML"),
    ],
)
def test_bad_profiles_name_the_field(tmp_path, text, field):
    p = tmp_path / "bad.toml"
    p.write_text(text)
    with pytest.raises(ProfileError) as ei:
        oscmap.load_profile(p)
    assert field in str(ei.value)


def test_unknown_shipped_profile():
    with pytest.raises(ProfileError, match="shipped"):
        oscmap.load_profile("nosuch")


@pytest.mark.parametrize(
    "msg, reason",
    [
        (("/bone/Tail", [0.0] * 7), "unknown_bone"),
        (("/bone/Head", [0.0] * 3), "bad_args"),
        (("/bone/Head", ["x"] + [0.0] * 6), "bad_args"),
        (("/bone/Head", [float("nan")] + [0.0] * 6), "nonfinite"),
        (("/nothing/here", [1.0]), "unmatched"),
    ],
)
def test_bad_messages_counted_neighbours_kept(msg, reason):
    src = oscmap.OSCMapSource("osc", profile="plain")
    good = osc.encode_message("/bone/Hips", [0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0])
    (f,) = src.feed(osc.encode_bundle([good, osc.encode_message(*msg)]), ("h", 1), 1)
    assert f.pose[0, 1] == pytest.approx(1.0)
    assert src.rejects[reason] == 1


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_counted_never_raise(data):
    src = oscmap.OSCMapSource("osc", profile="plain")
    for f in src.feed(data, ("h", 1), 1) + src.feed(b"#bundle\x00" + data, ("h", 1), 2):
        assert np.isfinite(f.pose).all()

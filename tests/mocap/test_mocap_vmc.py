"""machinima.vmc: encoding, decoding, fast path == general path, rejections by reason."""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest

from machinima import osc, quat, skeleton, vmc


def _pose(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pose = skeleton.rest_pose()
    pose[:, 3:] = quat.normalize(rng.normal(size=(55, 4))).astype(np.float32)
    pose[0, :3] = [0.3, 0.9, -1.2]
    return pose


@pytest.mark.parametrize("root", ["origin", "hips"])
def test_frame_round_trip_fast_and_general(root):
    pose = _pose()
    data = vmc.encode_frame(pose, blendshapes={"A": 0.25, "Blink_L": 1.0}, time_s=3.5, root=root, root_name="ana")
    dec = vmc.VMCDecoder()
    first = dec.decode(data)
    second = dec.decode(data)
    assert not first.fast and second.fast
    for pkt in (first, second):
        out = pkt.apply_to(skeleton.rest_pose())
        np.testing.assert_allclose(out, pose, atol=1e-6)
        assert pkt.time_s == 3.5
        assert pkt.blendshapes == {"A": 0.25, "Blink_L": 1.0}
        assert pkt.blend_apply and pkt.ok == (1, 3, 0, 1)
        assert pkt.rejected == {}
        assert pkt.root_name == "ana"
    assert dec.applied_blendshapes == {"A": 0.25, "Blink_L": 1.0}


def test_encoding_is_unity_left_handed():
    pose = skeleton.rest_pose()
    pose[skeleton.BONE_INDEX["LeftUpperArm"], 3:] = quat.from_axis_angle(np.array([0, 0, 1.0]), 0.5)
    msgs = {m.args[0]: m.args[1:] for m in osc.decode_packet(vmc.encode_frame(pose)) if m.address == vmc.ADDR_BONE}
    p, q = skeleton.canonical_to_unity(pose[skeleton.BONE_INDEX["LeftUpperArm"], :3], pose[skeleton.BONE_INDEX["LeftUpperArm"], 3:])
    np.testing.assert_allclose(msgs["LeftUpperArm"], np.concatenate([p, q]), atol=1e-7)
    assert msgs["LeftUpperArm"][0] == pytest.approx(-0.12)  # X mirrored


def test_subset_of_bones_and_python_osc_reads_it():
    from pythonosc.osc_packet import OscPacket

    pose = _pose(1)
    data = vmc.encode_frame(pose, bones=["Hips", "Head", 7])
    got = [(m.message.address, m.message.params[0]) for m in OscPacket(data).messages if m.message.address == vmc.ADDR_BONE]
    assert got == [(vmc.ADDR_BONE, "Hips"), (vmc.ADDR_BONE, "Head"), (vmc.ADDR_BONE, "Spine")]
    pkt = vmc.decode_packet(data)
    assert [skeleton.BONES[i] for i in pkt.bone_index] == ["Hips", "Head", "Spine"]


def test_encode_rejects_bad_input():
    with pytest.raises(vmc.VMCError):
        vmc.encode_frame(np.zeros((10, 7)))
    bad = skeleton.rest_pose()
    bad[3, 0] = np.nan
    with pytest.raises(vmc.VMCError) as ei:
        vmc.encode_frame(bad)
    assert ei.value.reason == "nonfinite"
    with pytest.raises(vmc.VMCError):
        vmc.encode_frame(skeleton.rest_pose(), bones=["Tail"])
    with pytest.raises(vmc.VMCError):
        vmc.encode_blendshapes({"A": math.inf})


def test_blendshapes_only_and_apply_state():
    dec = vmc.VMCDecoder()
    pkt = dec.decode(vmc.encode_blendshapes({"A": 0.5}, apply=False))
    assert pkt.blendshapes == {"A": 0.5} and not pkt.blend_apply and dec.applied_blendshapes == {}
    dec.decode(vmc.encode_blendshapes({"E": 0.125}))
    assert dec.applied_blendshapes == {"A": 0.5, "E": 0.125}


def test_single_messages():
    dec = vmc.VMCDecoder()
    m = osc.encode_message(vmc.ADDR_BONE, ("Head", 0.0, 0.1, 0.0, 0.0, 0.0, 0.0, 1.0))
    slow = vmc.VMCDecoder(fast=False)
    for d in (dec, slow):  # the single-message path (no learning needed) and the general path
        pkt = d.decode(m)
        assert list(pkt.bones) == ["Head"] and pkt.keys == {skeleton.BONE_INDEX["Head"]}
        np.testing.assert_allclose(pkt.bones["Head"], [0, 0.1, 0, 0, 0, 0, 1], atol=1e-7)
    assert dec.fast_hits == 1 and slow.fast_hits == 0
    assert dec.decode(osc.encode_message(vmc.ADDR_TIME, (2.0,))).time_s == 2.0


def _bundle(*msgs):
    return osc.encode_bundle([osc.encode_message(a, args) for a, args in msgs])


GOOD = (vmc.ADDR_BONE, ("Head", 0.0, 0.1, 0.0, 0.0, 0.0, 0.0, 1.0))


@pytest.mark.parametrize(
    "bad, reason",
    [
        ((vmc.ADDR_BONE, ("Tail", 0.0, 0.1, 0.0, 0.0, 0.0, 0.0, 1.0)), "unknown_bone"),
        ((vmc.ADDR_BONE, ("Neck", 0.0, math.nan, 0.0, 0.0, 0.0, 0.0, 1.0)), "nonfinite"),
        ((vmc.ADDR_BONE, ("Neck", 0.0, math.inf, 0.0, 0.0, 0.0, 0.0, 1.0)), "nonfinite"),
        ((vmc.ADDR_BONE, ("Neck", 1, 2, 3)), "bad_args"),
        ((vmc.ADDR_BONE, ("Neck", "x", 0.0, 0.0, 0.0, 0.0, 0.0, 1.0)), "bad_args"),
        ((vmc.ADDR_ROOT, ("root", 1.0)), "bad_args"),
        ((vmc.ADDR_TIME, ("now",)), "bad_args"),
        (("/something/else", (1.0,)), "ignored"),
    ],
)
def test_bad_message_counted_and_neighbours_kept(bad, reason):
    data = _bundle(GOOD, bad, (vmc.ADDR_BONE, ("Neck", 0.0, 0.2, 0.0, 0.0, 0.0, 0.0, 1.0)) if bad[1][0] != "Neck" else GOOD)
    dec = vmc.VMCDecoder()
    for _ in range(2):  # general path, then the fast path on the same layout
        pkt = dec.decode(data)
        assert pkt.rejected.get(reason) == 1
        assert "Head" in pkt.bones
    assert dec.rejects[reason] == 2


def test_wrong_type_tag_element_does_not_lose_neighbours():
    good = osc.encode_message(*GOOD)
    broken = osc.encode_message(vmc.ADDR_BONE, ("Neck", 1.0)).replace(b",sf", b",sX")
    data = osc.encode_bundle([good, broken, good])
    pkt = vmc.VMCDecoder().decode(data)
    assert pkt.rejected == {"bad_message": 1} and pkt.bone_index.tolist() == [10, 10]


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"", "empty"),
        (b"\x00\x01\x02", "not_osc"),
        (b"abcd", "not_osc"),
        (b"#bundle\x00", "truncated"),
        (vmc.encode_frame(skeleton.rest_pose())[:-8] + b"\x00" * 4, "truncated"),
        (b"/x" + b"\x00" * 70000, "too_large"),
    ],
)
def test_whole_packet_rejections(data, reason):
    dec = vmc.VMCDecoder()
    assert dec.feed(data) is None or reason == "truncated"
    if reason != "truncated":
        assert dec.rejects[reason] == 1
        with pytest.raises(vmc.VMCError) as ei:
            dec.decode(data)
        assert ei.value.reason == reason


def test_truncated_bundle_keeps_complete_elements():
    data = vmc.encode_frame(skeleton.rest_pose())
    cut = data[: len(data) - 12]
    pkt = vmc.VMCDecoder().decode(cut)
    assert pkt.rejected == {"truncated": 1}
    assert pkt.bone_index.shape[0] == 54  # the last bone was cut


def test_absurd_counts():
    one = osc.encode_message(*GOOD)
    with pytest.raises(vmc.VMCError) as ei:
        vmc.VMCDecoder(max_bones=100).decode(osc.encode_bundle([one] * 101))
    assert ei.value.reason == "too_many_bones"
    tiny = osc.encode_message("/a")
    with pytest.raises(vmc.VMCError) as ei:
        vmc.VMCDecoder().decode(osc.encode_bundle([tiny] * 2000))
    assert ei.value.reason == "too_many_elements"
    # an element size that claims more than the packet holds
    bogus = b"#bundle\x00" + b"\x00" * 7 + b"\x01" + struct.pack(">i", 2**30) + one
    assert vmc.VMCDecoder().feed(bogus) is None


def test_template_cache_is_bounded():
    dec = vmc.VMCDecoder(max_templates=3)
    for k in range(1, 8):
        dec.decode(vmc.encode_frame(skeleton.rest_pose(), bones=range(k)))
    assert dec._n_templates == 3
    assert sum(len(v) for v in dec._templates.values()) == 3

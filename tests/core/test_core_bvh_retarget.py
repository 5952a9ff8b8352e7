"""Constructed BVH files (every rotation order, units, sparse spines, a shoulder that is the upper
arm, gimbal lock, Mixamo names, unmapped joints): positions against Blender's own importer."""

from __future__ import annotations

import numpy as np
import pytest
from bvh_helpers import (HUMANIK_CM, Joint, assert_matches_blender, blender_truth, bvh_text, file_order, random_motion, renamed,
                         three_frames, without)

from machinima import quat
from machinima.bvh import parse_bvh
from machinima.bvhimport import import_bvh, load_bvh_performer, retarget_motion, snap_fps
from machinima.errors import BVHError
from machinima.export import export_take_bvh
from machinima.skeleton import BONE_INDEX, BONES, forward_kinematics

ORDERS = ("XYZ", "XZY", "YXZ", "YZX", "ZXY", "ZYX")


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("order", ORDERS)
def test_each_rotation_order_matches_blender(order, tmp_path):
    pytest.importorskip("bpy")
    path = _write(tmp_path, f"{order}.bvh", bvh_text(HUMANIK_CM, random_motion(HUMANIK_CM, seed=ORDERS.index(order)), order=order))
    result = load_bvh_performer(path)
    assert result.resolved.spec.name == "humanik" and len(result.resolved.mapping) == len(HUMANIK_CM)
    assert all(result.motion.rotation_order(j) == order for j in range(len(HUMANIK_CM)))
    assert_matches_blender(result, path)


@pytest.mark.parametrize("unit, name", [(1.0, "cm"), (0.01, "m"), (10.0, "mm"), (1 / 2.54, "in")])
def test_units_chosen_from_the_rest_pose_height(unit, name, tmp_path):
    motion = random_motion(HUMANIK_CM)
    cm = load_bvh_performer(_write(tmp_path, "cm.bvh", bvh_text(HUMANIK_CM, motion)))
    path = _write(tmp_path, f"{name}.bvh", bvh_text(HUMANIK_CM, motion, unit=unit))
    other = load_bvh_performer(path)
    assert (other.units, other.units_auto) == (name, True)
    assert any(line.startswith(f"units: {name} (auto: rest pose") for line in other.report()[0])
    assert np.allclose(other.poses, cm.poses, atol=2e-6)  # the same figure in metres, whatever the file's unit
    height = forward_kinematics(cm.poses[0].astype(np.float64))[0][:, 1].ptp()
    assert 1.0 < height < 2.0
    given = load_bvh_performer(path, units="cm")  # a wrong --units is obeyed, and said to be odd
    assert given.units == "cm" and (name == "cm" or any("not a person's height" in w for w in given.report()[1]))
    if name == "m":
        pytest.importorskip("bpy")
        assert_matches_blender(other, path)


@pytest.mark.parametrize("unit", [1.0, 0.01])
def test_missing_spine_and_neck_bones_keep_the_head_where_the_file_has_it(unit, tmp_path):
    """Hips -> Spine -> Head with the shoulders on Spine (no Spine1/Spine2/Neck): the canonical
    Chest, UpperChest and Neck are placed between, in the file's units, and the Head lands where
    Blender puts it (it was 36 file units off when the in-between bones kept canonical metres)."""
    pytest.importorskip("bpy")
    sparse = without(HUMANIK_CM, "Spine1", "Spine2", "Neck")
    path = _write(tmp_path, "sparse.bvh", bvh_text(sparse, random_motion(sparse, seed=3), unit=unit))
    result = load_bvh_performer(path)
    assert {"Chest", "UpperChest", "Neck"} <= set(result.plan.inferred)
    assert_matches_blender(result, path)
    rest = result.plan.rest_positions
    spine, head = rest[BONE_INDEX["Spine"]], rest[BONE_INDEX["Head"]]
    for b in ("Chest", "UpperChest", "Neck"):  # on the line from Spine to Head, in order
        p = rest[BONE_INDEX[b]]
        f = np.dot(p - spine, head - spine) / np.dot(head - spine, head - spine)
        assert 0 < f < 1 and np.allclose(spine + f * (head - spine), p, atol=1e-9)
    # a rigid chain: the bones the file lacks turn with Spine (identity local rotation)
    for b in ("Chest", "UpperChest", "Neck"):
        q = result.poses[:, BONE_INDEX[b], 3:]
        assert np.abs(np.abs(q[:, 3]) - 1).max() < 1e-5


def test_a_shoulder_joint_that_is_the_upper_arm_drives_the_upper_arm(tmp_path):
    pytest.importorskip("bpy")
    # no clavicles: the joint named LeftShoulder is the upper arm (its child is the forearm)
    arms = renamed(without(HUMANIK_CM, "LeftShoulder", "RightShoulder"), {"LeftArm": "LeftShoulder", "RightArm": "RightShoulder"})
    path = _write(tmp_path, "arms.bvh", bvh_text(arms, random_motion(arms, seed=4)))
    result = load_bvh_performer(path)
    names = result.motion.names
    for side in ("Left", "Right"):
        assert names[result.resolved.mapping[BONE_INDEX[f"{side}UpperArm"]]] == f"{side}Shoulder"
        assert BONE_INDEX[f"{side}Shoulder"] not in result.resolved.mapping
    assert "bone map: joint LeftShoulder drives LeftUpperArm, not LeftShoulder: its child is the next bone down the limb" in result.report()[0]
    assert_matches_blender(result, path)
    # with clavicles the same names map one to one
    plain = load_bvh_performer(_write(tmp_path, "plain.bvh", bvh_text(HUMANIK_CM, random_motion(HUMANIK_CM))))
    assert plain.motion.names[plain.resolved.mapping[BONE_INDEX["LeftShoulder"]]] == "LeftShoulder" and not plain.resolved.moved


def _gimbal_motion(joints, order: str, n: int = 9) -> np.ndarray:
    """Every joint at exactly +90 or -90 degrees about the middle axis in most frames."""
    m = random_motion(joints, n=n, seed=5, spread=170.0)
    for k in range(len(joints)):
        m[:, 3 + 3 * k + 1] = [90.0, -90.0, 90.0, 45.0, -90.0, 90.0, -90.0, 10.0, 90.0][:n]
    return m


@pytest.mark.parametrize("order", ["ZXY", "XYZ"])
def test_gimbal_lock_frames_export_to_the_same_positions(order, tmp_path):
    """Import, export (angles at exactly +-90 degrees about the middle axis) and Blender's
    re-import of the export put every joint where Blender puts the original's."""
    pytest.importorskip("bpy")
    path = _write(tmp_path, "lock.bvh", bvh_text(HUMANIK_CM, _gimbal_motion(HUMANIK_CM, order), order=order))
    result = import_bvh(path, tmp_path / "takes", production="p", scene="s", shot="g", performer="ada")
    (out,) = export_take_bvh(tmp_path / "takes" / result.take_id, tmp_path / "out.bvh", "ada", order=order)
    frames = list(range(result.motion.frames))
    truth, _ = blender_truth(path, frames)
    back, _ = blender_truth(out, frames)
    for f in frames:
        for c, j in result.resolved.mapping.items():
            assert np.abs(back[f][BONES[c]] - truth[f][result.motion.names[j]]).max() < 1e-4, (f, BONES[c])
    assert "CHANNELS 6" in out.read_text() and out.read_text().count("CHANNELS 6") == 1  # rigid: only Hips moves


@pytest.mark.parametrize("prefix", ["mixamorig:", "mixamorig1:"])
def test_mixamo_names_choose_the_mixamo_map(prefix, tmp_path):
    pytest.importorskip("bpy")
    rig = renamed(HUMANIK_CM, prefix=prefix)
    path = _write(tmp_path, "mixamo.bvh", bvh_text(rig, random_motion(rig, seed=6)))
    result = load_bvh_performer(path)
    assert result.resolved.spec.name == "mixamo" and result.map_auto
    assert result.report()[0][0] == f"bone map: mixamo (chosen automatically: {len(rig)} of {len(rig)} joints matched)"
    assert_matches_blender(result, path)
    assert load_bvh_performer(path, "humanik").resolved.spec.name == "humanik"  # a given map is used as given


def _rokoko() -> tuple:
    """Rokoko Studio's Newton skeleton as its BVH export names it: four spine joints, Thigh/Shin/
    Toe legs, fingers numbered 1 (thumb, from its metacarpal) to 5 with Proximal/Medial/Distal."""
    names = {"Spine": "Spine1", "Spine1": "Spine2", "Spine2": "Spine4"}
    for side in ("Left", "Right"):
        names |= {f"{side}UpLeg": f"{side}Thigh", f"{side}Leg": f"{side}Shin", f"{side}ToeBase": f"{side}Toe"}
    joints = list(renamed(HUMANIK_CM, names))
    s4 = next(i for i, j in enumerate(joints) if j.name == "Spine4")
    joints[s4] = Joint("Spine4", "Spine3", (0.0, 6.0, -0.5))
    joints.insert(s4, Joint("Spine3", "Spine2", (0.0, 6.0, 0.0)))
    for side, x in (("Left", 1.0), ("Right", -1.0)):
        joints += [Joint(f"{side}Finger1Metacarpal", f"{side}Hand", (2.0 * x, 0.0, 2.0)),
                   Joint(f"{side}Finger1Proximal", f"{side}Finger1Metacarpal", (2.5 * x, 0.0, 1.5)),
                   Joint(f"{side}Finger1Distal", f"{side}Finger1Proximal", (2.0 * x, 0.0, 1.0)),
                   Joint(f"{side}Finger2Proximal", f"{side}Hand", (8.0 * x, 0.0, 1.5)),
                   Joint(f"{side}Finger2Medial", f"{side}Finger2Proximal", (3.5 * x, 0.0, 0.0)),
                   Joint(f"{side}Finger2Distal", f"{side}Finger2Medial", (2.5 * x, 0.0, 0.0))]
    return tuple(joints)


def test_rokoko_names_choose_the_rokoko_map(tmp_path):
    pytest.importorskip("bpy")
    rig = _rokoko()
    path = _write(tmp_path, "rokoko.bvh", bvh_text(rig, random_motion(rig, seed=8, spread=40.0)))
    result = load_bvh_performer(path)
    assert result.resolved.spec.name == "rokoko" and result.map_auto, result.report()
    names = result.motion.names
    got = {BONES[c]: names[j] for c, j in result.resolved.mapping.items()}
    assert (got["Spine"], got["Chest"], got["UpperChest"]) == ("Spine1", "Spine2", "Spine4")
    assert (got["LeftUpperLeg"], got["LeftLowerLeg"], got["LeftToes"]) == ("LeftThigh", "LeftShin", "LeftToe")
    assert (got["RightThumbProximal"], got["RightIndexIntermediate"]) == ("RightFinger1Metacarpal", "RightFinger2Medial")
    assert result.unmapped == ["Spine3"]  # followed between Spine2 and Spine4, and named in the warning
    assert any("Spine3" in w for w in result.report()[1])
    assert_matches_blender(result, path)


def test_every_unmapped_joint_is_named_and_a_user_map_maps_them(tmp_path):
    odd = {"LeftUpLeg": "L_thigh", "LeftLeg": "L_calf", "LeftFoot": "L_foot", "RightUpLeg": "R_thigh", "RightLeg": "R_calf",
           "RightFoot": "R_foot", "LeftToeBase": "L_ball", "RightToeBase": "R_ball"}
    rig = renamed(HUMANIK_CM, odd)
    path = _write(tmp_path, "odd.bvh", bvh_text(rig, random_motion(rig, seed=7)))
    result = load_bvh_performer(path)
    (warning,) = [w for w in result.report()[1] if "not mapped" in w]
    assert warning.startswith("8 joint(s) not mapped") and all(n in warning for n in odd.values())
    user = tmp_path / "studio.toml"
    user.write_text('schema = "machinima.bonemap"\nversion = 1\nname = "studio"\nextends = "humanik"\n[bones]\n'
                    'LeftUpperLeg = "L_thigh"\nLeftLowerLeg = "L_calf"\nLeftFoot = "L_foot"\nLeftToes = "L_ball"\n'
                    'RightUpperLeg = "R_thigh"\nRightLowerLeg = "R_calf"\nRightFoot = "R_foot"\nRightToes = "R_ball"\n')
    mapped = load_bvh_performer(path, str(user))
    assert mapped.resolved.spec.name == "studio" and not mapped.unmapped and not mapped.map_auto
    # the legs move (they stayed in the T-pose when their joints were dropped)
    knee = mapped.poses[:, BONE_INDEX["LeftLowerLeg"], 3:]
    assert np.abs(np.abs(knee[:, 3]) - 1).max() > 0.01
    assert_matches_blender(mapped, path)


def test_bad_bone_maps_and_units_say_what_to_do(tmp_path):
    path = _write(tmp_path, "a.bvh", bvh_text(HUMANIK_CM, random_motion(HUMANIK_CM, n=2)))
    with pytest.raises(Exception, match="no bone map 'mixamoo'.*shipped: biovision, cmu, humanik, mixamo, rokoko"):
        load_bvh_performer(path, "mixamoo")
    with pytest.raises(BVHError, match="unknown units 'ft'"):
        load_bvh_performer(path, units="ft")
    cases = {
        'schema = "machinima.bonemap"\nversion = 1\n[bones]\nHipz = "Hips"\n': "bones.Hipz: 'Hipz' is not a canonical bone",
        'schema = "machinima.bonemap"\nversion = 1\n[bones]\nHips = "a"\nSpine = "A"\n': "joint 'a' is listed for both Hips and Spine",
        'schema = "machinima.bonemap"\nversion = 2\n[bones]\nHips = "a"\n': "field 'version' must be 1",
        'schema = "machinima.bonemap"\nversion = 1\n[bones]\nHips = 3\n': "bones.Hips must be a joint name",
        'schema = "machinima.bonemap"\nversion = 1\nbones = 1\n': "a \\[bones\\] table",
        'version = 1\n[bones]\nHips = "a"\n': "field 'schema'",
        'schema = "machinima.bonemap"\nversion = 1\nbone = {}\n': "unknown field 'bone'",
        "[bones\n": "not valid TOML",
    }
    for k, (text, match) in enumerate(cases.items()):
        bad = tmp_path / f"bad{k}.toml"
        bad.write_text(text)
        with pytest.raises(Exception, match=f"bad{k}.toml: {match}"):
            load_bvh_performer(path, str(bad))
    loop = tmp_path / "loop.toml"
    loop.write_text(f'schema = "machinima.bonemap"\nversion = 1\nextends = "{loop}"\n')
    with pytest.raises(Exception, match="makes a loop"):
        load_bvh_performer(path, str(loop))


def test_frame_rate_snaps_to_the_standard_rate_within_a_tenth_of_a_percent(tmp_path):
    from fractions import Fraction

    assert snap_fps(0.008333) == (Fraction(120), True)  # 120.005 fps
    assert snap_fps(0.0333667) == (Fraction(30000, 1001), True)  # 29.97, not 30
    assert snap_fps(1 / 30) == (Fraction(30), True)
    assert snap_fps(0.0416667) == (Fraction(24), True)
    assert snap_fps(0.011) == (Fraction("90.909"), False)  # 1 % from 90: kept as it is
    path = _write(tmp_path, "a.bvh", bvh_text(HUMANIK_CM, random_motion(HUMANIK_CM, n=3), frame_time=0.008333))
    result = import_bvh(path, tmp_path / "takes", production="p", scene="s", shot="f", performer="ada")
    assert "fps: 120 (Frame Time 0.008333 = 120.0048 fps, snapped" in "\n".join(result.report()[0])
    from machinima.take import Take

    assert Take.open(tmp_path / "takes" / result.take_id).manifest.fps == "120"


def test_quaternion_of_the_canonical_bones_is_the_files_rotation():
    """Mapped bones keep the joint's world rotation (the file's rest pose is the T-pose)."""
    motion = parse_bvh(bvh_text(HUMANIK_CM, random_motion(HUMANIK_CM, n=4)))
    result = retarget_motion(motion)
    _, grot = motion.world(0.01)
    _, wrot = forward_kinematics(result.poses.astype(np.float64))
    names = file_order(HUMANIK_CM)
    for c, j in result.resolved.mapping.items():
        d = np.abs(np.sum(wrot[:, c] * grot[:, names.index(motion.names[j])], axis=-1))
        assert np.allclose(d, 1, atol=1e-6)
    assert np.allclose(quat.rotate(wrot[:, BONE_INDEX["Hips"]], [0, 0, 1.0]), quat.rotate(grot[:, 0], [0, 0, 1.0]), atol=1e-6)


def test_unmapped_joints_between_mapped_ones_are_followed_and_aimed_at(tmp_path):
    """Spine1/Spine2 renamed out of every map: the canonical Chest and UpperChest have no joint,
    the file's two joints bend between Spine and Neck. Neck still lands where Blender puts it,
    and the in-between canonical bones turn so their chain points at it."""
    rig = renamed(HUMANIK_CM, {"Spine1": "S_a", "Spine2": "S_b"})
    path = _write(tmp_path, "bent.bvh", bvh_text(rig, random_motion(rig, seed=8, spread=40.0)))
    result = load_bvh_performer(path)
    assert {"Chest", "UpperChest"} <= set(result.plan.inferred) and {"S_a", "S_b"} <= set(result.unmapped)
    assert_matches_blender(result, path)
    pos, rot = forward_kinematics(result.poses.astype(np.float64))
    chest, neck = BONE_INDEX["Chest"], BONE_INDEX["Neck"]
    rest = result.plan.rest_positions
    aimed = quat.rotate(rot[:, chest], rest[neck] - rest[chest])
    to_neck = pos[:, neck] - pos[:, chest]
    cos = np.sum(aimed * to_neck, -1) / np.linalg.norm(aimed, axis=-1) / np.linalg.norm(to_neck, axis=-1)
    assert np.all(cos > 1 - 1e-9)


def test_a_root_that_no_map_names_drives_hips(tmp_path):
    rig = renamed(HUMANIK_CM, {"Hips": "Root_J"})
    path = _write(tmp_path, "root.bvh", bvh_text(rig, random_motion(rig, seed=9)))
    result = load_bvh_performer(path)
    assert result.motion.names[result.resolved.mapping[BONE_INDEX["Hips"]]] == "Root_J"
    assert "no joint named for Hips: the root joint 'Root_J' drives it" in result.report()[1]
    assert_matches_blender(result, path)


def test_source_record_versions(tmp_path):
    import json

    from machinima.bvhimport import performer_rest_offsets, read_source_record
    from machinima.errors import TakeFormatError

    path = _write(tmp_path, "a.bvh", bvh_text(HUMANIK_CM, random_motion(HUMANIK_CM, n=3)))
    result = import_bvh(path, tmp_path / "takes", production="p", scene="s", shot="r", performer="Ada Lovelace")
    take = tmp_path / "takes" / result.take_id
    record = take / "source" / "Ada-Lovelace.json"
    offsets = performer_rest_offsets(take, "Ada Lovelace")
    assert offsets.shape == (len(BONES), 3) and np.allclose(offsets[BONE_INDEX["LeftLowerLeg"]], [0, -0.42, 0])
    doc = json.loads(record.read_text())
    doc["version"] = 2
    record.write_text(json.dumps(doc))
    with pytest.raises(TakeFormatError, match="source-record version 2 is newer"):
        read_source_record(take, "Ada Lovelace")
    record.unlink()
    with pytest.raises(TakeFormatError, match="the source record source/Ada-Lovelace.json is missing"):
        read_source_record(take, "Ada Lovelace")

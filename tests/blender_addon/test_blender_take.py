"""Importing takes in real bpy: bone rotations against the take, engine cameras, markers, retargeting."""

from __future__ import annotations

import numpy as np
import pytest
from blender_helpers import make_take, random_poses

from machinima import quat, skeleton
from blender_addon.errors import TakeImportError

bpy = pytest.importorskip("bpy")


def _angle(a, b):
    return 2 * np.degrees(np.arccos(np.clip(abs(np.sum(a * b, axis=-1)), 0, 1)))


def test_import_take_matches_bone_rotations(scene, tmp_path):
    from blender_addon.takeimport import canonical_bone_world, import_take

    poses = random_poses(40, seed=1)
    take = make_take(tmp_path, {"ana": poses, "ben": random_poses(30, seed=2)}, fps=30, markers={"action": 12, "cut": 35})
    report = import_take(take, scene)
    assert set(report.armatures) == {"ana", "ben"}
    assert report.frame_range == (0, 39) and (scene.frame_start, scene.frame_end) == (0, 39)
    assert scene.render.fps == 30 and scene.render.fps_base == pytest.approx(1.0)
    assert sorted((m.name, m.frame) for m in scene.timeline_markers) == [("action", 12), ("cut", 35)]
    ob = bpy.data.objects[report.armatures["ana"]]
    assert len(ob.data.bones) == 55
    pos, rot = skeleton.forward_kinematics(poses)
    for frame in (0, 13, 39):
        scene.frame_set(frame)
        for bone in ("Hips", "Spine", "Head", "LeftLowerArm", "RightHand", "LeftFoot", "RightIndexDistal"):
            i = skeleton.BONE_INDEX[bone]
            p, q = canonical_bone_world(ob, bone)
            assert _angle(q, rot[frame, i]) < 0.1, (frame, bone)
            assert np.abs(p - pos[frame, i]).max() < 1e-4, (frame, bone)
    # one key per frame on each rotation channel
    fcurves = ob.animation_data.action.layers[0].strips[0].channelbag(ob.animation_data.action_slot).fcurves
    rot_curves = [fc for fc in fcurves if fc.data_path.endswith("rotation_quaternion")]
    assert len(rot_curves) == 55 * 4 and all(len(fc.keyframe_points) == 40 for fc in rot_curves)
    # a re-import replaces, never duplicates
    import_take(take, scene)
    assert len([o for o in bpy.data.objects if o.type == "ARMATURE"]) == 2
    assert len(scene.timeline_markers) == 2


def test_engine_camera_is_animated(scene, tmp_path):
    """Camera streams hold the engine camera's rotation (looking along local +Z, as the bridge
    stores Unity cameras); in Blender and in camera.json the camera must look at the target."""
    from blender_addon.render import scene_camera_frame
    from blender_addon.takeimport import import_take
    from machinima.passes import look_at

    n = 10
    eye = np.stack([np.linspace(-2, 2, n), np.full(n, 1.6), np.full(n, 5.0)], -1)
    target = np.array([0.0, 1.0, 0.0])
    cams = np.zeros((n, 12), np.float32)
    for k in range(n):
        r = look_at(eye[k], target)[:3, :3]  # world -> camera; the camera's rotation is its transpose
        m = r.T
        w = np.sqrt(max(1e-12, 1 + m[0, 0] + m[1, 1] + m[2, 2])) / 2
        q = np.array([(m[2, 1] - m[1, 2]) / (4 * w), (m[0, 2] - m[2, 0]) / (4 * w), (m[1, 0] - m[0, 1]) / (4 * w), w])
        # stored like the engine bridge stores a Unity camera: looking along its local +Z
        cams[k, :3], cams[k, 3:7] = eye[k], quat.multiply(q, np.array([0.0, 1.0, 0.0, 0.0]))
    cams[:, 7], cams[:, 8], cams[:, 9] = np.linspace(30, 50, n), 36.0, 24.0
    take = make_take(tmp_path, {}, fps=25, cameras={"main": cams})
    report = import_take(take, scene)
    ob = bpy.data.objects[report.cameras["main"]]
    scene.render.resolution_x, scene.render.resolution_y = 64, 36
    for k in (0, 4, 9):
        scene.frame_set(k)
        cf = scene_camera_frame(scene, ob)
        assert np.abs(cf.world_to_camera - look_at(eye[k], target)).max() < 1e-4
        assert ob.data.lens == pytest.approx(cams[k, 7], abs=1e-3)
        uv, depth = cf.project(target[None])
        assert uv[0] == pytest.approx((32, cf.K[1, 2]), abs=1e-3)


def test_retarget_onto_rig_with_other_names_and_rest(scene, tmp_path):
    """A rig with renamed bones and rolled rest orientations, moved and rotated: the world
    rotation of each mapped bone (posed * rest^-1) equals the take's."""
    from mathutils import Euler

    from blender_addon.takeimport import create_armature, import_take

    rig = create_armature("rig", mannequin=False)
    bpy.ops.object.mode_set(mode="EDIT")
    for k, eb in enumerate(rig.data.edit_bones):
        eb.roll = 0.3 * (k % 5)
    bpy.ops.object.mode_set(mode="OBJECT")
    for b in rig.data.bones:
        b.name = "mixamorig:" + b.name
    rig.location = (1.0, 2.0, 0.0)
    rig.rotation_euler = Euler((0, 0, 0.5))
    bpy.context.view_layer.update()
    mapping = {b: "mixamorig:" + b for b in ("Hips", "Spine", "Chest", "UpperChest", "Neck", "Head", "LeftUpperArm", "LeftLowerArm")}
    poses = random_poses(5, seed=3)
    take = make_take(tmp_path, {"ana": poses})
    import_take(take, scene, rig="rig", bone_map=mapping)
    _, rot = skeleton.forward_kinematics(poses)
    r = skeleton._TO_BLENDER
    obj_q = np.array(rig.matrix_world.to_quaternion())[[1, 2, 3, 0]]
    for frame in (0, 4):
        scene.frame_set(frame)
        for canon, name in mapping.items():
            pb = rig.pose.bones[name]
            posed = np.array(pb.matrix.to_quaternion())[[1, 2, 3, 0]]
            rest = np.array(pb.bone.matrix_local.to_quaternion())[[1, 2, 3, 0]]
            w_arm = quat.multiply(posed, quat.conjugate(rest))
            w_world = quat.multiply(quat.multiply(obj_q, w_arm), quat.conjugate(obj_q))
            w_canon = quat.multiply(quat.multiply(quat.conjugate(r), w_world), r)
            assert _angle(w_canon, rot[frame, skeleton.BONE_INDEX[canon]]) < 0.1, (frame, canon)
    with pytest.raises(TakeImportError, match="has no bone 'mixamorig:Tail'"):
        import_take(take, scene, rig="rig", bone_map={"Hips": "mixamorig:Tail"})
    with pytest.raises(TakeImportError, match="no armature named 'nope'"):
        import_take(take, scene, rig="nope")


def test_take_without_motion_is_refused(scene, tmp_path):
    from blender_addon.takeimport import import_take

    take = make_take(tmp_path, {})
    with pytest.raises(TakeImportError, match="no performers and no cameras"):
        import_take(take, scene)
    with pytest.raises(TakeImportError, match="has no performer 'zed'"):
        import_take(make_take(tmp_path, {"ana": random_poses(2)}), scene, performers=["zed"])

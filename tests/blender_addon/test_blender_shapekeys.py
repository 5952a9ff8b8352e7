"""Lip-sync streams in a take animate shape keys: on the mannequin, and on a rig's own mesh
through the alias table (VRM / VRChat names) or an explicit mapping."""

import numpy as np
import pytest
from blender_helpers import add_mouth, make_take, random_poses

from machinima.take import Take  # noqa: F401
from machinima.timecode import ns_from_frames  # noqa: F401

bpy = pytest.importorskip("bpy")


def test_mouth_stream_animates_mannequin_shape_keys(scene, tmp_path):
    from blender_addon.takeimport import import_take

    path = make_take(tmp_path / "takes", {"ada": random_poses(12)})
    vals = add_mouth(path, "ada", 12)
    report = import_take(path, scene)
    assert report.shape_keys["ada"] == {"A": "A", "U": "U", "I": "I", "E": "E", "O": "O"}
    mesh = next(o for o in bpy.data.objects if o.type == "MESH" and o.data.shape_keys and o.get("machinima_performer_mesh") == "ada")
    for f in (0, 6, 11):
        scene.frame_set(f)
        assert mesh.data.shape_keys.key_blocks["A"].value == pytest.approx(vals[f, 0], abs=1e-4)
        assert mesh.data.shape_keys.key_blocks["U"].value == pytest.approx(0.5, abs=1e-4)
    assert "shape keys for ada" in report.summary()


def test_rig_mesh_by_alias_and_mapping(scene, tmp_path):
    from blender_addon.takeimport import create_armature, import_take

    path = make_take(tmp_path / "takes", {"bo": random_poses(8)})
    vals = add_mouth(path, "bo", 8)
    rig = create_armature("MyRig", mannequin=False)
    bpy.ops.mesh.primitive_cube_add()
    face = bpy.context.active_object
    face.parent = rig
    face.shape_key_add(name="Basis")
    face.shape_key_add(name="vrc.v_aa")  # VRChat's name for A
    face.shape_key_add(name="MouthRound")  # a rig's own name, mapped explicitly
    report = import_take(path, scene, rig="MyRig", shape_keys={"U": "MouthRound"})
    assert report.shape_keys["bo"] == {"A": "vrc.v_aa", "U": "MouthRound"}
    scene.frame_set(7)
    assert face.data.shape_keys.key_blocks["vrc.v_aa"].value == pytest.approx(vals[7, 0], abs=1e-4)
    assert face.data.shape_keys.key_blocks["MouthRound"].value == pytest.approx(0.5, abs=1e-4)


def test_oculus_visemes_drive_vrchat_keys(scene, tmp_path):
    """A lip-sync stream's viseme channels take VRChat's vrc.v_* keys; A..O keep their own names."""
    from blender_addon.takeimport import create_armature, import_take
    from machinima.mouth import BLEND_CHANNELS

    path = make_take(tmp_path / "takes", {"cy": random_poses(6)})
    take = Take.open(path, writable=True)
    take.store.add_blend_stream("cy-mouth", BLEND_CHANNELS, {"performer": "cy"})
    vals = np.zeros((6, len(BLEND_CHANNELS)), np.float32)
    vals[:, BLEND_CHANNELS.index("A")] = 0.2
    vals[:, BLEND_CHANNELS.index("viseme_aa")] = 0.9
    vals[:, BLEND_CHANNELS.index("viseme_PP")] = np.linspace(0, 1, 6)
    take.store.append("blend/cy-mouth", take.store.origin_ns + ns_from_frames(np.arange(6), take.fps), vals)
    take.finalize()
    rig = create_armature("VRCRig", mannequin=False)
    bpy.ops.mesh.primitive_cube_add()
    face = bpy.context.active_object
    face.parent = rig
    for name in ("Basis", "vrc.v_aa", "vrc.v_pp", "vrc.v_ou"):
        face.shape_key_add(name=name)
    report = import_take(path, scene, rig="VRCRig")
    assert report.shape_keys["cy"] == {"viseme_aa": "vrc.v_aa", "viseme_PP": "vrc.v_pp", "viseme_ou": "vrc.v_ou"}
    scene.frame_set(5)
    assert face.data.shape_keys.key_blocks["vrc.v_aa"].value == pytest.approx(0.9, abs=1e-4)  # the viseme, not A's 0.2
    assert face.data.shape_keys.key_blocks["vrc.v_pp"].value == pytest.approx(1.0, abs=1e-4)

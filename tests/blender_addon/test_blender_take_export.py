"""Takes out as animated .glb/.fbx (real bpy), read back by pygltflib (with a spec-based node
evaluator written in gltf_helpers.py) and by Blender's own glTF and FBX importers: skins, bones,
channels, frame count, duration, markers, shape keys, cameras (position, view, focal length),
and every bone's world position at three frames against the take's own forward kinematics (1e-4 m)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from blender_helpers import add_mouth, make_take, random_poses
from gltf_helpers import accessor, node_world_positions

from machinima import quat, skeleton
from blender_addon.errors import ExportError

bpy = pytest.importorskip("bpy")
pygltflib = pytest.importorskip("pygltflib")

FPS = 30
FRAMES = (0, 13, 29)


def _camera(n: int) -> np.ndarray:
    cams = np.zeros((n, 12), np.float32)
    cams[:, 0:3] = np.stack([np.linspace(-2, 2, n), np.full(n, 1.6), np.linspace(5, 4, n)], -1)
    pan = quat.from_axis_angle(np.array([0.0, 1.0, 0.0]), np.linspace(-0.3, 0.3, n))
    cams[:, 3:7] = quat.multiply(pan, np.array([0.0, 1.0, 0.0, 0.0]))  # looking back at the performers (-Z), panning
    cams[:, 7], cams[:, 8], cams[:, 9] = np.linspace(30, 50, n), 36, 24
    return cams


@pytest.fixture
def take(tmp_path):
    poses = {"ana": random_poses(40, seed=1), "ben": random_poses(30, seed=2)}
    path = make_take(tmp_path / "takes", poses, fps=FPS, cameras={"main": _camera(40)}, markers={"action": 12, "cut": 35})
    mouth = add_mouth(path, "ana", 40)
    return path, poses, mouth


def _blender_heads(ob, bones):
    return {b: np.array(ob.matrix_world @ ob.pose.bones[b].head) for b in bones}


def test_take_glb_reads_back_in_pygltflib_and_blender(scene, tmp_path, take):
    from blender_addon.take_export import export_take

    path, poses, mouth = take
    report = export_take(path, tmp_path / "take.glb", scene=scene)
    assert report.performers == ["ana", "ben"] and report.cameras == ["main"] and report.frames == (0, 39)
    assert "3 markers" not in report.summary() and "2 markers" in report.summary()
    g = pygltflib.GLTF2().load(str(tmp_path / "take.glb"))
    # skins, joints, one animation sampled on every frame of the take
    assert len(g.animations) == 1
    skins = {s.name: s for s in g.skins}
    assert set(skins) == {"ana", "ben"}
    for s in skins.values():
        assert sorted(g.nodes[j].name for j in s.joints) == sorted(skeleton.BONES)
    anim = g.animations[0]
    targets = {(ch.target.node, ch.target.path): ch for ch in anim.channels}
    for s in skins.values():
        for j in s.joints:
            assert (j, "rotation") in targets, g.nodes[j].name
    hips = next(j for j in skins["ana"].joints if g.nodes[j].name == "Hips")
    times = accessor(g, anim.samplers[targets[(hips, "translation")].sampler].input)[:, 0]
    assert len(times) == 40 and times[0] == pytest.approx(0) and times[-1] == pytest.approx(39 / FPS, abs=1e-6)
    # lip sync as morph target weights on ana's mannequin, the camera moves
    mesh_node = next(i for i, n in enumerate(g.nodes) if n.name == "ana mannequin")
    assert g.meshes[g.nodes[mesh_node].mesh].extras["targetNames"][:5] == ["A", "I", "U", "E", "O"]
    weights = accessor(g, anim.samplers[targets[(mesh_node, "weights")].sampler].output)[:, 0].reshape(40, -1)
    assert np.allclose(weights[:, 0], mouth[:, 0], atol=1e-4) and np.allclose(weights[:, 2], 0.5, atol=1e-4)
    cam_node = next(i for i, n in enumerate(g.nodes) if n.camera is not None)
    assert (cam_node, "translation") in targets
    # focal length as the camera's vertical field of view (KHR_animation_pointer), 36 mm sensor
    # fitted to the width of Blender's default 16:9 frame
    yfov = next(ch for ch in anim.channels if ch.target.path == "pointer"
                and ch.target.extensions["KHR_animation_pointer"]["pointer"].endswith("/perspective/yfov"))
    want = 2 * np.arctan(36 / (16 / 9) / 2 / _camera(40)[:, 7])
    assert np.allclose(accessor(g, anim.samplers[yfov.sampler].output)[:, 0], want, atol=1e-5)
    # markers as scene extras, in take frames, seconds and timecode
    info = g.scenes[0].extras["machinima"]
    assert info["take"] == path.name and info["fps"] == "30"
    assert [(m["name"], m["frame"], m["timecode"]) for m in info["markers"]] == [("action", 12, "00:00:00:12"), ("cut", 35, "00:00:01:05")]
    assert info["markers"][1]["time_s"] == pytest.approx(35 / FPS)
    assert "machinima_take" not in g.scenes[0].extras  # no local path in a delivery
    # every joint's world position at three frames = the take's (glTF space is canonical space)
    cam_pos = _camera(40)[:, 0:3]
    for f in FRAMES:
        world = node_world_positions(g, 0, f / FPS)
        for name, s in skins.items():
            truth, _ = skeleton.forward_kinematics(poses[name][f][None])
            for j in s.joints:
                err = np.abs(world[j] - truth[0, skeleton.BONE_INDEX[g.nodes[j].name]]).max()
                assert err < 1e-4, (name, g.nodes[j].name, f, err)
        assert np.abs(world[cam_node] - cam_pos[f]).max() < 1e-4
    # Blender's own glTF importer
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.context.scene.render.fps = FPS  # glTF stores seconds; the importer turns them into frames at the scene's rate
    bpy.ops.import_scene.gltf(filepath=str(tmp_path / "take.glb"))
    sc = bpy.context.scene
    arms = {o.name: o for o in sc.objects if o.type == "ARMATURE"}
    assert set(arms) == {"ana", "ben"} and all(len(o.data.bones) == 55 for o in arms.values())
    mesh = next(o for o in sc.objects if o.type == "MESH" and o.name.startswith("ana"))
    cam = next(o for o in sc.objects if o.type == "CAMERA")
    for f in FRAMES:
        sc.frame_set(f)
        for name, ob in arms.items():
            truth, _ = skeleton.forward_kinematics(poses[name][f][None])
            truth_b, _ = skeleton.canonical_to_blender(truth[0], np.tile([0, 0, 0, 1.0], (55, 1)))
            heads = _blender_heads(ob, skeleton.BONES)
            err = max(np.abs(heads[b] - truth_b[skeleton.BONE_INDEX[b]]).max() for b in skeleton.BONES)
            assert err < 1e-4, (name, f, err)
        assert mesh.data.shape_keys.key_blocks["A"].value == pytest.approx(mouth[f, 0], abs=1e-4)
        cam_b, _ = skeleton.canonical_to_blender(cam_pos[f], np.array([0, 0, 0, 1.0]))
        assert np.abs(np.array(cam.matrix_world.translation) - cam_b).max() < 1e-4
        view, _ = skeleton.canonical_to_blender(quat.rotate(_camera(40)[f, 3:7], np.array([0, 0, 1.0])), np.array([0, 0, 0, 1.0]))
        assert np.abs(-np.array(cam.matrix_world)[:3, 2] - view).max() < 1e-4  # Blender cameras look along local -Z


def _fbx_globals(path):
    from io_scene_fbx import parse_fbx

    root, _version = parse_fbx.parse(str(path))
    settings = next(e for e in root.elems if e.id == b"GlobalSettings")
    props = next(e for e in settings.elems if e.id == b"Properties70")
    return {p.props[0].decode(): p.props[-1] for p in props.elems}


@pytest.mark.parametrize("engine,up,unit", [("unity", 1, 100.0), ("unreal", 1, 100.0), ("godot", 1, 100.0), ("blender", 2, 100.0)])
def test_take_fbx_per_engine_reads_back_in_blender(scene, tmp_path, take, engine, up, unit):
    from blender_addon.take_export import TakeExportSettings, export_take

    path, poses, mouth = take
    naming = "vrm1" if engine == "unity" else "canonical"
    out = tmp_path / f"take_{engine}.fbx"
    export_take(path, out, TakeExportSettings(engine=engine, bone_names=naming, performers=("ana",)), scene=scene)
    globs = _fbx_globals(out)
    assert globs["UpAxis"] == up and globs["UnitScaleFactor"] == pytest.approx(unit)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.import_scene.fbx(filepath=str(out), anim_offset=0.0)
    sc = bpy.context.scene
    assert sc.render.fps / sc.render.fps_base == pytest.approx(FPS)
    ob = next(o for o in sc.objects if o.type == "ARMATURE")
    assert len(ob.data.bones) == 55
    from blender_addon.bonenames import bone_names

    names = bone_names(naming)
    if engine == "unity":
        assert "leftThumbMetacarpal" in ob.data.bones and "hips" in ob.data.bones and "Hips" not in ob.data.bones
    assert tuple(round(v) for v in ob.animation_data.action.frame_range) == (0, 39)
    mesh = next(o for o in sc.objects if o.type == "MESH")  # the skinned mannequin with its mouth keys
    assert mesh.find_armature() == ob and len(mesh.vertex_groups) == 52  # every bone but the eyes and the jaw
    info = next(o for o in sc.objects if o.get("machinima_take_info"))
    assert [m["name"] for m in json.loads(info["machinima_markers"])] == ["action", "cut"]
    cam, cams = next(o for o in sc.objects if o.type == "CAMERA"), _camera(40)
    for f in (0, 13, 39):
        sc.frame_set(f)
        mw = np.array(cam.matrix_world)  # Blender cameras look along local -Z, up +Y; the take's along +Z
        to_b = [skeleton.canonical_to_blender(v, np.array([0, 0, 0, 1.0]))[0] for v in
                (cams[f, :3], quat.rotate(cams[f, 3:7], np.array([0, 0, 1.0])), quat.rotate(cams[f, 3:7], np.array([0, 1.0, 0])))]
        assert np.abs(mw[:3, 3] - to_b[0]).max() < 1e-4 and np.abs(-mw[:3, 2] - to_b[1]).max() < 1e-4, (engine, f)
        assert np.abs(mw[:3, 1] - to_b[2]).max() < 1e-4 and cam.data.lens == pytest.approx(cams[f, 7], abs=1e-3)
    for f in (0, 13, 39):
        sc.frame_set(f)
        truth, _ = skeleton.forward_kinematics(poses["ana"][f][None])
        truth_b, _ = skeleton.canonical_to_blender(truth[0], np.tile([0, 0, 0, 1.0], (55, 1)))
        heads = _blender_heads(ob, [names[b] for b in skeleton.BONES])
        err = max(np.abs(heads[names[b]] - truth_b[skeleton.BONE_INDEX[b]]).max() for b in skeleton.BONES)
        assert err < 1e-4, (engine, f, err)
        assert mesh.data.shape_keys.key_blocks["A"].value == pytest.approx(mouth[f, 0], abs=1e-3)


def test_take_export_errors(scene, tmp_path, take):
    from blender_addon.take_export import TakeExportSettings, export_take

    path, _, _ = take
    with pytest.raises(ExportError, match="use a .glb, .gltf or .fbx"):
        export_take(path, tmp_path / "t.obj", scene=scene)
    with pytest.raises(ExportError, match="unknown engine 'unity3d'"):
        export_take(path, tmp_path / "t.fbx", TakeExportSettings(engine="unity3d"), scene=scene)
    with pytest.raises(ExportError, match="unknown bone naming 'mixamo'"):
        export_take(path, tmp_path / "t.glb", TakeExportSettings(bone_names="mixamo"), scene=scene)
    assert not list(tmp_path.glob("t.*")) and not [o for o in bpy.data.objects if o.type == "ARMATURE"]


def test_takes_export_cli_through_blender(tmp_path, take):
    """``machinima takes export --format glb|fbx`` as a person types it: an id in the takes root,
    the child Blender process, one-line errors."""
    import subprocess
    import sys

    path, _, _ = take

    def run(*args):
        return subprocess.run([sys.executable, "-m", "machinima", "takes", "export", path.name, "--root", str(path.parent), *args],
                              capture_output=True, text=True, timeout=300)

    res = run("--format", "glb", "--out", str(tmp_path / "out"), "--bone-names", "vrm0")
    assert res.returncode == 0, res.stderr
    glb = tmp_path / "out" / f"{path.name}.glb"
    assert f"wrote {glb}" in res.stdout.replace("\n", "")
    g = pygltflib.GLTF2().load(str(glb))
    assert {"hips", "leftThumbIntermediate"} <= {n.name for n in g.nodes} and len(g.skins) == 2
    res = run("--out", str(tmp_path / "ana.fbx"), "--performer", "ana", "--engine", "unreal")  # format from the suffix
    assert res.returncode == 0 and (tmp_path / "ana.fbx").read_bytes()[:18] == b"Kaydara FBX Binary", res.stderr
    res = run("--format", "fbx", "--out", str(tmp_path / "x.glb"))
    assert res.returncode == 1 and res.stderr.strip() == "error: --out x.glb does not end in .fbx: name a .fbx file or a folder"
    res = run("--format", "glb", "--out", str(tmp_path / "y.glb"), "--engine", "cryengine")
    assert res.returncode == 1 and len(res.stderr.strip().splitlines()) == 1 and "unknown engine 'cryengine'" in res.stderr
    assert not (tmp_path / "y.glb").exists()


def test_ntsc_take_keeps_its_clock_in_glb(scene, tmp_path):
    """A 29.97 take: glTF key times are take frames at 30000/1001, not at 30."""
    from machinima.take import Take
    from machinima.timecode import ns_from_frames

    from blender_addon.take_export import export_take

    take = Take.create(tmp_path / "takes", production="p", scene="1", shot="1", fps="29.97", timecode_in="01:00:00;00")
    take.add_performer("ana")
    take.store.append("mocap/ana", take.store.origin_ns + ns_from_frames(np.arange(300), take.fps) + 1000, random_poses(300, 3))
    take.finalize()
    export_take(take.path, tmp_path / "ntsc.glb", scene=scene)
    g = pygltflib.GLTF2().load(str(tmp_path / "ntsc.glb"))
    anim = g.animations[0]
    times = accessor(g, anim.samplers[anim.channels[0].sampler].input)[:, 0]
    assert len(times) == 300 and np.allclose(times, np.arange(300) * 1001 / 30000, atol=1e-5)
    assert g.scenes[0].extras["machinima"]["timecode_in"] == "01:00:00;00"
    assert scene.render.fps_base == pytest.approx(1.001) and "machinima_fps_base" not in scene  # the scene is as it was

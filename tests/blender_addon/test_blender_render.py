"""Render passes in real bpy at tiny sizes: depth against known geometry (1 cm), normals, masks,
pose map, camera.json, resume, the one-command path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from blender_helpers import make_take, random_poses

from machinima import skeleton
from machinima.passes import BACKGROUND_DEPTH, PassSet, intrinsics
from blender_addon.errors import RenderError

bpy = pytest.importorskip("bpy")

# a floor, a wall 10 m in front of the camera (front face at z = -4.9), a box in group "props"
STAGE = {
    "set": {"name": "stage"},
    "floor": {"size": [30, 30]},
    "walls": [{"id": "back", "from": [-15, -5], "to": [15, -5], "thickness": 0.2, "height": 6}],
    "props": [{"id": "crate", "kit": "box", "size": [1, 1, 1], "position": [2.5, 0, 0], "group": "props"}],
    "lights": [{"id": "sun", "type": "sun", "position": [2, 6, 4], "target": [0, 0, 0]}],
    "cameras": [{"id": "cam", "position": [0, 1.5, 5.1], "target": [0, 1.5, 0], "lens": 35}],
}


def _standing(n):
    poses = np.repeat(skeleton.rest_pose()[None], n, 0)
    poses[:, skeleton.BONE_INDEX["LeftUpperArm"], 3:7] = [0, 0, -0.5, 0.866]  # arms down a bit
    poses[:, skeleton.BONE_INDEX["RightUpperArm"], 3:7] = [0, 0, 0.5, 0.866]
    return poses


@pytest.fixture
def staged(scene, tmp_path):
    from machinima.export import performer_frames
    from machinima.take import Take

    from blender_addon.build import build_set
    from blender_addon.setfile import parse_set
    from blender_addon.takeimport import import_take, take_frames

    build_set(parse_set(STAGE), scene)
    take_path = make_take(tmp_path, {"ana": _standing(3)}, fps=24)
    import_take(take_path, scene)
    take = Take.open(take_path)
    stamps, poses = performer_frames(take, "ana")
    return take, {"ana": (take_frames(take, stamps), poses)}


def test_passes_depth_normals_masks_pose_camera(staged, scene):
    from blender_addon.render import RenderSettings, render_passes

    take, poses = staged
    settings = RenderSettings(passes=("rgb", "depth", "normal", "mask", "pose"), width=64, height=36, samples=1, frames=(0, 2), step=2)
    report = render_passes(take.passes_dir(), settings, scene, take_poses=poses, fps="24", progress=False)
    assert report.rendered == [0, 2]
    ps = PassSet.open(take.passes_dir())
    assert ps.frames == [0, 2] and ps.size == (64, 36)
    assert ps.masks() == {"ana": "performer", "props": "group"}
    cam = ps.cameras()[0]
    assert np.allclose(cam.K, intrinsics(64, 36, 35.0, 36.0))
    depth = ps.read("depth", 0)
    assert depth.dtype == np.float32 and depth.shape == (36, 64)
    # every pixel: unproject its pixel centre at the rendered depth and check it lies on the geometry
    v, u = np.mgrid[0:36, 0:64]
    x = (u + 0.5 - cam.K[0, 2]) / cam.K[0, 0] * depth
    y = -(v + 0.5 - cam.K[1, 2]) / cam.K[1, 1] * depth
    cam_pts = np.stack([x, y, -depth, np.ones_like(depth)], -1)
    world = cam_pts @ np.linalg.inv(cam.world_to_camera).T
    ana = ps.read("mask/ana", 0) > 0
    crate = ps.read("mask/props", 0) > 0
    scenery = ~ana & ~crate & (depth < BACKGROUND_DEPTH)
    wall = scenery & (np.abs(depth - 10.0) < 0.01)  # the wall's front face is 10.0 m in front of the camera
    floor = scenery & (np.abs(world[..., 1]) < 0.01)  # floor pixels land on y = 0
    assert wall.sum() > 300 and floor.sum() > 100
    assert (wall | floor)[scenery].all()  # every other pixel is on the wall or the floor, within 1 cm
    assert (depth[~ana & ~crate & ~scenery] == BACKGROUND_DEPTH).all()
    assert np.abs(world[..., 2][wall] + 4.9).max() < 0.01
    on_crate = (np.abs(world[..., 1] - 1.0) < 0.01) | (np.abs(world[..., 2] - 0.5) < 0.01) | (np.abs(world[..., 0] - 2.0) < 0.01)
    assert crate.sum() > 5 and on_crate[crate].all()  # crate pixels: its top, front or left face
    # normals: the wall faces the camera (+Z), the floor is up (+Y)
    normal = ps.read("normal", 0)
    assert np.allclose(normal[wall & ~floor], [0, 0, 1], atol=1e-3)
    assert np.allclose(normal[floor & ~wall], [0, 1, 0], atol=1e-3)
    # the mask covers the performer: projected spine and head inside it, nothing of it beyond 6 m
    pos, _ = skeleton.forward_kinematics(poses["ana"][1][0])
    for bone in ("Hips", "Chest", "Head"):
        (px, py), d = cam.project(pos[skeleton.BONE_INDEX[bone]])
        assert ana[int(py), int(px)], bone
    assert ana.sum() > 20 and depth[ana].max() < 5.5
    import cv2

    from blender_addon.posemap import openpose_keypoints

    near = cv2.dilate(ana.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    uv, _ = cam.project(openpose_keypoints(poses["ana"][1][0]))
    assert all(near[int(y), int(x)] for x, y in uv)  # every OpenPose keypoint falls on the performer
    # pose map: coloured pixels around the projected neck, black far from the performer
    pose = ps.read("pose", 0)
    assert pose.shape == (36, 64, 3) and pose.dtype == np.uint8
    (nx, ny), _ = cam.project((pos[skeleton.BONE_INDEX["LeftUpperArm"]] + pos[skeleton.BONE_INDEX["RightUpperArm"]]) / 2)
    assert pose[int(ny) - 1:int(ny) + 2, int(nx) - 1:int(nx) + 2].max() > 100
    assert pose[:, :8].max() == 0
    rgb = ps.read("rgb", 0)
    assert rgb.shape == (36, 64, 3) and rgb.std() > 1
    # resume: everything is there, so nothing renders again
    again = render_passes(take.passes_dir(), settings, scene, take_poses=poses, fps="24", progress=False)
    assert again.rendered == [] and again.skipped == [0, 2]
    assert not list(take.passes_dir().glob(".render-*"))  # temporary renders cleaned up


def test_workbench_and_bad_settings(staged, scene, tmp_path):
    from blender_addon.render import RenderSettings, parse_frames, parse_res, render_passes

    take, poses = staged
    rep = render_passes(tmp_path / "wb", RenderSettings(passes=("rgb",), width=32, height=18, engine="workbench", frames=(1, 1)),
                        scene, progress=False)
    assert rep.rendered == [1] and PassSet.open(tmp_path / "wb").read("rgb", 1).shape == (18, 32, 3)
    rep = render_passes(tmp_path / "wb", RenderSettings(passes=("rgb",), width=32, height=18, engine="workbench", frames=(0, 1)),
                        scene, progress=False)
    assert rep.rendered == [0] and rep.skipped == [1]  # a second chunk adds to the same pass set
    assert PassSet.open(tmp_path / "wb").frames == [0, 1] and sorted(PassSet.open(tmp_path / "wb").cameras()) == [0, 1]
    with pytest.raises(RenderError, match="unknown pass 'albedo'"):
        render_passes(tmp_path / "x", RenderSettings(passes=("albedo",)), scene)
    with pytest.raises(RenderError, match="unknown engine 'octane'"):
        RenderSettings(engine="octane").check()
    with pytest.raises(RenderError, match="no camera named 'nope'"):
        render_passes(tmp_path / "x", RenderSettings(camera="nope"), scene, take_poses=poses)
    with pytest.raises(RenderError, match="pose pass needs a take"):
        render_passes(tmp_path / "x", RenderSettings(passes=("pose",)), scene)
    with pytest.raises(RenderError, match="WIDTHxHEIGHT"):
        parse_res("big")
    with pytest.raises(RenderError, match="A:B"):
        parse_frames("3-4")
    assert parse_res("64x36") == (64, 36) and parse_frames("2:9") == (2, 9)


def test_a_render_with_other_settings_leaves_no_stale_pass_beside_its_own(staged, scene, tmp_path):
    """rgb+depth+normal+mask at 48x27, then rgb+depth at 32x18: passes/ holds only the second
    render's passes (each listed in passes.json, every frame file of the new size); the first
    render waits whole in passes.previous/."""
    from machinima.imageseq import list_frames, read_image

    from blender_addon.render import RenderSettings, render_passes

    take, poses = staged
    out = take.passes_dir()
    first = RenderSettings(passes=("rgb", "depth", "normal", "mask"), width=48, height=27, engine="workbench", frames=(0, 1))
    render_passes(out, first, scene, take_poses=poses, progress=False)
    assert {p.name for p in out.iterdir()} == {"passes.json", "camera.json", "rgb", "depth", "normal", "mask"}
    render_passes(out, RenderSettings(passes=("rgb", "depth"), width=32, height=18, engine="workbench", frames=(0, 0)), scene,
                  take_poses=poses, progress=False)
    ps = PassSet.open(out)
    assert {p.name for p in out.iterdir()} == {"passes.json", "camera.json", "rgb", "depth"}
    assert sorted(ps.meta["passes"]) == ["depth", "rgb"] and ps.frames == [0] and not ps.masks()
    for name in ("rgb", "depth"):
        files = list_frames(out / name)
        assert list(files) == [0] and read_image(files[0]).shape[:2] == (18, 32)
    prev = PassSet.open(out.with_name("passes.previous"))
    assert prev.size == (48, 27) and prev.frames == [0, 1] and sorted(prev.masks()) == ["ana", "props"]
    assert read_image(prev.path("normal", 1)).shape[:2] == (27, 48)


def test_cli_render_one_command(tmp_path, monkeypatch):
    """Set file + take -> passes in the take with one command (the CLI, in-process bpy); the
    take named by its id in a relative takes root, the set by a relative path (issue 20)."""
    import json

    from typer.testing import CliRunner

    from blender_addon.cli import app

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MACHINIMA_TAKES_ROOT", "takes")
    Path("stage.json").write_text(json.dumps(STAGE))
    take = tmp_path / make_take("takes", {"ana": random_poses(4, seed=5, spread=0.2)}, fps=24)
    res = CliRunner().invoke(app, ["render", take.name, "--set", "stage.json", "--passes", "depth,mask,pose", "--res", "32x18",
                                   "--frames", "0:3", "--step", "3", "--save", "scene.blend"])
    assert res.exit_code == 0, res.output
    ps = PassSet.open(take / "passes")
    assert ps.frames == [0, 3] and set(ps.masks()) == {"ana", "props"}
    assert (tmp_path / "scene.blend").exists()

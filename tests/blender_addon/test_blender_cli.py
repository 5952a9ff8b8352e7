"""``machinima blender ...`` commands in-process (typer's runner, real bpy)."""

from __future__ import annotations

import json
import zipfile

import pytest
from blender_helpers import make_take, random_poses
from typer.testing import CliRunner

from blender_addon.cli import app
from blender_addon.setfile import EXAMPLE_SET

bpy = pytest.importorskip("bpy")
runner = CliRunner()


def test_check_and_example_set(tmp_path):
    res = runner.invoke(app, ["example-set"])
    assert res.exit_code == 0 and res.output == EXAMPLE_SET.read_text()
    res = runner.invoke(app, ["check-set", str(EXAMPLE_SET)])
    assert res.exit_code == 0 and "8 props" in res.output and "['furniture']" in res.output
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"props": [{"id": "x", "kit": "box", "position": [0, 0]}]}))
    res = runner.invoke(app, ["check-set", str(bad)])
    assert res.exit_code != 0 and "field 'position': expected 3 numbers" in str(res.exception)


def test_build_import_export_package(tmp_path):
    blend = tmp_path / "diner.blend"
    res = runner.invoke(app, ["build-set", str(EXAMPLE_SET), "--out", str(blend)])
    assert res.exit_code == 0, res.output
    assert "18 created" in res.output and blend.exists()
    res = runner.invoke(app, ["build-set", str(EXAMPLE_SET), "--out", str(blend), "--blend", str(blend)])
    assert res.exit_code == 0 and "18 unchanged" in res.output, res.output
    take = make_take(tmp_path / "takes", {"ana": random_poses(6)}, fps=24, markers={"go": 2})
    res = runner.invoke(app, ["import-take", str(take), "--blend", str(blend), "--out", str(tmp_path / "shot.blend")])
    assert res.exit_code == 0 and "1 performers" in res.output and "1 markers" in res.output, res.output
    bpy.ops.wm.open_mainfile(filepath=str(tmp_path / "shot.blend"))
    scene = bpy.context.scene
    assert "ana" in bpy.data.objects and (scene.frame_start, scene.frame_end) == (0, 5)
    assert any(o.get("machinima_id") == "props/table1" for o in bpy.data.objects)
    res = runner.invoke(app, ["export", str(blend), "--glb", str(tmp_path / "d.glb"), "--fbx", str(tmp_path / "d.fbx"), "--engine", "unreal"])
    assert res.exit_code == 0 and (tmp_path / "d.glb").exists() and (tmp_path / "d.fbx").exists(), res.output
    res = runner.invoke(app, ["export", str(EXAMPLE_SET)])
    assert res.exit_code != 0 and "say where to write" in str(res.exception)
    res = runner.invoke(app, ["package", "--out", str(tmp_path / "dist")])
    assert res.exit_code == 0, res.output
    assert "blender_manifest.toml" in zipfile.ZipFile(tmp_path / "dist" / "machinima-0.1.0.zip").namelist()


def test_bone_map_errors(tmp_path):
    take = make_take(tmp_path / "takes", {"ana": random_poses(2)})
    bad = tmp_path / "map.json"
    bad.write_text("{not json")
    res = runner.invoke(app, ["import-take", str(take), "--out", str(tmp_path / "x.blend"), "--rig", "r", "--bone-map", str(bad)])
    assert res.exit_code != 0 and "bone map" in str(res.exception)

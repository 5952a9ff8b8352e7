"""Building sets in real bpy: counts, materials, lights, idempotent rebuilds, errors."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from blender_addon.errors import SetFileError
from blender_addon.setfile import EXAMPLE_SET, load_set

bpy = pytest.importorskip("bpy")


def _by_id(name):
    from blender_addon.build import set_objects

    return set_objects(name)


def test_build_example_set(scene):
    from blender_addon.build import build_set

    report = build_set(EXAMPLE_SET, scene)
    assert len(report.created) == 18 and not report.updated and not report.removed
    obs = _by_id("diner")
    kinds = [o.type for o in obs.values()]
    assert kinds.count("MESH") == 12 and kinds.count("LIGHT") == 4 and kinds.count("CAMERA") == 2
    assert sorted(o.data.type for o in obs.values() if o.type == "LIGHT") == ["AREA", "POINT", "SPOT", "SUN"]
    mats = {m["machinima_material"]: m for m in bpy.data.materials if "machinima_material" in m}
    assert set(mats) == {f"diner/{m}" for m in ("floor", "wall", "wood", "chrome", "screen")}
    assert mats["diner/chrome"].metallic == 1.0
    bsdf = next(n for n in mats["diner/wall"].node_tree.nodes if n.type == "BSDF_PRINCIPLED")
    assert tuple(bsdf.inputs["Base Color"].default_value)[:3] == pytest.approx((0.75, 0.72, 0.65))
    assert obs["props/table1"].data.materials[0] == mats["diner/wood"]
    # canonical (x, y, z) -> Blender (x, -z, y)
    assert tuple(obs["props/table1"].location) == pytest.approx((1.5, -0.5, 0.0))
    assert obs["props/counter"]["machinima_group"] == "furniture"
    # the back wall (z = -4, 10 m long, a door and a window) is 10 m along X at Blender y = +4
    wall = obs["walls/back"]
    world = np.array([wall.matrix_world @ v.co for v in wall.data.vertices])
    assert world[:, 0].min() == pytest.approx(-5.0) and world[:, 0].max() == pytest.approx(5.0)
    assert world[:, 1].min() == pytest.approx(3.9) and world[:, 2].max() == pytest.approx(3.0)
    # the wide camera looks at the set: its -Z axis points along canonical -Z = Blender +Y
    cam = obs["cameras/wide"]
    from mathutils import Vector

    look = np.array(cam.matrix_world.to_3x3() @ Vector((0, 0, -1)))
    assert look[1] > 0.9
    assert cam.data.lens == 28 and scene.camera is not None
    assert scene.world.node_tree.nodes["Background"].inputs["Strength"].default_value == 1.0


def test_rebuild_after_edit_updates_in_place(scene, tmp_path):
    from blender_addon.build import build_set

    path = tmp_path / "diner.toml"
    shutil.copy(EXAMPLE_SET, path)
    build_set(path, scene)
    before = {k: o.as_pointer() for k, o in _by_id("diner").items()}
    n_objects, n_meshes = len(bpy.data.objects), len(bpy.data.meshes)
    text = path.read_text()
    text = text.replace('id = "table1"\nkit = "table"\nposition = [1.5, 0, 0.5]', 'id = "table1"\nkit = "table"\nposition = [2.0, 0, 0.5]')
    text = text.replace('[[props]]\nid = "chair2"', '[[props]]\nid = "stool"')
    text = text.replace('color = "#ff4fa0"', 'color = "#00ff00"')
    path.write_text(text)
    report = build_set(path, scene)
    assert report.updated == ["props/table1", "lights/neon"]
    assert report.created == ["props/stool"] and report.removed == ["props/chair2"]
    assert len(report.unchanged) == 15
    after = _by_id("diner")
    assert after["props/table1"].as_pointer() == before["props/table1"]
    assert tuple(after["props/table1"].location) == pytest.approx((2.0, -0.5, 0.0))
    assert after["lights/neon"].as_pointer() == before["lights/neon"]
    assert tuple(after["lights/neon"].data.color) == pytest.approx((0.0, 1.0, 0.0))
    assert len(bpy.data.objects) == n_objects and len(bpy.data.meshes) == n_meshes
    names = [o.name for o in bpy.data.objects]
    assert len(names) == len(set(names)) and not any(n.endswith(".001") for n in names)
    assert build_set(path, scene).unchanged == [k for k, _ in load_set(path).entries()]


def test_bad_entry_stops_the_build_and_names_it(scene, tmp_path):
    from blender_addon.build import build_set

    path = tmp_path / "s.toml"
    path.write_text('[set]\nname = "s"\n[[props]]\nid = "ok"\nkit = "box"\n[[props]]\nid = "bad"\nkit = "box"\nsize = [1, 2]\n')
    with pytest.raises(SetFileError, match=r"props\[1\] \(id 'bad'\): field 'size': expected 3 lengths"):
        build_set(path, scene)
    assert not _by_id("s")

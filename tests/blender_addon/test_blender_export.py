"""Export sets to .glb/.fbx and import them back (real bpy); an exported .glb as a set asset."""

from __future__ import annotations

import numpy as np
import pytest

from blender_addon.errors import ExportError
from blender_addon.setfile import EXAMPLE_SET, parse_set

bpy = pytest.importorskip("bpy")


def _mesh_bounds(obs):
    pts = np.concatenate([np.array([ob.matrix_world @ v.co for v in ob.data.vertices]) for ob in obs if ob.type == "MESH"])
    return pts.min(0), pts.max(0)


def test_export_glb_and_fbx_and_reimport(scene, tmp_path):
    from blender_addon.build import build_set, set_objects
    from blender_addon.export import export_set

    build_set(EXAMPLE_SET, scene)
    src = list(set_objects("diner").values())
    lo, hi = _mesh_bounds(src)
    glb = export_set(tmp_path / "diner.glb", scene=scene)
    fbx = {e: export_set(tmp_path / f"diner_{e}.fbx", engine=e, scene=scene) for e in ("unity", "unreal")}
    assert glb.stat().st_size > 1000 and all(f.stat().st_size > 1000 for f in fbx.values())
    assert glb.read_bytes()[:4] == b"glTF"
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.import_scene.gltf(filepath=str(glb))
    obs = list(bpy.context.scene.objects)
    assert sum(o.type == "MESH" for o in obs) == 12
    # glTF lights are punctual: the area light does not travel (documented), sun/point/spot do
    assert sum(o.type == "CAMERA" for o in obs) == 2 and sum(o.type == "LIGHT" for o in obs) == 3
    lo2, hi2 = _mesh_bounds(obs)
    assert np.allclose(lo, lo2, atol=1e-4) and np.allclose(hi, hi2, atol=1e-4)  # same place, same scale (metres)
    assert hi2[2] == pytest.approx(3.0, abs=1e-4)  # walls 3 m tall, still Z-up in Blender after the Y-up round trip
    table = next(o for o in obs if o.name.startswith("prop.table1"))
    assert table.get("machinima_id") == "props/table1"  # set ids travel as glTF extras
    for engine, path in fbx.items():  # both presets come back at the same size (Blender reads the FBX unit scale)
        bpy.ops.wm.read_factory_settings(use_empty=True)
        bpy.ops.import_scene.fbx(filepath=str(path))
        lo3, hi3 = _mesh_bounds(list(bpy.context.scene.objects))
        assert np.allclose(hi3 - lo3, hi - lo, rtol=1e-3), engine


def test_glb_asset_in_a_set_and_export_errors(scene, tmp_path):
    from blender_addon.build import build_set, set_objects
    from blender_addon.export import export_set

    build_set(parse_set({"set": {"name": "kit"}, "props": [{"id": "c", "kit": "chair"}]}), scene)
    export_set(tmp_path / "chair.glb", scene=scene)
    with pytest.raises(ExportError, match="use a .glb, .gltf or .fbx"):
        export_set(tmp_path / "chair.obj", scene=scene)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    with pytest.raises(ExportError, match="no set to export"):
        export_set(tmp_path / "none.glb", scene=scene)
    doc = {"set": {"name": "room"}, "props": [{"id": "seat", "asset": "chair.glb", "position": [1, 0, 2], "group": "furniture"}]}
    report = build_set(parse_set(doc, base=tmp_path), scene)
    assert report.created == ["props/seat"]
    holder = set_objects("room")["props/seat"]
    meshes = [o for o in holder.children_recursive if o.type == "MESH"]
    assert meshes and all(o.get("machinima_group") == "furniture" for o in meshes)
    lo, hi = _mesh_bounds(meshes)
    assert lo[0] == pytest.approx(1 - 0.225, abs=1e-3) and lo[1] == pytest.approx(-2 - 0.225, abs=1e-3)
    n = len(bpy.data.objects)
    assert build_set(parse_set(doc, base=tmp_path), scene).unchanged == ["props/seat"] and len(bpy.data.objects) == n


def test_blend_and_fbx_assets_textures_and_hdri(scene, tmp_path):
    import cv2

    from blender_addon.build import build_set, set_objects

    build_set(parse_set({"set": {"name": "kit"}, "props": [{"id": "t", "kit": "table"}, {"id": "s", "kit": "sphere"}]}), scene)
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "kit.blend"), copy=True)
    from blender_addon.export import export_set

    export_set(tmp_path / "kit.fbx", scene=scene)
    cv2.imwrite(str(tmp_path / "wood.png"), np.full((8, 8, 3), 90, np.uint8))
    cv2.imwrite(str(tmp_path / "sky.png"), np.full((8, 16, 3), 200, np.uint8))
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    doc = {"set": {"name": "room"}, "materials": {"wood": {"texture": "wood.png"}}, "world": {"hdri": "sky.png", "strength": 0.5},
           "props": [{"id": "table", "asset": "kit.blend", "object": "prop.t"}, {"id": "all", "asset": "kit.fbx", "position": [3, 0, 0]},
                     {"id": "box", "kit": "box", "material": "wood"}]}
    build_set(parse_set(doc, base=tmp_path), scene)
    obs = set_objects("room")
    assert [c.name for c in obs["props/table"].children] == ["prop.t"]
    assert len([c for c in obs["props/all"].children_recursive if c.type == "MESH"]) == 2
    nodes = obs["props/box"].data.materials[0].node_tree.nodes
    assert nodes["machinima texture"].image.filepath.endswith("wood.png")
    assert scene.world.node_tree.nodes["machinima hdri"].image.size[:] == (16, 8)
    with pytest.raises(Exception, match="field 'object': kit.blend has no object 'nope'"):
        build_set(parse_set({"set": {"name": "r2"}, "props": [{"id": "x", "asset": "kit.blend", "object": "nope"}]}, base=tmp_path), scene)
    assert "prop.x" not in bpy.data.objects

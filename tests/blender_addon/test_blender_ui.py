"""The add-on in real bpy: register/unregister, the panel drawn headless, operators, the
extension zip, live VMC preview stepped headless."""

from __future__ import annotations

import importlib.util
import shutil
import socket
import sys
import zipfile

import numpy as np
import pytest
from blender_helpers import random_poses

from machinima import skeleton
from machinima.vmc import encode_frame
from blender_addon.setfile import EXAMPLE_SET, load_set

bpy = pytest.importorskip("bpy")


class FakeLayout:
    """Records what a panel draws (bpy gives no UILayout without a window)."""

    def __init__(self, log):
        self.log = log

    def __getattr__(self, name):
        def call(*args, **kwargs):
            self.log.append((name, args, kwargs))
            if name == "operator":
                return type("OpProps", (), {})()
            return FakeLayout(self.log)

        return call


def test_register_draw_unregister(scene, tmp_path):
    import blender_addon
    from blender_addon import ui

    blender_addon.register()
    try:
        assert hasattr(bpy.types.Scene, "machinima")
        st = scene.machinima
        path = tmp_path / "diner.toml"
        shutil.copy(EXAMPLE_SET, path)
        st.set_path = str(path)
        assert bpy.ops.machinima.rebuild_set() == {"FINISHED"}
        st.kit_piece = "column"
        scene.cursor.location = (1.0, -2.0, 0.0)  # Blender -> canonical (1, 0, 2)
        assert bpy.ops.machinima.add_kit_piece() == {"FINISHED"}
        spec = load_set(path)
        assert spec.props[-1].id == "column2" and spec.props[-1].position == (1.0, 0.0, 2.0)
        assert any(o.get("machinima_id") == "props/column2" for o in bpy.data.objects)
        st.set_path = str(tmp_path / "missing.toml")
        with pytest.raises(RuntimeError, match="missing.toml does not exist"):  # bpy turns an ERROR report into this
            bpy.ops.machinima.rebuild_set()
        log = []
        panel = type("P", (), {"layout": FakeLayout(log)})()
        ui.VIEW3D_PT_machinima.draw(panel, bpy.context)
        ops = [a[0] for n, a, _ in log if n == "operator"]
        for idname in ops:
            group, name = idname.split(".")
            assert hasattr(getattr(bpy.ops, group), name), idname
        assert {"machinima.load_set", "machinima.rebuild_set", "machinima.add_kit_piece", "machinima.import_take",
                "machinima.live_preview", "machinima.render_passes", "machinima.export_set", "machinima.export_take"} <= set(ops)
        assert ops.count("machinima.set_camera") == 2
        props = {a[1] for n, a, _ in log if n == "prop"}
        assert all(hasattr(st, p) for p in props) and "set_path" in props
        # the take, passes and export buttons run the same code as the CLI
        from blender_helpers import make_take

        st.take_path = str(make_take(tmp_path / "takes", {"ana": random_poses(3)}, fps=24))
        assert bpy.ops.machinima.import_take() == {"FINISHED"}
        assert bpy.data.objects["ana"].type == "ARMATURE" and scene.frame_end == 2
        st.passes, st.res_x, st.res_y, st.engine = "depth,mask,pose", 32, 18, "workbench"
        assert bpy.ops.machinima.render_passes() == {"FINISHED"}
        from machinima.passes import PassSet

        ps = PassSet.open(tmp_path / "takes" / "test_s1_a_t001" / "passes")
        assert ps.frames == [0, 1, 2] and "ana" in ps.masks()
        st.export_path = str(tmp_path / "out.glb")
        assert bpy.ops.machinima.export_set() == {"FINISHED"} and (tmp_path / "out.glb").exists()
        st.export_path, st.export_engine, st.export_bones = str(tmp_path / "take.fbx"), "unreal", "vrm1"
        assert bpy.ops.machinima.export_take() == {"FINISHED"} and (tmp_path / "take.fbx").exists()
        assert "hips" in bpy.data.objects["ana"].data.bones  # the scene's take, renamed for VRM
        st.live_target = None
        with pytest.raises(RuntimeError, match="choose an armature"):
            bpy.ops.machinima.live_preview()
    finally:
        blender_addon.unregister()
    assert not hasattr(bpy.types.Scene, "machinima")
    assert not hasattr(bpy.types, "VIEW3D_PT_machinima") and not hasattr(bpy.types, "MACHINIMA_OT_rebuild_set")


def test_extension_zip_installs_and_registers(tmp_path):
    from blender_addon.package import build_package

    out = build_package(tmp_path)
    with zipfile.ZipFile(out) as z:
        names = set(z.namelist())
        manifest = z.read("blender_manifest.toml").decode()
        z.extractall(tmp_path / "ext")
    assert {"blender_manifest.toml", "__init__.py", "ui.py", "examples/diner.toml", "wheels/machinima-0.1.0-py3-none-any.whl"} <= names
    assert "cli.py" not in names
    import tomllib

    # Blender's own extension validator (the code behind "Install from Disk") accepts the zip
    from pathlib import Path

    checker = Path(bpy.utils.system_resource("SCRIPTS")) / "addons_core" / "bl_pkg" / "cli" / "blender_ext.py"
    spec = importlib.util.spec_from_file_location("blender_ext_for_test", checker)
    blender_ext = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(blender_ext)
    checked = blender_ext.pkg_manifest_from_archive_and_validate(str(out), strict=True)
    assert not isinstance(checked, str), checked
    assert checked.id == "machinima" and checked.wheels == ["./wheels/machinima-0.1.0-py3-none-any.whl"]
    doc = tomllib.loads(manifest)
    assert doc["blender_version_min"] == "4.2.0" and doc["wheels"] == ["./wheels/machinima-0.1.0-py3-none-any.whl"]
    with zipfile.ZipFile(tmp_path / "ext/wheels/machinima-0.1.0-py3-none-any.whl") as w:
        assert "machinima/passes.py" in w.namelist() and "machinima-0.1.0.dist-info/RECORD" in w.namelist()
    # load the unpacked extension under another package name, as Blender does (bl_ext.<repo>.machinima)
    spec = importlib.util.spec_from_file_location("bl_ext_test_machinima", tmp_path / "ext/__init__.py",
                                                  submodule_search_locations=[str(tmp_path / "ext")])
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    try:
        spec.loader.exec_module(mod)
        mod.register()
        assert hasattr(bpy.types, "VIEW3D_PT_machinima")
        mod.unregister()
        assert not hasattr(bpy.types, "VIEW3D_PT_machinima")
    finally:
        for k in [k for k in sys.modules if k.startswith("bl_ext_test_machinima")]:
            del sys.modules[k]


def test_live_preview_drives_armature_headless(scene):
    from blender_addon.live import LivePreview
    from blender_addon.takeimport import canonical_bone_world, create_armature

    ob = create_armature("live")
    poses = random_poses(3, seed=7)
    with LivePreview(ob, port=0) as live:
        assert live.step() == 0  # nothing sent yet: returns at once
        tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            tx.sendto(b"not osc at all", live.address)
            for pose in poses:
                tx.sendto(encode_frame(pose), live.address)
            got = 0
            for _ in range(200):
                got += live.step()
                if got >= 4:
                    break
            assert got == 4 and live.stats.rejected == 1 and live.stats.applied >= 1
        finally:
            tx.close()
    bpy.context.view_layer.update()
    _, rot = skeleton.forward_kinematics(poses[-1])
    for bone in ("Hips", "LeftLowerArm", "Head"):
        _, q = canonical_bone_world(ob, bone)
        assert abs(np.dot(q, rot[skeleton.BONE_INDEX[bone]])) > 0.99999, bone
    from blender_addon.errors import BlenderAddonError

    with LivePreview(ob, port=0) as a:
        with pytest.raises(BlenderAddonError, match="cannot listen for VMC"):
            LivePreview(ob, port=a.address[1])

"""``machinima blender import-take`` with the take named as a user types it: a folder relative
to the current folder, or an id in a relative takes root (issue 19)."""

from __future__ import annotations

import pytest
from blender_helpers import make_take, random_poses
from typer.testing import CliRunner

from blender_addon.cli import app

bpy = pytest.importorskip("bpy")
runner = CliRunner()


def test_import_take_by_relative_folder_and_by_id(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MACHINIMA_TAKES_ROOT", "takes")
    take = make_take("takes", {"ana": random_poses(6)}, fps=24)  # a relative root
    for ref, out in ((f"takes/{take.name}", "by-folder.blend"), (take.name, "by-id.blend")):
        res = runner.invoke(app, ["import-take", ref, "--out", out])
        assert res.exit_code == 0 and "1 performers" in res.output, (ref, res.output, res.exception)
        bpy.ops.wm.open_mainfile(filepath=str(tmp_path / out))  # Blender itself reads what was written
        assert "ana" in bpy.data.objects and (bpy.context.scene.frame_start, bpy.context.scene.frame_end) == (0, 5)

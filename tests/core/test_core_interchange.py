"""``takes export --format``: the format from the flag or the file name, and what each refuses."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from machinima.errors import TakeError
from machinima.interchange import ExportRequest, export_take_as, format_for
from machinima.skeleton import rest_pose
from machinima.take import Take


def test_format_from_flag_or_suffix():
    assert format_for(None, Path("out/")) == "bvh"  # the old default stays
    assert format_for(None, Path("a.glb")) == "glb" and format_for(None, Path("a.FBX")) == "fbx"
    assert format_for("GLB", Path("folder")) == "glb"
    with pytest.raises(TakeError, match="unknown export format 'obj'; formats: bvh, glb, fbx"):
        format_for("obj", Path("a.obj"))
    with pytest.raises(TakeError, match=r"--out a.glb does not end in .fbx"):
        format_for("fbx", Path("a.glb"))


def test_bvh_refuses_engine_options_and_writes(tmp_path):
    t = Take.create(tmp_path / "takes", production="p", scene="1", shot="1", fps=24, performers=["ada"])
    t.add_performer("ada")
    t.store.append("mocap/ada", t.store.origin_ns + np.arange(5) * 41_666_667, np.broadcast_to(rest_pose(), (5, 55, 7)))
    t.finalize()
    with pytest.raises(TakeError, match="--engine and --bone-names apply to glb and fbx"):
        export_take_as("bvh", ExportRequest(t.path, tmp_path / "bvh", bone_names="vrm0"))
    assert not (tmp_path / "bvh").exists()
    assert export_take_as(None, ExportRequest(t.path, tmp_path / "ada.bvh", "ada")) == [tmp_path / "ada.bvh"]
    assert (tmp_path / "ada.bvh").read_text().startswith("HIERARCHY")

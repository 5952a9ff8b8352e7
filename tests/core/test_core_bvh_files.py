"""Real BVH files (tests/data/mocap, sources in its README) against Blender's own importer:
import, the source record, and the project's export read back by Blender."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from bvh_helpers import REAL_FILES, assert_matches_blender, blender_truth, three_frames

from machinima.bvhimport import import_bvh, read_source_record
from machinima.export import export_take_bvh, performer_frames
from machinima.skeleton import BONES
from machinima.take import Take

pytest.importorskip("bpy")

EXPECTED = {  # what each file is, as its README says, and what the import must choose
    "bvhio_example.bvh": ("biovision", "in", "30"),
    "dme_cmu_example.bvh": ("cmu", "in", "120"),
    "pymo_walk_meredith.bvh": ("humanik", "in", "120"),
}


def test_every_real_file_is_tested():
    assert {p.name for p in REAL_FILES} == set(EXPECTED)


def _shared_mocap() -> list[Path]:
    """../shared/data/mocap beside the checkout (for a git worktree, beside its main checkout)."""
    repo = Path(__file__).resolve().parents[2]
    tops = [repo]
    dotgit = repo / ".git"
    if dotgit.is_file():  # "gitdir: <main>/.git/worktrees/<name>"
        tops.append(Path(dotgit.read_text().split(":", 1)[1].strip()).parents[2])
    return [d for d in (t.parent / "shared" / "data" / "mocap" for t in tops) if d.is_dir()]


def test_every_shared_file_has_its_copy_here():
    """Every BVH in ../shared/data/mocap is in tests/data/mocap byte for byte, so a fresh clone
    without ../shared tests the same files."""
    shared = _shared_mocap()
    if not shared:
        pytest.skip("no ../shared/data/mocap beside this checkout")
    here = {hashlib.sha256(p.read_bytes()).hexdigest() for p in REAL_FILES}
    files = sorted(p for d in shared for p in d.glob("*.bvh"))
    assert files
    for p in files:
        assert hashlib.sha256(p.read_bytes()).hexdigest() in here, f"{p} has no copy in tests/data/mocap"


@pytest.mark.parametrize("path", REAL_FILES, ids=lambda p: p.stem)
def test_real_file_imports_blender_exact_and_exports_the_same(path, tmp_path):
    # 1. import as a take; the bone map, units and fps chosen by themselves
    result = import_bvh(path, tmp_path / "takes", production="p", scene="s", shot="a", performer="ada")
    assert (result.resolved.spec.name, result.units) == EXPECTED[path.name][:2]
    take = Take.open(tmp_path / "takes" / result.take_id)
    assert take.manifest.fps == EXPECTED[path.name][2]
    _, stored = performer_frames(take, "ada")
    n = result.motion.frames
    assert stored.shape == (n, len(BONES), 7)  # fps snapped: one take frame per file frame

    # 2. each mapped joint where Blender's importer puts it, at the first, middle and last frame
    frames = three_frames(n)
    truth, rest = blender_truth(path, frames)
    assert_matches_blender(result, path, frames, poses=stored, truth=truth)

    # 3. the source record keeps the file's own skeleton: Blender's bones, rest heads, channels
    record = read_source_record(take.path, "ada")
    joints = record["skeleton"]
    assert [j["name"] for j in joints] == list(rest)
    heads = {j["name"]: np.zeros(3) for j in joints}
    for j in joints:
        heads[j["name"]] = np.asarray(j["offset"]) + (heads[j["parent"]] if j["parent"] else 0.0)
        assert np.allclose(heads[j["name"]], rest[j["name"]], atol=1e-4)
    declared = [line.split()[2:] for line in path.read_text().splitlines() if line.split()[:1] == ["CHANNELS"]]
    assert [j["channels"] for j in joints] == declared
    unmapped = {j["name"] for j in joints if j["canonical"] is None}
    assert unmapped == set(record["unmapped"])
    assert (take.path / record["file"]).read_bytes() == path.read_bytes()  # every joint's motion kept

    # 4. the project's export, read back by Blender, puts the same joints at the same places
    (out,) = export_take_bvh(take.path, tmp_path / "out.bvh", "ada")
    back, _ = blender_truth(out, frames)
    scale_to_file = 0.01 / result.scale  # the export is in centimetres
    for f in frames:
        for c, j in result.resolved.mapping.items():
            err = np.abs(back[f][BONES[c]] * scale_to_file - truth[f][result.motion.names[j]]).max()
            assert err < 1e-4, f"{path.name} frame {f}: exported {BONES[c]} is {err:.2e} file units off"

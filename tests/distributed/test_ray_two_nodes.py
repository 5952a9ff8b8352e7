"""The real composite step on a cluster of two raylet nodes started by ``ray start`` (the way a
studio starts one: a head, then a node joining it), driven by ``--ray HEAD:PORT``: the frames
are the local run's byte for byte, and the chunks ran on both nodes (chunks.jsonl names them)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from machinima.distributed import ledger

from ray_helpers import assert_same_output, record_off
from ray_nodes import TwoNodes

ray = pytest.importorskip("ray")
if shutil.which("ray") is None and not (Path(__import__("sys").executable).with_name("ray")).exists():
    pytest.skip("the `ray` command is not installed beside this Python", allow_module_level=True)


def test_composite_across_two_ray_start_nodes_is_the_local_run(tmp_path):
    from composite.pipeline import CompositeSettings, run_composite
    from composite.demo_scene import make_demo
    from composite.placement import PlacementSettings

    if ray.is_initialized():
        ray.shutdown()  # another module's local cluster: this test drives its own
    take, plate, pos = make_demo(tmp_path / "scene", width=96, height=64, frames=8)
    record_off(take)

    def settings(step_id):
        return CompositeSettings(plate=Path(plate), matte="green", placement=PlacementSettings(position=pos), step_id=step_id,
                                 video=False, workers=1)

    local = run_composite(take, settings("local"), progress=False)
    # a short temp dir: Ray's unix sockets live under it (a path over 107 bytes cannot be bound)
    import tempfile

    with tempfile.TemporaryDirectory(prefix="rt2n", dir="/tmp") as td, TwoNodes(Path(td)) as cluster:
        try:
            on_ray = run_composite(take, settings("two"), progress=False, ray=cluster.address, chunk_size=2)
            nodes = [n["NodeID"] for n in ray.nodes() if n.get("Alive")]
        finally:
            ray.shutdown()
    assert len(nodes) == 2
    assert on_ray.report.done == list(range(8)) and on_ray.report.chunks == 4
    assert_same_output(local.out_dir, on_ray.out_dir, ("rgb", "alpha"), 8)
    ends = [r for r in ledger.read(on_ray.out_dir, on_ray.report.job_id) if r["event"] == "end"]
    assert len(ends) == 4
    ran_on = {r["node_id"] for r in ends}
    assert ran_on == set(nodes), f"every chunk on one node: {ran_on}"

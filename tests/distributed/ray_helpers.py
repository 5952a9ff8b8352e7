"""Helpers for the Ray tests: a wrapper job that kills its worker once, mid-chunk, and
comparisons of two step folders (pixels, ledger keys, params.json apart from timestamps)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from machinima.distributed import FrameJob, Worklet


@pytest.fixture(scope="module")
def cluster():
    """``ray.init(num_cpus=2)`` once per test module (starting Ray costs seconds)."""
    ray = pytest.importorskip("ray")
    import sys

    os.environ["RAY_AUTH_MODE"] = "disabled"
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield ray
    ray.shutdown()


@dataclass
class KillOnce(FrameJob):
    """Runs ``inner`` but its worker process dies (``os._exit``) the first time a batch holds
    ``die_at``: a lost node, mid-chunk, after the chunk's earlier batches were recorded."""

    inner: FrameJob
    die_at: int
    marker: str

    def __post_init__(self) -> None:
        self.step = self.inner.step
        self.batch_size = self.inner.batch_size
        self.on_error = self.inner.on_error

    def load(self) -> Worklet:
        wl = self.inner.load()

        def process(batch):
            if self.die_at in batch and not Path(self.marker).exists():
                Path(self.marker).touch()
                os._exit(1)
            return wl.process(batch)

        return Worklet(process, wl.frame_inputs, wl.close)

    def cache_key(self):
        return None

    def resources(self):
        return self.inner.resources()


def frame_files(step_dir: Path, name: str) -> dict[str, bytes]:
    """Every file of one output (QOI, PNG or EXR, whatever the step wrote), name -> bytes."""
    return {p.name: p.read_bytes() for p in sorted((step_dir / name).iterdir()) if p.is_file() and not p.name.startswith(".")}


def ledger_lines(step_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (step_dir / "ledger.jsonl").read_text().splitlines()]


def params_apart_from_time(step_dir: Path) -> dict:
    """params.json without what differs between any two runs (timestamps, run seconds, the
    folder's own name and hash when two step ids are compared)."""
    doc = json.loads((step_dir / "params.json").read_text())
    for k in ("last_run", "step_id", "params_hash"):
        doc.pop(k, None)
    doc.get("params", {}).get("settings", {}).pop("step_id", None)
    (doc.get("disclosure_off") or {}).pop("file", None)  # the decision file sits in each (different) folder
    return _no_times(doc)


def assert_same_output(local_dir: Path, ray_dir: Path, names: tuple[str, ...], frames: int) -> None:
    """The Ray run wrote what the local run wrote: every frame of each output byte for byte,
    params.json apart from time, the same outputs per frame in the ledger."""
    for name in names:
        a, b = frame_files(local_dir, name), frame_files(ray_dir, name)
        assert len(a) == frames and a == b, name  # byte for byte
    assert params_apart_from_time(local_dir) == params_apart_from_time(ray_dir)
    assert {r["frame"]: r["outputs"] for r in ledger_lines(local_dir)} == {r["frame"]: r["outputs"] for r in ledger_lines(ray_dir)}


TIME_KEYS = {"updated", "at", "when", "checked_on"}


def _no_times(obj):
    if isinstance(obj, dict):
        return {k: _no_times(v) for k, v in obj.items() if k not in TIME_KEYS}
    if isinstance(obj, list):
        return [_no_times(v) for v in obj]
    return obj


def record_off(folder) -> None:
    """Disclosure off for a pixel-exact comparison (a watermark's manifest id is random per frame)."""
    from machinima.provenance import record_decision

    record_decision(folder, False, "pixel-exact Ray test: no watermark (its manifest id is random per frame)")

"""Post steps on a local Ray cluster: identical outputs, a killed worker's chunk is retried,
and no frame is processed twice."""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from machinima.distributed import run_on_ray
from machinima.imageseq import find_frame, read_image
from machinima.poststep import PostStep

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def cluster():
    os.environ["RAY_AUTH_MODE"] = "disabled"
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    # this test module is not an installed package: ship its functions to workers by value
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield
    ray.shutdown()


def make_step(out: str) -> PostStep:
    return PostStep(Path(out), "ray-test", {"gain": 3})


def paint(frame: int) -> np.ndarray:
    rng = np.random.default_rng(frame)
    return (rng.integers(0, 80, (16, 16, 3)) * 3).astype(np.uint8)


def make_process(log_dir: str, die_at: int | None = None):
    def process(batch: list[int]):
        out = []
        for f in batch:
            marker = Path(log_dir) / f"{f}.{os.getpid()}.{len(list(Path(log_dir).glob(f'{f}.*')))}"
            marker.touch()
            if die_at is not None and f == die_at and not (Path(log_dir) / "died").exists():
                (Path(log_dir) / "died").touch()
                os._exit(1)  # the worker process dies mid-chunk, as on a lost node
            out.append({"frames": paint(f)})
        return out

    return process


def test_identical_to_local_and_survives_a_killed_worker(cluster, tmp_path):
    frames = list(range(24))
    local_log = tmp_path / "local_log"
    local_log.mkdir()
    PostStep(tmp_path / "local", "ray-test", {"gain": 3}).run(frames, make_process(str(local_log)), progress=False)

    log = tmp_path / "log"
    log.mkdir()
    rep = run_on_ray(
        functools.partial(make_step, str(tmp_path / "ray")),
        functools.partial(make_process, str(log), 10),
        frames,
        address="local",
        chunk_size=4,
        progress=False,
    )
    assert (log / "died").exists()  # a worker really died
    assert sorted(rep.done) == frames
    for f in frames:
        a = read_image(find_frame(tmp_path / "local" / "frames", f))
        b = read_image(find_frame(tmp_path / "ray" / "frames", f))
        assert np.array_equal(a, b)
    # every frame processed once, except the one in flight when its worker died (twice) and those of
    # its chunk still queued for writing then (computed, not yet on disk: redone, never taken as done)
    counts = {f: len(list(log.glob(f"{f}.*"))) for f in frames}
    assert counts[10] == 2 and all(c == 1 for f, c in counts.items() if f not in (8, 9, 10)) and counts[8] <= 2 and counts[9] <= 2
    # a second run does nothing
    rep2 = run_on_ray(functools.partial(make_step, str(tmp_path / "ray")), functools.partial(make_process, str(log)), frames, address="local", progress=False)
    assert rep2.done == [] and sorted(rep2.skipped) == frames

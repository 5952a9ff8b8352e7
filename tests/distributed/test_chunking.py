"""The chunk size a Ray task gets comes from the step's measured time a frame (~2 s of work a
task, every worker >= 2 tasks), and the driver's time summary says Ray's overhead per task."""

from __future__ import annotations

import functools
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from machinima.distributed.chunking import auto_chunk_size, overhead, per_frame_seconds
from machinima.poststep import PostStep


def test_a_task_gets_about_two_seconds_of_work():
    assert auto_chunk_size(0.18 / 8, 10_000, 2) == 89  # the bench's composite: 22.5 ms a frame -> 2.0 s a task
    assert auto_chunk_size(0.5, 10_000, 2) == 4
    assert auto_chunk_size(3.0, 10_000, 2) == 1  # a frame longer than the target: one a task, never 0
    assert auto_chunk_size(0.01, 10_000, 2, target_s=1.0) == 100


def test_every_worker_gets_at_least_two_tasks():
    assert auto_chunk_size(0.001, 100, 2) == 25  # 2000 wanted; 100 frames / (2 workers x 2 tasks)
    assert auto_chunk_size(0.001, 100, 5) == 10
    assert auto_chunk_size(0.001, 3, 2) == 1  # fewer frames than tasks wanted: one a task
    assert auto_chunk_size(0.001, 0, 2) == 1
    assert auto_chunk_size(0.0, 40, 2) == 10  # nothing measured (a frame took no time): the cap


def test_per_frame_time_is_the_steps_work_not_the_models_load():
    res = [{"done": [0, 1], "compute_s": 0.3, "write_s": 0.1, "load_s": 5.0}, {"done": [], "skipped": [2], "compute_s": 0.0, "write_s": 0.0},
           {"done": [3, 4], "compute_s": 0.3, "write_s": 0.1, "load_s": 0.0}]
    assert per_frame_seconds(res) == pytest.approx(0.2)
    assert per_frame_seconds([{"done": [], "compute_s": 1.0, "write_s": 0.0}]) is None


def test_overhead_is_the_slots_time_not_spent_on_the_step():
    res = [{"compute_s": 1.8, "write_s": 0.2, "load_s": 0.0, "task_s": 2.05}] * 4
    o = overhead(res, wall_s=4.2, workers=2)  # 2 slots x 4.2 s = 8.4 s; work 8.0 s: 0.1 s a task
    assert o["tasks"] == 4 and o["idle_s"] == pytest.approx(0.1) and o["share"] == pytest.approx(0.05)
    assert o["in_task_s"] == pytest.approx(0.05) and o["task_s"] == pytest.approx(2.0)
    assert overhead([], 1.0, 2)["tasks"] == 0


def make_step(out: str) -> PostStep:
    return PostStep(Path(out), "chunk-test", {"v": 1})


def make_process():
    def process(batch: list[int]):
        time.sleep(0.05 * len(batch))  # 50 ms a frame of "work"
        return [{"frames": np.full((8, 8, 3), f % 251, np.uint8)} for f in batch]

    return process


def test_the_driver_sizes_chunks_from_probe_chunks_and_reports_the_overhead(cluster, tmp_path):
    from machinima.distributed import run_on_ray

    cluster.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # this test module is not installed
    frames = list(range(24))
    rep = run_on_ray(functools.partial(make_step, str(tmp_path / "a")), make_process, frames, address="local", progress=False)
    assert sorted(rep.done) == frames
    # 2 probe chunks of 2 frames (one a worker), then 20 frames sized by the probes' time: >= 50 ms a
    # frame (a cold worker's first frames cost more) -> at most 40 frames wanted, capped at 20 / (2 x 2) = 5
    assert rep.per_frame_s >= 0.05 and rep.chunk_size == auto_chunk_size(rep.per_frame_s, 20, 2) <= 5
    n = 2 + -(-20 // rep.chunk_size)
    assert rep.chunks == n and rep.overhead["tasks"] == n and rep.overhead["idle_s"] >= 0
    line = [s for s in rep.summary_lines() if "overhead per task" in s]
    assert line and f"{n} task(s) of {rep.chunk_size} frame(s)" in line[0], rep.summary_lines()
    # a rerun of the step (new frames) uses the time the first run recorded: no probe chunks
    rep2 = run_on_ray(functools.partial(make_step, str(tmp_path / "a")), make_process, list(range(24, 40)), address="local", progress=False)
    assert rep2.per_frame_s >= 0.05 and rep2.chunk_size == auto_chunk_size(rep2.per_frame_s, 16, 2) <= 4
    assert rep2.chunks == -(-16 // rep2.chunk_size)
    # a size given is kept
    rep3 = run_on_ray(functools.partial(make_step, str(tmp_path / "b")), make_process, frames, address="local", chunk_size=12, progress=False)
    assert rep3.chunks == 2 and rep3.chunk_size == 12 and rep3.per_frame_s is None

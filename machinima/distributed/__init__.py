"""Post steps on a Ray cluster: chunks of frames as Ray tasks, described by paths and params.

    job.py        FrameJob / StepSpec: what a task is told (paths + parameters, never pixels)
    cache.py      models loaded once per worker, load time reported apart
    ledger.py     chunks.jsonl: each chunk's attempts, where it ran, where the time went
    storage.py    the start-up check that every node sees the take's folder
    scheduler.py  run_job: the driver (one progress bar, per-worker time summary)
    tasks.py      run_tasks: whole tasks (a LoRA trial, a dream shot) that resume on their own
    chunking.py   the chunk size from the measured time a frame; Ray's overhead per task
    cli.py        the --ray [ADDRESS] option every step shares (a bare --ray means auto)
    limits.py     pin_threads: a task declaring N CPUs uses about N cores

``run_on_ray(make_step, make_process, frames, ...)`` keeps the older two-factory form.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Iterable

if TYPE_CHECKING:
    from ..poststep import Outputs, PostStep
    from .scheduler import JobReport

# names are imported when first used: ``machinima.distributed.cli`` (the --ray option) is read by
# every CLI module at ``machinima --help`` time and must not pull numpy and the post runner in
_LAZY = {"DistributedError": "errors", "CallableJob": "job", "FrameJob": "job", "StepSpec": "job", "Worklet": "job",
         "JobReport": "scheduler", "connect": "scheduler", "fixed_chunks": "scheduler", "run_job": "scheduler",
         "run_tasks": "tasks", "TasksReport": "tasks"}

__all__ = ["CallableJob", "DistributedError", "FrameJob", "JobReport", "StepSpec", "Worklet", "connect", "fixed_chunks",
           "run_job", "run_on_ray", "run_tasks", "TasksReport"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def run_on_ray(
    make_step: Callable[[], PostStep],
    make_process: Callable[[], Callable[[list[int]], list[Outputs]]],
    frames: Iterable[int],
    *,
    address: str | None = "auto",
    chunk_size: int | None = None,
    chunks: Callable[[list[int]], list[list[int]]] | None = None,
    batch_size: int = 1,
    num_gpus: float = 0,
    num_cpus: float = 1,
    max_retries: int = 3,
    max_in_flight: int | None = None,
    frame_inputs: Callable[[int], dict[str, Any]] | None = None,
    progress: bool = True,
    description: str = "post step on Ray",
    cache_key: str | None = None,
) -> JobReport:
    """``make_step()`` and ``make_process()`` are called inside the worker and must be picklable
    (module-level functions or ``functools.partial``); see ``run_job`` for the rest. ``cache_key``:
    a worker keeps ``make_process()``'s result for every chunk of a job with that key."""
    from .job import CallableJob
    from .scheduler import run_job

    job = CallableJob(make_step, make_process, frame_inputs, batch_size=batch_size, num_cpus=num_cpus, num_gpus=num_gpus, key=cache_key)
    return run_job(job, frames, address=address, chunk_size=chunk_size, chunks=chunks, max_retries=max_retries,
                   max_in_flight=max_in_flight, progress=progress, description=description)

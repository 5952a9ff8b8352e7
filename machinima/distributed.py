"""Run a post step's frames on a Ray cluster: chunks of frames as Ray tasks.

Every post step is a ``PostStep`` whose frames are pure functions of their inputs, written
atomically and recorded in the step's ledger. So a chunk is idempotent: a task that runs a
chunk again (because Ray retried it after its worker died) skips the frames already recorded
and redoes only the frame that was in flight. The take lives on storage every node sees.

    report = run_on_ray(make_step, make_process, frames, address="auto", chunk_size=8, num_gpus=1)

``make_step()`` and ``make_process()`` are called inside the worker (models load once per task,
not per frame) and must be picklable: module-level functions or ``functools.partial``.
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable, Iterable, Sequence

from .errors import MachinimaError
from .poststep import Outputs, PostStep, StepReport, _progress


class DistributedError(MachinimaError):
    """Ray is missing, the cluster cannot be reached, or a chunk failed after its retries."""


def _chunks(frames: Sequence[int], size: int) -> list[list[int]]:
    return [list(frames[i:i + size]) for i in range(0, len(frames), size)]


def _run_chunk(make_step: Callable[[], PostStep], make_process: Callable[[], Callable[[list[int]], list[Outputs]]],
               frames: list[int], batch_size: int, frame_inputs: Callable[[int], dict[str, Any]] | None) -> dict[str, Any]:
    step = make_step()
    rep = step.run(frames, make_process(), frame_inputs=frame_inputs, batch_size=batch_size, progress=False)
    return {"done": rep.done, "skipped": rep.skipped, "failed": rep.failed, "pid": os.getpid()}


def connect(address: str | None, *, num_cpus: int | None = None) -> Any:
    """``ray.init`` for an address (``auto``, ``ray://host:10001``, ``host:6379``) or a local
    cluster when ``address`` is ``local``/None. Token auth is off for local clusters."""
    try:
        import ray
    except ImportError:
        raise DistributedError("Ray is not installed", hint="pip install 'machinima[distributed]'") from None
    if ray.is_initialized():
        return ray
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    try:
        if address in (None, "local"):
            ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
        else:
            ray.init(address=address, log_to_driver=False, ignore_reinit_error=True)
    except Exception as exc:  # ConnectionError, RuntimeError... from Ray
        raise DistributedError(f"could not reach the Ray cluster at {address!r}: {exc}", hint="start it with `ray start --head` or pass --ray local") from None
    return ray


def run_on_ray(
    make_step: Callable[[], PostStep],
    make_process: Callable[[], Callable[[list[int]], list[Outputs]]],
    frames: Iterable[int],
    *,
    address: str | None = "auto",
    chunk_size: int = 8,
    chunks: Callable[[list[int]], list[list[int]]] | None = None,
    batch_size: int = 1,
    num_gpus: float = 0,
    num_cpus: float = 1,
    max_retries: int = 3,
    max_in_flight: int | None = None,
    frame_inputs: Callable[[int], dict[str, Any]] | None = None,
    progress: bool = True,
    description: str = "post step on Ray",
) -> StepReport:
    """Run every frame not yet done as chunks on Ray; returns the merged report.

    ``chunks(frames_to_do) -> [[frames], ...]`` groups frames another way than fixed-size
    chunks (one chunk per shot, when frames of a shot depend on each other).

    ``num_gpus``/``num_cpus`` are the resources one task declares; ``max_in_flight`` caps how
    many chunks are queued at once (default: twice the cluster's CPUs).
    """
    ray = connect(address)
    frames = list(frames)
    local_step = make_step()  # writes params.json once, and tells us what is already done
    keys = {f: local_step.frame_key(f, frame_inputs(f) if frame_inputs else None) for f in frames}
    todo = [f for f in frames if not local_step.is_done(f, keys[f])]
    report = StepReport(local_step.step_id, local_step.out_dir, skipped=[f for f in frames if f not in set(todo)])
    remote = ray.remote(num_gpus=num_gpus, num_cpus=num_cpus, max_retries=max_retries, retry_exceptions=False)(_run_chunk)
    cap = max_in_flight or max(2, int(ray.cluster_resources().get("CPU", 2)) * 2)
    pending: dict[Any, list[int]] = {}
    queue = chunks(todo) if chunks else _chunks(todo, chunk_size)
    bar = _progress(progress, description, len(frames), len(report.skipped))
    t0 = time.perf_counter()
    try:
        while queue or pending:
            while queue and len(pending) < cap:
                chunk = queue.pop(0)
                pending[remote.remote(make_step, make_process, chunk, batch_size, frame_inputs)] = chunk
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                chunk = pending.pop(ref)
                try:
                    res = ray.get(ref)
                except Exception as exc:
                    raise DistributedError(f"frames {chunk[0]}-{chunk[-1]} failed after {max_retries} retries: {exc}",
                                           hint="rerun the same command: finished frames are kept") from None
                # every frame of a chunk was still to do when the run began: one the task found
                # done was finished by an earlier attempt of the same chunk (a retried task)
                report.done += res["done"] + res["skipped"]
                report.failed.update({int(k): v for k, v in res["failed"].items()})
                bar.advance(len(chunk))
    finally:
        bar.close()
        report.seconds = time.perf_counter() - t0
    report.done.sort()
    return report

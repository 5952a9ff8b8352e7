"""Whole tasks on Ray, for work that is not frames: a LoRA trial, a dream shot, a segment.

Some post work has no frame to cut at: a LoRA sweep's trial trains for an hour and saves
checkpoints, a dream sequence feeds every frame into the next. Such a task is idempotent in its
own way (the trainer resumes from its checkpoint, the dream from its ledger), so Ray's retry of
a lost worker redoes only what that task had not saved. ``run_tasks`` sends each call (a
module-level function and its keyword arguments: paths and parameters), shows one progress bar
over the tasks, and reports each worker's time.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from ..poststep import _progress
from .errors import DistributedError
from .scheduler import connect


@dataclass
class TasksReport:
    results: list[Any] = field(default_factory=list)  # in the order of the calls
    seconds: float = 0.0
    workers: list[dict[str, Any]] = field(default_factory=list)

    def summary_lines(self) -> list[str]:
        return [f"{w['node']} pid {w['pid']}: {w['tasks']} task(s), queue {w['queue_s']:.2f} s, run {w['run_s']:.2f} s" for w in self.workers]


def _whole_task(fn: Callable[..., Any], kwargs: dict[str, Any], submitted: float) -> dict[str, Any]:
    import ray

    t0 = time.time()
    result = fn(**kwargs)
    return {"result": result, "pid": os.getpid(), "node": ray.util.get_node_ip_address(), "queue_s": max(0.0, t0 - submitted),
            "run_s": time.time() - t0}


def run_tasks(fn: Callable[..., Any], calls: Sequence[dict[str, Any]], *, address: str | None = "auto",
              resources: dict[str, float] | None = None, labels: Sequence[str] | None = None, max_retries: int = 3,
              progress: bool = True, description: str = "tasks on Ray", probe: str | Path | None = None) -> TasksReport:
    """``fn(**call)`` for every call as one Ray task each; results in the calls' order.
    ``probe``: a folder every node must see (the output's), checked before any task starts."""
    ray = connect(address)
    if probe is not None:
        from .storage import probe_shared

        probe_shared(ray, probe)
    remote = ray.remote(max_retries=max_retries, retry_exceptions=False, **(resources or {"num_cpus": 1}))(_whole_task)
    fn_ref = ray.put(fn)
    refs = {remote.remote(fn_ref, dict(c), time.time()): i for i, c in enumerate(calls)}
    report = TasksReport(results=[None] * len(calls))
    bar = _progress(progress, description, len(calls), 0)
    per_worker: dict[tuple[str, int], dict[str, Any]] = {}
    t0 = time.perf_counter()
    try:
        while refs:
            ready, _ = ray.wait(list(refs), num_returns=1)
            for ref in ready:
                i = refs.pop(ref)
                try:
                    r = ray.get(ref)
                except Exception as exc:
                    msg = str(exc).strip().splitlines()
                    what = labels[i] if labels else f"task {i + 1}"
                    raise DistributedError(f"{what} failed after {max_retries} retries: {msg[-1][:300] if msg else type(exc).__name__}",
                                           hint="rerun the same command: finished tasks are kept") from None
                report.results[i] = r["result"]
                w = per_worker.setdefault((r["node"], r["pid"]), {"node": r["node"], "pid": r["pid"], "tasks": 0, "queue_s": 0.0, "run_s": 0.0})
                w["tasks"] += 1
                w["queue_s"] += r["queue_s"]
                w["run_s"] += r["run_s"]
                bar.advance(1)
    finally:
        bar.close()
        report.seconds = time.perf_counter() - t0
    report.workers = sorted(per_worker.values(), key=lambda w: (w["node"], w["pid"]))
    return report

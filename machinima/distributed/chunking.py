"""How many frames a Ray task gets: enough work that Ray's fixed cost per task (submit, schedule,
ship the result, the ledger lines) is a small share of it, few enough that every worker still
gets several tasks (a slow last chunk must not leave the others idle, and a lost worker must
cost little).

Measured, not guessed: a fixed default (8 frames) was 0.18 s of composite work at 1080p, of which
Ray's cost per task was 23%. The scheduler measures the step's per-frame time (an earlier run's
``chunks.jsonl``, else a first wave of small probe chunks) and sizes the rest with
``auto_chunk_size``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable

from . import ledger

TARGET_TASK_S = 2.0  # ~2 s of work a task: at ~40-100 ms of Ray cost a task, <= 5% of it
MIN_TASKS_PER_WORKER = 2
PROBE_FRAMES = 2  # frames of each probe chunk when nothing was measured before


def auto_chunk_size(per_frame_s: float, frames: int, workers: int, *, target_s: float = TARGET_TASK_S,
                    min_tasks_per_worker: int = MIN_TASKS_PER_WORKER) -> int:
    """Frames a task: ``target_s`` of work at ``per_frame_s`` a frame, capped so ``frames``
    split into at least ``min_tasks_per_worker`` tasks for each of ``workers``; at least 1."""
    if frames <= 0:
        return 1
    want = math.ceil(target_s / per_frame_s) if per_frame_s > 0 else frames
    cap = frames // max(1, workers * min_tasks_per_worker)
    return max(1, min(want, cap))


def per_frame_seconds(results: Iterable[dict[str, Any]]) -> float | None:
    """Seconds of the step's own work (compute + write, not the model's load) per frame, over
    task results or ``chunks.jsonl`` end lines; None when no frame was done."""
    work = n = 0.0
    for r in results:
        k = len(r.get("done") or [])
        if k:
            work += float(r.get("compute_s", 0.0)) + float(r.get("write_s", 0.0))
            n += k
    return work / n if n else None


def measured_before(step_dir: str | Path) -> float | None:
    """The per-frame time an earlier Ray run of this step recorded (its ``chunks.jsonl``)."""
    return per_frame_seconds(r for r in ledger.read(step_dir) if r.get("event") == "end")


def overhead(results: list[dict[str, Any]], wall_s: float, workers: int) -> dict[str, float]:
    """Where a job's time went apart from the step's work, per task:

    - ``in_task_s``: inside the task but not the step's work (thread caps, ledger lines, the
      step reopened), from each task's own clock;
    - ``idle_s``: the worker slots' time not spent in the step's work nor loading
      (``wall * workers - busy``) divided by the tasks: Ray's submit/schedule/return cost, the
      driver's loop, and the tail when the last tasks leave slots empty;
    - ``share``: ``idle_s`` over the mean task's work (the issue's "overhead per task")."""
    tasks = len(results)
    if not tasks:
        return {"tasks": 0, "in_task_s": 0.0, "idle_s": 0.0, "share": 0.0, "task_s": 0.0}
    work = sum(float(r["compute_s"]) + float(r["write_s"]) for r in results)
    load = sum(float(r.get("load_s", 0.0)) for r in results)
    in_task = sum(max(0.0, float(r.get("task_s", 0.0)) - float(r["compute_s"]) - float(r["write_s"]) - float(r.get("load_s", 0.0)))
                  for r in results)
    idle = max(0.0, wall_s * max(1, workers) - work - load)
    task_s = work / tasks
    return {"tasks": tasks, "in_task_s": in_task / tasks, "idle_s": idle / tasks, "share": (idle / tasks) / task_s if task_s > 0 else 0.0,
            "task_s": task_s}

"""The driver side: chunks of a ``FrameJob`` as Ray tasks, one progress bar, a time summary.

Every post step is a ``PostStep`` whose frames are pure functions of their inputs, written
atomically and recorded in the step's ledger. So a chunk is idempotent: a task that runs a
chunk again (Ray retried it after its worker died) skips the frames already recorded and redoes
only what was in flight. ``chunks.jsonl`` (``ledger.py``) records each attempt.

The driver does not wait on whole chunks for its progress: it follows the step's ledger, which
every worker appends to, so the bar moves frame by frame across all workers.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from ..poststep import StepReport, _progress
from . import chunking, ledger
from .errors import DistributedError
from .job import FrameJob


@dataclass
class JobReport(StepReport):
    """A step report plus where the time went, per worker (queue, load, compute, write)."""

    job_id: str = ""
    chunks: int = 0
    redone_chunks: list[int] = field(default_factory=list)
    workers: list[dict[str, Any]] = field(default_factory=list)
    extras: list[dict[str, Any]] = field(default_factory=list)  # each chunk's Worklet.extra()
    chunk_size: int = 0  # frames a task (after the probe chunks, when it was measured)
    per_frame_s: float | None = None  # the step's work a frame that sized the chunks (None: given, not measured)
    overhead: dict[str, float] = field(default_factory=dict)  # chunking.overhead: Ray's cost per task
    step: Any = field(default=None, repr=False)  # the step reopened after the job: its ledger holds the workers' frames

    def summary_lines(self) -> list[str]:
        """One line per worker: tasks, frames, seconds queued / loading / computing / writing."""
        out = []
        for w in self.workers:
            out.append(f"{w['node']} pid {w['pid']}: {w['tasks']} task(s), {w['frames']} frame(s); queue {w['queue_s']:.2f} s, "
                       f"load {w['load_s']:.2f} s, compute {w['compute_s']:.2f} s, write {w['write_s']:.2f} s")
        o = self.overhead
        if o.get("tasks"):
            how = f"{self.per_frame_s * 1000:.0f} ms a frame measured" if self.per_frame_s else "size given"
            out.append(f"{o['tasks']} task(s) of {self.chunk_size or '?'} frame(s) ({how}): overhead per task {o['idle_s'] * 1000:.0f} ms "
                       f"({o['share']:.0%} of a task's {o['task_s']:.2f} s of work), {o['in_task_s'] * 1000:.0f} ms of it inside the task")
        if self.redone_chunks:
            out.append(f"chunks redone after a lost worker: {self.redone_chunks}")
        return out


def live_local_cluster(temp_dir: str | None = None, timeout_s: float = 0.5) -> str | None:
    """The GCS address of a Ray cluster this machine runs (``ray start --head`` wrote it to
    ``/tmp/ray/ray_current_cluster``) if something answers there; None for none or a dead one
    (a killed run leaves the file, and ``ray.init()`` would then hang joining it)."""
    import socket

    path = Path(temp_dir or "/tmp/ray") / "ray_current_cluster"
    try:
        addr = path.read_text(encoding="utf-8").strip()
        host, port = addr.rsplit(":", 1)
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            return addr
    except (OSError, ValueError):
        return None


def resolve_address(address: str | None) -> str | None:
    """What ``--ray`` means: None/``local``: a new local cluster (None); ``auto`` (a bare
    ``--ray``): RAY_ADDRESS if set, else a live cluster of this machine, else a new local one;
    anything else is an address for ``ray.init``."""
    if address in (None, "", "local"):
        return None
    if address == "auto":
        env = os.environ.get("RAY_ADDRESS", "").strip()
        if env:
            return env
        return live_local_cluster()
    return address


def connect(address: str | None, *, num_cpus: int | None = None) -> Any:
    """``ray.init`` for an address (``host:6379``, ``ray://host:10001``), ``auto`` (see
    ``resolve_address``) or a new local cluster when ``address`` is ``local``/None. Token auth
    is off for local clusters."""
    try:
        import ray
    except ImportError:
        raise DistributedError("Ray is not installed", hint="pip install 'machinima[distributed]'") from None
    if ray.is_initialized():
        return ray
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    target = resolve_address(address)
    try:
        if target is None:
            # address="local": always a new cluster of this machine, never one a killed run left
            # behind in /tmp/ray/ray_current_cluster (ray.init() without an address joins that one)
            ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
        else:
            ray.init(address=target, log_to_driver=False, ignore_reinit_error=True)
    except Exception as exc:  # ConnectionError, RuntimeError... from Ray
        raise DistributedError(f"could not reach the Ray cluster at {target!r}: {str(exc).splitlines()[0][:200]}",
                               hint="start it with `ray start --head`, or pass a bare --ray (a local cluster when none runs)") from None
    return ray


def _chunk_task(job: FrameJob, job_id: str, chunk_id: int, frames: list[int], submitted: float) -> dict[str, Any]:
    """Runs on a worker: one chunk through the step's own frame loop."""
    import ray

    from .cache import cached
    from .limits import pin_threads

    t_start = time.time()
    pin_threads(job.resources().get("num_cpus", 1))  # a 1-CPU task uses about 1 core (OpenCV, torch, frame I/O)
    node = ray.util.get_node_ip_address()
    node_id = ray.get_runtime_context().get_node_id()  # two raylets on one host share an IP, not an id
    pid = os.getpid()
    step_dir = job.step.out_dir
    ledger.append(step_dir, {"event": "start", "job": job_id, "chunk": chunk_id, "frames": [frames[0], frames[-1]], "n": len(frames),
                             "pid": pid, "node": node, "node_id": node_id, "t": round(t_start, 3)})
    wl, load_s = cached(job.cache_key(), job.load)
    compute = [0.0]

    def timed(batch: list[int]):
        t0 = time.perf_counter()
        try:
            return wl.process(batch)
        finally:
            compute[0] += time.perf_counter() - t0

    t0 = time.perf_counter()
    try:
        rep = job.open_step().run(frames, timed, frame_inputs=wl.frame_inputs, batch_size=job.batch_size, progress=False, on_error=job.on_error)
    finally:
        if job.cache_key() is None and wl.close is not None:
            wl.close()
    run_s = time.perf_counter() - t0
    res = {"chunk": chunk_id, "done": rep.done, "skipped": rep.skipped, "failed": {str(k): v for k, v in rep.failed.items()},
           "pid": pid, "node": node, "node_id": node_id, "t_end": round(time.time(), 3), "queue_s": round(max(0.0, t_start - submitted), 4), "load_s": round(load_s, 4),
           "compute_s": round(compute[0], 4), "write_s": round(max(0.0, run_s - compute[0]), 4)}
    res["task_s"] = round(time.time() - t_start, 4)
    ledger.append(step_dir, {"event": "end", "job": job_id, **res})
    res["extra"] = wl.extra() if wl.extra is not None else {}
    return res


def _slots(cluster: dict[str, float], res: dict[str, Any]) -> int:
    """Tasks of these resources the cluster runs at once."""
    n = int(cluster.get("CPU", 2) / max(float(res.get("num_cpus", 1) or 0), 0.01))
    if float(res.get("num_gpus", 0) or 0) > 0:
        n = min(n, int(cluster.get("GPU", 0) / float(res["num_gpus"])))
    return max(1, n)


def fixed_chunks(frames: Sequence[int], size: int) -> list[list[int]]:
    return [list(frames[i:i + size]) for i in range(0, len(frames), max(1, size))]


class _LedgerFollower:
    """Counts frames of this job newly recorded in the step's ledger (appended by any worker)."""

    def __init__(self, step_dir: str, wanted: set[int]) -> None:
        self.path = Path(step_dir) / "ledger.jsonl"
        self.offset = self.path.stat().st_size if self.path.exists() else 0
        self.wanted = wanted
        self.seen: set[int] = set()

    def poll(self) -> int:
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self.offset)
                data = fh.read()
        except OSError:
            return 0
        end = data.rfind(b"\n") + 1  # a line still being written is read next time
        self.offset += end
        new = 0
        for line in data[:end].splitlines():
            try:
                f = int(json.loads(line)["frame"])
            except (ValueError, KeyError, TypeError):
                continue
            if f in self.wanted and f not in self.seen:
                self.seen.add(f)
                new += 1
        return new


def run_job(
    job: FrameJob,
    frames: Iterable[int],
    *,
    address: str | None = "auto",
    chunk_size: int | None = None,
    chunks: Callable[[list[int]], list[list[int]]] | None = None,
    frame_inputs: Callable[[int], dict[str, Any]] | None = None,
    max_retries: int = 3,
    max_in_flight: int | None = None,
    probe: bool = True,
    progress: bool = True,
    description: str | None = None,
) -> JobReport:
    """Run every frame of ``frames`` not yet done as chunks on Ray; returns the merged report.

    ``frame_inputs`` (the driver's own, never shipped) lets the driver leave finished frames out
    before submitting; without it every frame is submitted and the workers skip finished ones.
    ``chunk_size`` None (the default): sized from the step's measured time a frame
    (``chunking``: ~2 s of work a task, every worker >= 2 tasks).
    ``chunks(frames_to_do) -> [[frames], ...]`` groups frames another way than fixed-size
    chunks (one chunk per shot, when frames of a shot depend on each other).
    """
    ray = connect(address)
    frames = list(frames)
    step = job.open_step()  # writes params.json once, and tells us what is already done
    if probe:
        from .storage import probe_shared

        probe_shared(ray, step.out_dir)
    fi = frame_inputs or getattr(job, "frame_inputs_fn", None)
    keys = {f: step.frame_key(f, fi(f) if fi else None) for f in frames}  # a wrong guess only costs a task that skips
    todo = [f for f in frames if not step.is_done(f, keys[f])]
    todo_set = set(todo)
    job_id = secrets.token_hex(6)
    report = JobReport(step.step_id, step.out_dir, skipped=[f for f in frames if f not in todo_set], job_id=job_id)
    res = dict(job.resources())
    remote = ray.remote(max_retries=max_retries, retry_exceptions=False, **res)(_chunk_task)
    slots = _slots(ray.cluster_resources(), res)
    cap = max_in_flight or max(2, slots * 2)
    rest: list[int] = []  # frames waiting for the probe chunks' measured time to size their chunks
    if chunks:
        queue = chunks(todo)
    elif chunk_size:
        queue, report.chunk_size = fixed_chunks(todo, chunk_size), chunk_size
    else:
        report.per_frame_s = chunking.measured_before(step.out_dir)
        if report.per_frame_s is not None or len(todo) <= chunking.PROBE_FRAMES * slots:
            report.chunk_size = chunking.auto_chunk_size(report.per_frame_s, len(todo), slots) if report.per_frame_s else chunking.PROBE_FRAMES
            queue = fixed_chunks(todo, report.chunk_size)
        else:  # one small chunk per worker first; their time sizes the rest
            n = chunking.PROBE_FRAMES * slots
            queue, rest = fixed_chunks(todo[:n], chunking.PROBE_FRAMES), todo[n:]
    results: list[dict[str, Any]] = []
    pending: dict[Any, tuple[int, list[int]]] = {}
    bar = _progress(progress, description or job.description(), len(frames), len(report.skipped))
    follow = _LedgerFollower(str(step.out_dir), todo_set)
    shown = 0
    per_worker: dict[tuple[str, int], dict[str, Any]] = {}
    next_id = 0
    t0 = time.perf_counter()
    job_ref = ray.put(job)  # one copy in the object store, not one per task
    try:
        while queue or pending or rest:
            if rest and (chunking.per_frame_seconds(results) is not None or not (pending or queue)):
                report.per_frame_s = chunking.per_frame_seconds(results)
                report.chunk_size = chunking.auto_chunk_size(report.per_frame_s, len(rest), slots) if report.per_frame_s \
                    else min(8, chunking.auto_chunk_size(0.0, len(rest), slots))
                queue += fixed_chunks(rest, report.chunk_size)
                rest = []
            while queue and len(pending) < cap:
                chunk = queue.pop(0)
                pending[remote.remote(job_ref, job_id, next_id, chunk, time.time())] = (next_id, chunk)
                next_id += 1
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
            n = follow.poll()
            if n:
                bar.advance(n)
                shown += n
            for ref in ready:
                cid, chunk = pending.pop(ref)
                try:
                    r = ray.get(ref)
                except Exception as exc:
                    msg = str(exc).strip().splitlines()
                    raise DistributedError(f"frames {chunk[0]}-{chunk[-1]} failed after {max_retries} retries: {msg[-1][:300] if msg else type(exc).__name__}",
                                           hint="rerun the same command: finished frames are kept") from None
                # every frame of a chunk was still to do when the run began: one the task found
                # done was finished by an earlier attempt of the same chunk (a retried task)
                report.done += r["done"] + r["skipped"]
                results.append(r)
                report.failed.update({int(k): v for k, v in r["failed"].items()})
                if r.get("extra"):
                    report.extras.append(r["extra"])
                w = per_worker.setdefault((r["node"], r["pid"]), {"node": r["node"], "node_id": r.get("node_id", ""), "pid": r["pid"], "tasks": 0, "frames": 0,
                                                                  "queue_s": 0.0, "load_s": 0.0, "compute_s": 0.0, "write_s": 0.0})
                w["tasks"] += 1
                w["frames"] += len(r["done"])
                for k in ("queue_s", "load_s", "compute_s", "write_s"):
                    w[k] += r[k]
        catch_up = len(report.done) + len(report.failed) - shown
        if catch_up > 0:
            bar.advance(catch_up)
    finally:
        bar.close()
        report.seconds = time.perf_counter() - t0
    report.done.sort()
    report.chunks = next_id
    report.overhead = chunking.overhead(results, report.seconds, min(slots, len(results)))
    report.workers = sorted(per_worker.values(), key=lambda w: (w["node"], w["pid"]))
    report.redone_chunks = sorted(c for c, a in ledger.attempts(step.out_dir, job_id).items() if a["starts"] > 1)
    # params.json last written by the driver: its versions and counts, not whichever worker ended last
    final = job.open_step()
    final.write_params(frames_total=len(frames), frames_done=len(final.frames_done()),
                       last_run={"done": len(report.done), "skipped": len(report.skipped), "failed": len(report.failed),
                                 "seconds": round(report.seconds, 3), "ray": {"job": job_id, "chunks": report.chunks, "redone": report.redone_chunks}})
    report.step = final
    return report

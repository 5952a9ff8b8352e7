"""``machinima stylize run TAKE --look L --ray ADDRESS``: one Ray task per segment (shot or cut).

Frames inside a segment depend on each other (keyframe init chain, colour window, propagation),
segments do not: each task runs the ordinary runner on its segment's frame range, so keys,
seeds and pixels are the same as a local run, and a retried task skips what it had finished.
The take must sit on storage every node sees; models load once per task from local paths.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from machinima.poststep import StepReport
from machinima.take import Take

from .engines import PRESETS, resolve_runtime
from .look import Look
from .pipeline import StylizePipeline
from .runner import OUTPUT, RunResult, _slug, select_frames
from .sources import FolderSource, PassSource


class _PlanOnly:
    """Enough of an engine to plan (frames per call) without loading any model."""

    def __init__(self, look: Look) -> None:
        self.batch = 4 if look.engine == "classical" else int(resolve_runtime(look.runtime).get("batch") or PRESETS["cpu"]["batch"])


def _run_segment(take: str, look_doc: dict[str, Any], first: int, last: int, step_id: str, input_folder: str | None) -> dict[str, Any]:
    from .runner import stylize_take

    look = Look.from_doc(look_doc)
    res = stylize_take(take, look, frames=(first, last), step_id=step_id, input_folder=input_folder, progress=False, video=False)
    return {"done": res.report.done, "skipped": res.report.skipped, "failed": res.report.failed}


def stylize_take_on_ray(take: str | Path, look: Look, *, address: str | None = "auto", frames: tuple[int, int] | None = None,
                        shots: Sequence[str] = (), step_id: str | None = None, input_folder: str | Path | None = None,
                        num_gpus: float = 0, num_cpus: float = 1, max_retries: int = 3, video: bool = True) -> RunResult:
    import time

    from machinima.distributed import DistributedError, connect
    from machinima.imageseq import list_frames, read_image
    from machinima.poststep import write_video  # the step movie, disclosed like its frames
    from machinima.sparse import describe, movie_frames, movie_note

    from .motion import source_step

    # 1. plan the segments here (no model needed)
    t = Take.open(take)
    source = FolderSource(input_folder, fps=t.manifest.fps) if input_folder else PassSource(t.passes_dir())
    chosen = select_frames(source, look, frames=frames, shots=shots)
    plan = StylizePipeline(look, _PlanOnly(look), source, frames=chosen).plan()  # type: ignore[arg-type]
    sid = step_id or f"stylize-{_slug(look.name)}"
    # 2. one task per segment
    ray = connect(address)
    remote = ray.remote(num_gpus=num_gpus, num_cpus=num_cpus, max_retries=max_retries)(_run_segment)
    doc = look.to_doc()
    refs = {remote.remote(str(t.path), doc, seg[0], seg[-1], sid, str(input_folder) if input_folder else None): seg for seg in plan.segments}
    report = StepReport(sid, t.post_dir(sid))
    t0 = time.perf_counter()
    while refs:
        ready, _ = ray.wait(list(refs), num_returns=1)
        for ref in ready:
            seg = refs.pop(ref)
            try:
                r = ray.get(ref)
            except Exception as exc:
                raise DistributedError(f"frames {seg[0]}-{seg[-1]} failed: {str(exc).splitlines()[-1][:300]}",
                                       hint="rerun the same command: finished frames are kept") from None
            report.done += r["done"]
            report.skipped += r["skipped"]
            report.failed.update({int(k): v for k, v in r["failed"].items()})
    report.seconds = time.perf_counter() - t0
    report.done.sort()
    # 3. the video, once every frame is there
    vid = None
    out_dir = t.post_dir(sid)
    if video:
        files = list_frames(out_dir / OUTPUT)
        if all(f in files for f in plan.frames):
            step = source_step(source.frames)  # passes every Nth frame: each held until the next, as a local run does
            vid = write_video(out_dir / f"{sid}.mp4", (read_image(files[f]) for f in movie_frames(plan.frames, step)), fps=t.manifest.fps)
    have = list(source.frames)
    note = (movie_note(have) if video and source_step(have) > 1 else None) or describe(have)
    return RunResult(report, out_dir, vid, plan.summary(), {"segments": len(plan.segments)}, frames_note=note)

"""``machinima animate TAKE --look L --ray ADDRESS``: one Ray task per segment (shot).

A segment's frames are denoised together in sliding windows, so a segment is the unit of work;
segments do not depend on each other. Each task runs the ordinary ``animate_take`` with
``only=[its segment]``: the plan, the frame keys and params.json are those of the whole take,
so pixels and provenance are the same as a local run. The engine (UNet, motion adapter, VAE,
ControlNets) loads once per worker (``machinima.distributed.cache``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable

from .animatediff import OUTPUT, AnimateResult, MotionSpec, check_look, plan_segments
from .look import Look


def _segment_task(take: str, look: Look, motion: MotionSpec, frames: tuple[int, int] | None, step_id: str | None,
                  input_folder: str | None, seg: tuple[int, int], engine_factory: Callable[[], Any] | None) -> dict[str, Any]:
    from machinima.distributed.cache import cached
    from machinima.poststep import stable_hash

    from .animatediff import AnimateDiffEngine, animate_take

    key = stable_hash({"look": look.global_params(), "motion": motion.describe(), "factory": repr(engine_factory) if engine_factory else None})
    engine, load_s = cached(key, engine_factory or (lambda: AnimateDiffEngine.from_look(look, motion, None)))
    t0 = time.perf_counter()
    res = animate_take(take, look, motion, frames=frames, step_id=step_id, input_folder=input_folder, engine=engine, progress=False,
                       video=False, only=[seg])
    return {"done": res.report.done, "skipped": res.report.skipped, "load_s": load_s, "run_s": time.perf_counter() - t0,
            "out_dir": str(res.out_dir)}


def animate_take_on_ray(take: str | Path, look: Look, motion: MotionSpec, *, address: str | None = "auto", frames: tuple[int, int] | None = None,
                        step_id: str | None = None, input_folder: str | Path | None = None, num_gpus: float = 0, video: bool = True,
                        progress: bool = True, engine_factory: Callable[[], Any] | None = None) -> AnimateResult:
    """``animate_take`` with its segments as Ray tasks; ``engine_factory`` (picklable) replaces
    loading the look's models on each worker (tests and benches build tiny ones)."""
    from machinima.distributed import run_tasks
    from machinima.imageseq import list_frames, read_image
    from machinima.poststep import StepReport, write_video
    from machinima.take import Take

    from .errors import SourceError
    from .sources import FolderSource, PassSource

    check_look(look, motion)
    if motion.looped:
        raise SourceError("--looped blends the last frames into the first: the take is one segment, nothing to spread over Ray",
                          hint="run it without --ray")
    t = Take.open(take)
    source = FolderSource(input_folder, fps=t.manifest.fps) if input_folder else PassSource(t.passes_dir())
    chosen = [f for f in source.frames if frames is None or frames[0] <= f <= frames[1]]
    if not chosen:
        raise SourceError("no frames selected", hint=f"the source has frames {source.frames[0]}..{source.frames[-1]}")
    segs = plan_segments(look, chosen)
    calls = [{"take": str(t.path.resolve()), "look": look, "motion": motion, "frames": frames, "step_id": step_id,
              "input_folder": str(Path(input_folder).resolve()) if input_folder else None, "seg": (s.frames[0], s.frames[-1]),
              "engine_factory": engine_factory} for s in segs]
    rep = run_tasks(_segment_task, calls, address=address, resources={"num_cpus": 1, **({"num_gpus": num_gpus} if num_gpus else {})},
                    labels=[f"segment {c['seg'][0]}-{c['seg'][1]}" for c in calls], progress=progress,
                    description=f"animatediff {look.name}: {len(segs)} segment(s) on Ray", probe=t.post_dir())
    out_dir = Path(rep.results[0]["out_dir"])
    report = StepReport(out_dir.name, out_dir, done=sorted(f for r in rep.results for f in r["done"]),
                        skipped=sorted(f for r in rep.results for f in r["skipped"]), seconds=rep.seconds)
    # params.json: each task counted the frames its own ledger view held; the driver counts all
    pj = out_dir / "params.json"
    doc = json.loads(pj.read_text(encoding="utf-8"))
    files = list_frames(out_dir / OUTPUT)
    from machinima.fsutil import atomic_write_json

    doc.update(frames_done=len([f for f in chosen if f in files]),
               last_run={"done": len(report.done), "skipped": len(report.skipped), "seconds": round(report.seconds, 3),
                         "ray": {"segments": len(segs), "load_s": round(sum(r["load_s"] for r in rep.results), 3)}})
    atomic_write_json(pj, doc)
    vid = None
    if video and all(f in files for f in chosen):
        vid = write_video(out_dir / f"{out_dir.name}.mp4", (read_image(files[f]) for f in sorted(files)), fps=t.manifest.fps)
    summary = [{"frames": [s.frames[0], s.frames[-1]], "shot": s.shot, "seed": s.seed, "strength": s.strength} for s in segs]
    return AnimateResult(report, out_dir, vid, summary)

"""A take through AnimateDiff: segments -> ``machinima.poststep.PostStep`` (resumable, Ctrl-C
stops after the denoising step in hand) -> ``<step-id>.mp4``. The same function makes a whole
local run and one Ray task's segments."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from machinima.poststep import StopFlag

from .animate_engine import AnimateDiffEngine
from .animate_look import MotionSpec, check_look
from .animate_segments import Segment, control_images, plan_segments
from .errors import SourceError
from .look import Look
from .sources import Source

STEP_KIND = "animatediff"
OUTPUT = "frames"


@dataclass
class AnimateResult:
    report: Any
    out_dir: Path
    video: Path | None
    segments: list[dict[str, Any]]
    frames_note: str | None = None  # passes every Nth frame or a range: what was done with the others



def animate_source(source: Source, look: Look, motion: MotionSpec, engine: AnimateDiffEngine, out_dir: str | Path, *,
                   frames: Sequence[int] | None = None, progress: bool = True, video: bool = True,
                   fps: str | None = None, only: Sequence[tuple[int, int]] | None = None) -> AnimateResult:
    """Steps 3-5 for any source: segments -> PostStep (resumable) -> mp4. ``only``: make just
    the segments with these (first, last) frames; the plan, keys and params.json stay those of
    all ``frames`` (one Ray task per segment writes what a whole local run writes)."""
    from machinima.imageseq import read_image
    from machinima.poststep import PostStep, StepReport, stable_hash, write_video  # write_video: disclosed like the frames
    from machinima.sparse import describe, movie_frames, movie_note

    from .motion import source_step

    out_dir = Path(out_dir)
    chosen = list(frames if frames is not None else source.frames)
    if not chosen:
        raise SourceError("no frames selected")
    # 3. segments, and the key of each frame: everything in its segment shapes it
    sstep = source_step(source.frames)  # passes every Nth frame: the frames there are, N apart, make one video
    segs = plan_segments(look, chosen, sstep)
    names = sorted({n for c in look.controls for n in ([c.kind] if c.kind in ("depth", "pose", "normal") else
                                                        [f"mask/{c.options.get('mask', '')}"] if c.kind == "mask" else [])})
    seg_of: dict[int, Segment] = {}
    key_of: dict[int, dict[str, Any]] = {}
    for s in segs:
        k = {"segment": [s.frames[0], s.frames[-1]], "seed": s.seed, "strength": s.strength,
             "inputs": stable_hash([source.fingerprint(f, names) for f in s.frames]),
             "prompts": stable_hash([look.prompt_for(f) for f in s.frames])}
        for f in s.frames:
            seg_of[f], key_of[f] = s, k
    described = engine.describe()
    params = {"look": look.global_params(), "animatediff": motion.describe(), "engine": described}
    summary = [{"frames": [s.frames[0], s.frames[-1]], "shot": s.shot, "seed": s.seed, "strength": s.strength,
                "windows_per_step": round(motion.windows().windows_per_step(len(s.frames)), 2)} for s in segs]
    step = PostStep(out_dir, STEP_KIND, params, inputs={"source": source.describe(), "segments": summary, "look_name": look.name},
                    notes=["AnimateDiff video-to-video in sliding context windows blended at every denoising step; "
                           "a segment (shot) is made whole: Ctrl-C stops after the denoising step in hand and "
                           "the next run redoes that segment"])
    # 4. segment by segment: skip finished ones, make the rest whole, record each frame
    report = StepReport(step.step_id, out_dir)
    keys = {f: step.frame_key(f, key_of[f]) for f in chosen}
    t_start = time.perf_counter()
    try:
        with _StopFlag() as stop, _Bar(progress, f"animatediff {look.name}") as bar:
            for s in segs:
                if only is not None and (s.frames[0], s.frames[-1]) not in set(map(tuple, only)):
                    continue
                todo = [f for f in s.frames if not step.is_done(f, keys[f])]
                report.skipped += [f for f in s.frames if f not in set(todo)]
                if not todo:
                    continue
                stop.check(report, len(chosen))
                bar.segment(s)
                t0 = time.perf_counter()

                def on_step(done: int, total: int, windows: int) -> None:
                    bar.step(done, total, windows)
                    stop.check(report, len(chosen))

                res = engine.video([source.image(f) for f in s.frames], control_images(look, source, s.frames),
                                   prompts=[look.prompt_for(f) for f in s.frames], seed=s.seed, strength=s.strength,
                                   on_step=on_step)
                dt = (time.perf_counter() - t0) / len(s.frames)
                for f, img in zip(s.frames, res):
                    if f in todo:
                        step.record(f, keys[f], {OUTPUT: img}, dt)
                        report.done.append(f)
    finally:
        report.seconds = time.perf_counter() - t_start
        step.write_params(frames_total=len(chosen), frames_done=len(step.frames_done()),
                          last_run={"done": len(report.done), "skipped": len(report.skipped), "seconds": round(report.seconds, 3)})
    # 5. the video, once every chosen frame is there
    vid = None
    if video:
        outs = step.outputs_of(OUTPUT)
        if outs and all(f in outs for f in chosen):
            vid = write_video(out_dir / f"{out_dir.name}.mp4", (read_image(outs[f]) for f in movie_frames(chosen, sstep)),
                              fps=fps or source.fps)  # each frame held until the next: the take's timing
    have = list(source.frames)
    note = (movie_note(have) if video and sstep > 1 else None) or describe(have)
    return AnimateResult(report, out_dir, vid, summary, note)


def animate_take(take: str | Path, look: Look, motion: MotionSpec, *, frames: tuple[int, int] | None = None,
                 step_id: str | None = None, input_folder: str | Path | None = None, engine: AnimateDiffEngine | None = None,
                 config: Any = None, progress: bool = True, video: bool = True,
                 only: Sequence[tuple[int, int]] | None = None) -> AnimateResult:
    """A take (its rgb pass, or a folder of plates) -> ``<take>/post/<step-id>/`` + mp4."""
    import re

    from machinima.take import Take

    from .sources import FolderSource, PassSource

    # 1. check inputs
    check_look(look, motion)
    t = Take.open(take)
    source: Source = FolderSource(input_folder, fps=t.manifest.fps) if input_folder else PassSource(t.passes_dir())
    chosen = [f for f in source.frames if frames is None or frames[0] <= f <= frames[1]]
    if not chosen:
        raise SourceError("no frames selected", hint=f"the source has frames {source.frames[0]}..{source.frames[-1]}")
    sid = step_id or "animatediff-" + (re.sub(r"[^A-Za-z0-9]+", "-", look.name).strip("-").lower() or "look")
    # 2. the engine
    engine = engine or AnimateDiffEngine.from_look(look, motion, config)
    return animate_source(source, look, motion, engine, t.post_dir(sid), frames=chosen, progress=progress, video=video,
                          fps=t.manifest.fps, only=only)


class _StopFlag(StopFlag):
    """Ctrl-C -> a flag checked after every denoising step (a second Ctrl-C stops at once)."""

    def check(self, report: Any, total: int) -> None:
        if self.stop:
            from machinima.poststep import Interrupted

            raise Interrupted(f"stopped: {len(report.done) + len(report.skipped)}/{total} frames done "
                              "(the segment in hand is redone on the next run)", hint="run the same command again to resume")



class _Bar:
    """One rich progress display: denoising steps of the segment in hand."""

    def __init__(self, enabled: bool, description: str) -> None:
        self._p = None
        self.description = description
        if enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._p = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                               TextColumn("{task.fields[info]}"), TimeElapsedColumn())
            self._task = self._p.add_task(description, total=None, info="")

    def __enter__(self) -> "_Bar":
        if self._p is not None:
            self._p.start()
        return self

    def segment(self, seg: Segment) -> None:
        if self._p is not None:
            self._p.update(self._task, description=f"{self.description} frames {seg.frames[0]}-{seg.frames[-1]}",
                           completed=0, total=None)

    def step(self, done: int, total: int, windows: int) -> None:
        if self._p is not None:
            self._p.update(self._task, completed=done, total=total, info=f"{windows} windows/step")

    def __exit__(self, *exc: object) -> None:
        if self._p is not None:
            self._p.stop()


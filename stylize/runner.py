"""The batch runner: a take (or an image folder) + a look -> ``<take>/post/<step-id>/`` + mp4.

    stylize_take(take, look)
      1. check inputs: the take, its passes (or a folder of plates), the frame range and shots
      2. build the engine the look names (a missing model -> one message: which file, where)
      3. plan keyframes, order and frame keys (``StylizePipeline.plan``)
      4. run the frames through ``machinima.poststep.PostStep``: rich progress, Ctrl-C stops after
         the frame in hand, a rerun skips frames whose key is unchanged and redoes the rest
      5. encode the finished frames to ``<step-id>.mp4``

``params.json`` says which engine made the frames (with model fingerprints), where the motion
came from (``flow``: the motion pass, RAFT or DIS), where each control image came from
(``controls``: a pass, a controlnet_aux annotator, or a named weight-free fallback, also listed
in ``notes`` and printed), the look, the seed rule and the plan (segments, keyframes).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from machinima.imageseq import read_image, write_image
from machinima.sparse import describe, movie_frames, movie_note
from machinima.poststep import Interrupted, PostStep, StepReport, write_video  # write_video: disclosed like the frames
from machinima.take import Take

from .engines import Engine, build_engine
from .errors import SourceError, StylizeError
from .look import Look
from .pipeline import StylizePipeline
from .sources import FolderSource, PassSource, Source

OUTPUT = "frames"
SEED_RULE = {"shot": "look seed (or the shot's seed) for every frame of a shot: the same noise, less flicker",
             "frame": "look seed (or the shot's seed) + frame number"}


@dataclass
class RunResult:
    report: StepReport
    out_dir: Path
    video: Path | None
    plan: dict[str, Any]
    stats: dict[str, Any]
    warnings: list[str] = field(default_factory=list)  # controls made by a weight-free fallback
    frames_note: str | None = None  # passes every Nth frame or a range: what was done with the others


def parse_range(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    m = re.fullmatch(r"\s*(\d+)\s*:\s*(\d+)\s*", text)
    if not m or int(m.group(1)) > int(m.group(2)):
        raise SourceError(f"--frames {text!r} must be A:B with A <= B (inclusive)")
    return int(m.group(1)), int(m.group(2))


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "look"


def select_frames(source: Source, look: Look, *, frames: tuple[int, int] | None = None, shots: Sequence[str] = ()) -> list[int]:
    chosen = list(source.frames)
    if frames:
        chosen = [f for f in chosen if frames[0] <= f <= frames[1]]
    if shots:
        names = {s.name: s for s in look.shots}
        unknown = [s for s in shots if s not in names]
        if unknown:
            raise SourceError(f"unknown shot(s) {', '.join(unknown)}; the look has {', '.join(names) or 'no shots'}")
        ranges = [names[s].frames for s in shots]
        chosen = [f for f in chosen if any(a <= f <= b for a, b in ranges)]
    if not chosen:
        raise SourceError("no frames selected", hint=f"the source has frames {source.frames[0]}..{source.frames[-1]}")
    return chosen


def stylize_take(take: str | Path, look: Look, *, frames: tuple[int, int] | None = None, shots: Sequence[str] = (),
                 step_id: str | None = None, input_folder: str | Path | None = None, engine: Engine | None = None,
                 config: Any = None, preview: int = 0, progress: bool = True, video: bool = True) -> RunResult:
    # 1. check inputs
    t = Take.open(take)
    source: Source = FolderSource(input_folder, fps=t.manifest.fps) if input_folder else PassSource(t.passes_dir())
    chosen = select_frames(source, look, frames=frames, shots=shots)
    if preview:
        import copy

        look = copy.deepcopy(look)
        idx = np.linspace(0, len(chosen) - 1, min(preview, len(chosen))).round().astype(int)
        chosen = sorted({chosen[i] for i in idx})
        look.cadence.mode, look.cadence.init_blend, look.cadence.init_noise = "every", 0.0, False  # independent keyframes
    sid = step_id or f"stylize-{_slug(look.name)}{'-preview' if preview else ''}"
    # 2. the engine
    engine = engine or build_engine(look, config)
    return run_source(source, look, engine, t.post_dir(sid), frames=chosen, progress=progress, video=video, fps=t.manifest.fps,
                      config=config)


def run_source(source: Source, look: Look, engine: Engine, out_dir: str | Path, *, frames: list[int] | None = None,
               progress: bool = True, video: bool = True, fps: str | None = None, config: Any = None) -> RunResult:
    """Steps 3-5 for any source (the take runner and the benchmark use it)."""
    out_dir = Path(out_dir)
    pipe = StylizePipeline(look, engine, source, frames=frames, config=config)
    # 3. plan
    plan = pipe.plan()
    described = engine.describe()
    params = {"look": look.global_params(), "engine": described, "flow": pipe.motion.describe(), "controls": pipe.controls.describe()}
    warnings = pipe.controls.warnings()
    if params["flow"].get("why"):
        warnings.append(f"flow: {params['flow']['why']} ({params['flow']['method']})")
    inputs = {"source": source.describe(), "plan": plan.summary(), "seed_rule": SEED_RULE[look.seed_mode],
              "shots": [{"name": s.name, "frames": list(s.frames)} for s in look.shots], "look_name": look.name}
    step = PostStep(out_dir, "stylize", params, inputs=inputs,
                    notes=[f"engine: {described['engine']}" + (f" ({described.get('note')})" if described.get("note") else ""),
                           f"flow: {params['flow']['method']}", *warnings])

    def load(f: int) -> np.ndarray | None:
        if step.is_done(f, step.frame_key(f, {"key": plan.keys[f]})):
            return read_image(step.output_path(OUTPUT, f))
        return None

    pipe.load = load

    # 4. the frame loop
    def process(batch: list[int]) -> list[dict[str, np.ndarray]]:
        return [{OUTPUT: pipe.frame(f)} for f in batch]

    # the source frames decoded ahead in the loop's reading order (keyframe chunks first), skipping finished frames
    pipe.read_ahead(pipe.read_order(done=lambda f: step.is_done(f, step.frame_key(f, {"key": plan.keys[f]}))))
    try:
        report = step.run(plan.order, process, frame_inputs=lambda f: {"key": plan.keys[f]}, batch_size=1,
                          progress=progress, description=f"stylize {look.name}")
    except Interrupted:
        # keyframes diffused in the last batch but not yet handed to the loop: keep them too
        for f, img in list(pipe._out.items()):
            key = step.frame_key(f, {"key": plan.keys[f]})
            if f in plan.keys and plan.roles[f].kind == "key" and not step.is_done(f, key):
                step.record(f, key, {OUTPUT: img}, 0.0)
        raise
    finally:
        pipe.close_reads()
    # 5. the video, once every frame of the step is there
    vid = None
    if video:
        done = step.outputs_of(OUTPUT)
        if done and all(f in done for f in plan.frames):
            # passes every Nth frame: each frame held until the next one, so the movie keeps the take's timing
            vid = write_video(out_dir / f"{out_dir.name}.mp4", (read_image(done[f]) for f in movie_frames(plan.frames, pipe.step)),
                              fps=fps or source.fps)
    have = list(source.frames)
    note = (movie_note(have) if video and pipe.step > 1 else None) or describe(have)
    return RunResult(report, out_dir, vid, plan.summary(), dict(pipe.stats), warnings, note)


def stylize_frames(frames: Sequence[np.ndarray] | np.ndarray, look: Look | dict | str | Path, *,
                   passes: dict[str, Sequence[np.ndarray]] | None = None, engine: Engine | None = None, config: Any = None) -> list[np.ndarray]:
    """The Python API: numpy frames (HxWx3 uint8) in, stylized frames out (in memory, no files).

    ``passes`` may give ``depth`` (HxW metres), ``pose``, ``normal``, ``mask/<name>`` per frame.
    """
    from .look import load_look
    from .sources import ArraySource

    if isinstance(look, (str, Path)):
        look = load_look(look)
    elif isinstance(look, dict):
        look = Look.from_doc(look)
    if not isinstance(look, Look):
        raise StylizeError("look must be a Look, a dict or a path to a look file")
    source = ArraySource(frames, passes)
    engine = engine or build_engine(look, config)
    return StylizePipeline(look, engine, source, config=config)()


def write_frames(folder: str | Path, frames: Sequence[np.ndarray]) -> None:
    for i, f in enumerate(frames):
        write_image(Path(folder) / f"{i:06d}.png", f)

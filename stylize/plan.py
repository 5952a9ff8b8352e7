"""The ``stylize`` and ``archive`` step kinds of ``machinima post run``."""

from __future__ import annotations

from pathlib import Path

from machinima.planstream import streams
from machinima.postplan import StepContext, StepOutput


WHOLE = ("its plan (segments, keyframes, the keyframes-first order, propagation between two keyframes) and its frame "
         "keys are made from the input's whole frame list, so a frame stylized from part of the input would differ")


@streams(step_dir=lambda ctx: ctx.take / "post" / ctx.step_id, output="frames", whole=WHOLE)
def run_stylize(ctx: StepContext) -> StepOutput:
    """Waits for its whole input in a plan (``WHOLE``). Settings: ``look`` (a shipped name or a .toml), ``from`` (frames to stylize, e.g.
    ``@composite``; default the take's render), ``gpus`` (per task, with --ray)."""
    from .look import load_look

    a = ctx.take_args({"look", "from", "gpus"})
    look_ref = a.get("look")
    if not look_ref:
        from .errors import StylizeError

        raise StylizeError(f"step {ctx.step_id!r} (stylize) needs look = \"painted\" (or a .toml)")
    p = ctx.path("look")
    look = load_look(p if p is not None and p.exists() else str(look_ref))
    src = ctx.path("from")
    if ctx.ray:
        from .distributed import stylize_take_on_ray

        res = stylize_take_on_ray(ctx.take, look, address=ctx.ray, step_id=ctx.step_id, input_folder=src, num_gpus=float(a.get("gpus", 0)))
    else:
        from .runner import stylize_take

        res = stylize_take(ctx.take, look, step_id=ctx.step_id, input_folder=src, progress=ctx.progress)
    from .runner import OUTPUT

    return StepOutput(Path(res.out_dir) / OUTPUT, len(res.report.done), len(res.report.skipped))


def _archive_window(ctx: StepContext) -> int:
    """Frames one streamed chunk needs together: the preset's longest group of pictures."""
    from .archive import load_preset

    pre = load_preset(str(ctx.args.get("preset", "vhs-1994")))
    return max([int(e.params.get("gop", 1)) for e in pre.effects if e.kind == "codec"] + [1])


@streams(step_dir=lambda ctx: ctx.take / "post" / ctx.step_id, output="frames", window=_archive_window)
def run_archive(ctx: StepContext) -> StepOutput:
    """Settings: ``preset``, ``seed``, ``from`` (frames to age, e.g. ``@composite``; default the
    take's render). In a plan it starts on its input's chunks as they are written (a window of
    the preset's group of pictures at a time, ``ctx.frames``)."""
    from .archive_cli import run_archive as archive

    a = ctx.take_args({"preset", "seed", "from", "mp4"})
    src = ctx.path("from")
    source, from_ = str(ctx.take), "rgb"
    if src is not None:
        try:  # a step of this take: read it as the take's post/<step>
            rel = src.resolve().relative_to(ctx.take.resolve())
            from_ = str(rel.parent) if rel.parts[0] == "post" else "rgb"
        except ValueError:
            source = str(src)
    rep, folder, _ = archive(source, str(a.get("preset", "vhs-1994")), seed=int(a.get("seed", 0)), from_=from_, out=ctx.take / "post",
                             step_id=ctx.step_id, mp4=bool(a.get("mp4", False)), ray=ctx.ray, progress=ctx.progress,
                             only=ctx.frames, source_frames=ctx.source_frames)
    return StepOutput(folder / "frames", len(rep.done), len(rep.skipped))

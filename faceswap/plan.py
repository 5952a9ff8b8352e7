"""The ``faceswap-merge`` step kind of ``machinima post run``: swap a trained face into a plate
(or the take's render) before the composite; the output frames folder out."""

from __future__ import annotations

from machinima.planstream import streams
from machinima.postplan import StepContext, StepOutput

ALLOWED = {"target", "model", "engine", "device", "batch", "color", "smooth", "blend", "production", "override", "chunk"}


def _planned_frames(ctx: StepContext) -> list[int]:
    """The frames the merge will write: its target's (an unreadable frame, found while tracking,
    holds a reading step at that frame until the merge ends; then the plan's whole call goes on)."""
    from .sources import open_source

    return list(open_source(ctx.path("target") or ctx.take).frames)


@streams(step_dir=lambda ctx: ctx.take / "post" / ctx.step_id, output="rgb", frames=_planned_frames)
def run(ctx: StepContext) -> StepOutput:
    """A plan's face-swap merge; a step reading ``@<this step>`` that reads a growing input
    (archive) starts on its frames while it runs. ``chunk`` (with --ray): frames a task; unset,
    sized from the measured time a frame."""
    from .errors import FaceswapError
    from .merge import MergeOptions, merge

    a = ctx.take_args(ALLOWED)
    target = ctx.path("target") or ctx.take
    model = ctx.path("model")
    if model is None and a.get("engine") != "none":
        raise FaceswapError(f"step {ctx.step_id!r} (faceswap-merge) needs model = \"models/<name>\"")
    opts = MergeOptions(engine=str(a.get("engine", "torch")), device=str(a.get("device", "auto")), batch=int(a.get("batch", 8)),
                        color=str(a.get("color", "rct")), smooth=str(a.get("smooth", "zero-lag")), blend=str(a.get("blend", "seamless")))
    out = ctx.take / "post" / ctx.step_id
    r = merge(target, model, out=out, step_id=ctx.step_id, options=opts, production=a.get("production"), override=a.get("override"),
              video=False, progress=ctx.progress, ray=ctx.ray, chunk_size=int(a["chunk"]) if a.get("chunk") else None)
    return StepOutput(out / "rgb", r.done, r.skipped, r.messages())

"""The ``faceswap-merge`` step kind of ``machinima post run``: swap a trained face into a plate
(or the take's render) before the composite; the output frames folder out."""

from __future__ import annotations

from machinima.postplan import StepContext, StepOutput

ALLOWED = {"target", "model", "engine", "device", "batch", "color", "smooth", "blend", "production", "override", "chunk"}


def run(ctx: StepContext) -> StepOutput:
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
              video=False, progress=ctx.progress, ray=ctx.ray, chunk_size=int(a.get("chunk", 16)))
    return StepOutput(out / "rgb", r.done, r.skipped, r.messages())

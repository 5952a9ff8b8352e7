"""The ``composite`` step kind of ``machinima post run``: a plan's [[step]] table into
``CompositeSettings`` (the flags' names, snake_case), the output frames folder out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from machinima.planstream import streams
from machinima.postplan import StepContext, StepOutput

ALLOWED = {"plate", "key", "place", "height", "frames", "smooth_feet", "light", "color_match", "color_strength", "grain", "offset",
           "format", "workers", "chunk", "video", "screen_rgb", "softness", "choke", "spill"}


def _settings(ctx: StepContext) -> tuple[Any, dict[str, Any]]:
    """The step's ``CompositeSettings`` and its checked settings table."""
    from .chain import ChainSettings
    from .errors import SettingsError
    from .keyer import KeySettings
    from .pipeline import CompositeSettings
    from .placement import PlacementSettings

    a: dict[str, Any] = ctx.take_args(ALLOWED)
    plate = ctx.path("plate")
    if plate is None:
        raise SettingsError(f"step {ctx.step_id!r} (composite) needs plate = \"clip.mp4\" or \"@<step>\"")
    key = str(a.get("key", "auto"))
    place = tuple(float(v) for v in a["place"]) if a.get("place") is not None else None
    s = CompositeSettings(
        plate=Path(plate), matte=key,
        key=KeySettings(screen=key if key in ("green", "blue") else "green", screen_rgb=tuple(a["screen_rgb"]) if a.get("screen_rgb") else None,
                        softness=float(a.get("softness", 0.0)), choke=int(a.get("choke", 0)), spill=float(a.get("spill", 1.0))),
        placement=PlacementSettings(position=place, height_m=float(a.get("height", 1.75))),
        frames=tuple(a["frames"]) if a.get("frames") else None, smooth_feet=int(a.get("smooth_feet", 5)), light=str(a.get("light", "auto")),
        color_match=str(a.get("color_match", "lab")), color_strength=float(a.get("color_strength", 0.5)), grain=str(a.get("grain", "auto")),
        offset=float(a.get("offset", 0.0)), output_format=str(a.get("format", "png")), video=bool(a.get("video", False)),
        workers=int(a.get("workers", 2)), step_id=ctx.step_id, chain=ChainSettings(),
    )
    return s, a


def _planned_frames(ctx: StepContext) -> list[int]:
    """The take frames the step will write (the rendered frames in range), before it runs."""
    from machinima.take import Take

    from .pipeline import CompositePipeline

    p = CompositePipeline(ctx.take, _settings(ctx)[0])
    return p._frames(p._open_passes(Take.open(ctx.take)))


WHOLE = ("its look (colour statistics and grain) is measured on the plate's first, middle and last frames and the feet are "
         "tracked over the whole plate, so every composite frame depends on the plate's last one")


@streams(step_dir=lambda ctx: ctx.take / "post" / ctx.step_id, output="rgb", frames=_planned_frames, whole=WHOLE)
def run(ctx: StepContext) -> StepOutput:
    """A plan's composite; a step reading ``@<this step>`` that can (archive) starts on its
    frames while it runs. On a plate made by the plan (``plate = "@merge"``) it waits for the
    whole plate (``WHOLE``). ``chunk`` (with --ray): frames a task; unset, sized from the
    measured time a frame."""
    from .pipeline import run_composite

    s, a = _settings(ctx)
    res = run_composite(ctx.take, s, progress=ctx.progress, ray=ctx.ray, chunk_size=int(a["chunk"]) if a.get("chunk") else None)
    return StepOutput(res.out_dir / "rgb", len(res.report.done), len(res.report.skipped))

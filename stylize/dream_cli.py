"""``machinima dream SOURCE --dream drift``: a Deforum-style dream sequence as a post step."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

console = Console()


def dream(
    source: str = typer.Argument(..., help="A take (id/folder: starts from its first rendered frame) or an image file."),
    dream_file: str = typer.Option("drift", "--dream", "-d", help="A dream file (.toml) or a shipped name (drift)."),
    frames: Optional[int] = typer.Option(None, "--frames", help="Override the dream's frame count."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder (default: the take's post/ or beside the image)."),
    step_id: Optional[str] = typer.Option(None, help="Step folder name (default: dream-<name>)."),
    mp4: bool = typer.Option(True, help="Also write an mp4."),
) -> None:
    """A dream sequence: feedback warp + re-stylize on schedules (or the take's camera), resumable."""
    from machinima.imageseq import read_image
    from machinima.passes import PassSet
    from machinima.poststep import PostStep, write_video  # write_video: disclosed like the frames
    from machinima.take import Take

    from .dream import DreamRun, load_dream, resolve_look_path
    from .engines import build_engine
    from .errors import SourceError
    from .look import load_look

    d = load_dream(dream_file)
    if frames:
        d.frames = frames
    look = load_look(resolve_look_path(d))
    engine = build_engine(look)
    p = Path(source)
    passes = None
    fps = "24"
    if p.is_file():
        init = read_image(p)[..., :3]
        folder = (out or p.parent) / (step_id or f"dream-{Path(dream_file).stem}")
    else:
        if not (p / "take.json").exists():
            from machinima.cli import resolve_take

            p = resolve_take(source)
        take = Take.open(p)
        passes = PassSet.open(take.passes_dir())
        if not passes.frames:
            raise SourceError(f"take {take.id} has no rendered frames")
        init = passes.read("rgb", passes.frames[0])
        fps = take.manifest.fps
        folder = (out or take.post_dir()) / (step_id or f"dream-{Path(dream_file).stem}")
    depth = cams = None
    if passes is not None and d.mode == "3d":
        first = passes.frames[0]
        depth = (lambda f: passes.read("depth", first + f) if passes.has("depth") and (first + f) in passes.frames else None)
        if d.camera == "take":
            allcams = passes.cameras()
            cams = {f - first: c for f, c in allcams.items()}
    # what shapes the pixels (the frame count does not: a longer run continues a shorter one)
    params = {"dream": {k: v for k, v in d.source.items() if k != "frames"}, "look": look.global_params(), "engine": engine.describe()}
    step = PostStep(folder, "dream", params, inputs={"source": str(source)},
                    notes=[f"dream '{Path(dream_file).stem}' made by the {engine.describe().get('engine')} engine"])

    def read_out(f: int):
        path = step.output_path("frames", f)
        return read_image(path) if path.exists() else None

    run = DreamRun(d, engine, init, previous=lambda f: read_out(f), diffused=read_out, depth=depth, cameras=cams)
    # sequential: every frame needs the one before, so a batch is one frame and a rerun
    # resumes after the last finished frame with the same seeds
    rep = step.run(range(d.frames), lambda batch: [{"frames": run.frame(batch[0])}],
                   frame_inputs=lambda f: {"seed": d.seed_of(f)}, description=f"dream {Path(dream_file).stem}")
    if mp4:
        outs = step.outputs_of("frames")
        write_video(folder / f"{folder.name}.mp4", (read_image(outs[f]) for f in sorted(outs)), fps=fps)
    console.print(f"{len(rep.done)} dream frames made, {len(rep.skipped)} already done -> {folder}")

"""``machinima dream SOURCE --dream drift``: a Deforum-style dream sequence as a post step.

params.json records the depth the 3D warps used (a depth model, the take's depth pass, or a
plane: then a warning) and where each ControlNet control came from."""

from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional

import typer
from rich.console import Console

console = Console()


def dream(
    sources: List[str] = typer.Argument(..., help="Takes (id/folder: each starts from its first rendered frame) or image files; "
                                        "several shots run side by side with --ray."),
    dream_file: str = typer.Option("drift", "--dream", "-d", help="A dream file (.toml) or a shipped name (drift)."),
    frames: Optional[int] = typer.Option(None, "--frames", help="Override the dream's frame count."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder (default: the take's post/ or beside the image)."),
    step_id: Optional[str] = typer.Option(None, help="Step folder name (default: dream-<name>; with several images, dream-<name>-<image>)."),
    mp4: bool = typer.Option(True, help="Also write an mp4."),
    ray: Optional[str] = typer.Option(None, "--ray", metavar="[ADDRESS]", help="One Ray task per shot (source) on this cluster (bare --ray: RAY_ADDRESS, a running cluster, else a local one; or host:6379, local). "
                                      "Frames within a shot stay in order (each feeds the next)."),
    gpus: float = typer.Option(0, "--gpus", help="With --ray: GPUs per shot (1 for a diffusion look)."),
) -> None:
    """A dream sequence: feedback warp + re-stylize on schedules (or the take's camera), resumable."""
    for src in sources:  # a typo fails at once, before any engine loads
        p = Path(src)
        if not p.is_file() and not (p / "take.json").exists():
            from machinima.cli import resolve_take

            resolve_take(src)
    images = [s for s in sources if Path(s).is_file()]
    calls = [{"source": s, "dream_file": dream_file, "frames": frames, "out": str(out) if out else None,
              "step_id": step_id if step_id or len(images) < 2 or s not in images else f"dream-{Path(dream_file).stem}-{Path(s).stem}",
              "mp4": mp4} for s in sources]
    if ray:
        from machinima.distributed import run_tasks

        for c in calls:  # the workers' folder is not ours: absolute paths (params.json keeps the source as typed)
            p = Path(c["source"])
            c["label"] = c["source"]
            c["source"] = str(p.resolve()) if p.exists() else c["source"]
            c["dream_file"] = str(Path(dream_file).resolve()) if Path(dream_file).is_file() else dream_file
            c["out"] = str(Path(c["out"]).resolve()) if c["out"] else None
            c["progress"] = False
        rep = run_tasks(run_dream, calls, address=ray, resources={"num_cpus": 1, **({"num_gpus": gpus} if gpus else {})},
                        labels=[f"dream of {c['source']}" for c in calls], description=f"dream {Path(dream_file).stem}: {len(calls)} shot(s) on Ray")
        results = rep.results
        for line in rep.summary_lines():
            console.print(line)
    else:
        results = [run_dream(**c) for c in calls]
    for r in results:
        for w in r["warnings"]:
            console.print(f"[yellow]warning:[/] {w}")
        console.print(f"{r['done']} dream frames made, {r['skipped']} already done -> {r['folder']}")


def run_dream(source: str, dream_file: str = "drift", frames: Optional[int] = None, out: Optional[str] = None, step_id: Optional[str] = None,
              mp4: bool = True, progress: bool = True, label: Optional[str] = None) -> dict[str, Any]:
    """One dream sequence (a shot): the CLI's work, also one Ray task with ``--ray``. ``label``:
    the source as the person typed it (for params.json), when ``source`` was made absolute."""
    from machinima.config import load_config
    from machinima.imageseq import read_image
    from machinima.passes import PassSet
    from machinima.poststep import PostStep, write_video  # write_video: disclosed like the frames
    from machinima.take import Take

    from .control_maker import ControlMaker
    from .dream import DreamRun, load_dream, resolve_look_path
    from .engines import build_engine
    from .errors import SourceError
    from .look import load_look
    from .sources import PassSource

    out_p = Path(out) if out else None
    p = Path(source)
    if not p.is_file() and not (p / "take.json").exists():
        from machinima.cli import resolve_take

        p = resolve_take(source)  # before the engine loads: a typo fails at once
    d = load_dream(dream_file)
    if frames:
        d.frames = frames
    cfg = load_config()
    look = load_look(resolve_look_path(d))
    engine = build_engine(look, cfg)
    passes = None
    fps = "24"
    if p.is_file():
        init = read_image(p)[..., :3]
        folder = (out_p or p.parent) / (step_id or f"dream-{Path(dream_file).stem}")
    else:
        take = Take.open(p)
        passes = PassSet.open(take.passes_dir())
        if not passes.frames:
            raise SourceError(f"take {take.id} has no rendered frames")
        init = passes.read("rgb", passes.frames[0])
        fps = take.manifest.fps
        folder = (out_p or take.post_dir()) / (step_id or f"dream-{Path(dream_file).stem}")
    warnings: list[str] = []
    # depth for 3D warps: a local depth model > the take's depth pass > a plane
    depth, depth_info = None, {"from": "none (2d)"}
    if d.mode == "3d":
        depth, depth_info = dream_depth(d, passes, cfg)
        if depth is None:
            warnings.append(f"3D warps use a plane at {d.depth:g} m: no depth_model in the dream file and no depth pass in the source")
    cams = None
    if passes is not None and d.camera == "take":
        first = passes.frames[0]
        cams = {f - first: c for f, c in passes.cameras().items()}
    # controls for ControlNet looks: the take's passes, or the fed-back frame. The classical
    # engine gets none: its haze and ink lines would compound frame over frame in the feedback
    controls, controls_info = None, []
    if engine.controls:
        maker = ControlMaker(look, PassSource(take.passes_dir()) if passes is not None else None, config=cfg)
        controls = dream_controls(maker, passes)
        controls_info = maker.describe()
        warnings += maker.warnings()
    # what shapes the pixels (the frame count does not: a longer run continues a shorter one)
    params = {"dream": {k: v for k, v in d.source.items() if k != "frames"}, "look": look.global_params(), "engine": engine.describe(),
              "depth": depth_info, "controls": controls_info}
    step = PostStep(folder, "dream", params, inputs={"source": str(label or source)},
                    notes=[f"dream '{Path(dream_file).stem}' made by the {engine.describe().get('engine')} engine", *warnings])

    def read_out(f: int):
        path = step.output_path("frames", f)
        return read_image(path) if path.exists() else None

    run = DreamRun(d, engine, init, previous=lambda f: read_out(f), diffused=read_out, depth=depth, cameras=cams, controls=controls)
    # sequential: every frame needs the one before, so a batch is one frame and a rerun
    # resumes after the last finished frame with the same seeds
    rep = step.run(range(d.frames), lambda batch: [{"frames": run.frame(batch[0])}],
                   frame_inputs=lambda f: {"seed": d.seed_of(f)}, description=f"dream {Path(dream_file).stem}", progress=progress)
    if mp4:
        outs = step.outputs_of("frames")
        write_video(folder / f"{folder.name}.mp4", (read_image(outs[f]) for f in sorted(outs)), fps=fps)
    return {"source": str(label or source), "folder": str(folder), "done": len(rep.done), "skipped": len(rep.skipped), "warnings": warnings}


def dream_depth(d: Any, passes: Any, cfg: Any) -> tuple[Any, dict[str, Any]]:
    """(depth(frame, picture) -> metres, what it is) for 3D warps; (None, ...) = a plane."""
    if d.depth_model:
        from .depth import DepthModel
        from .models import need_model

        model = DepthModel(need_model(cfg, d.depth_model, f"depth model {d.depth_model!r}", "a transformers depth model folder"))
        return (lambda f, img: model.metres(img, d.depth)), {"from": "depth model", **model.describe(), "median_m": d.depth}
    if passes is not None and passes.has("depth"):
        return (lambda f, img: passes.read("depth", take_frame(passes.frames, f))), {"from": "depth pass"}
    return None, {"from": "plane", "metres": d.depth}


def take_frame(frames: list[int], f: int) -> int:
    """The take frame dream frame ``f`` reads passes from: the latest rendered frame at or before
    the take's first + f (passes may hold every Nth frame; past the end, the last one)."""
    import bisect

    i = bisect.bisect_right(frames, frames[0] + f) - 1
    return frames[max(i, 0)]


def dream_controls(maker: Any, passes: Any) -> Any:
    """controls(frame, picture): the take's passes at ``take_frame``, picture-made kinds from
    the fed-back frame."""
    from . import controls as C

    if passes is None:
        maker.check(0)
        return lambda f, img: maker.make(None, img)
    frames = passes.frames
    maker.check(frames[0])
    rng = None
    if any(c.kind == "depth" and maker.from_pass(c) for c in maker.look.controls):
        rng = C.depth_range([passes.read("depth", f) for f in (frames[0], frames[len(frames) // 2], frames[-1])])
    return lambda f, img: maker.make(take_frame(frames, f), img, depth_range=rng)

"""``machinima archive SOURCE --preset vhs-1994``: the archive look as a resumable post step.

SOURCE is a take (id or folder: its ``passes/rgb``, or another step's output with ``--from
post/<step-id>``), a video file, or a folder of numbered images.
"""

from __future__ import annotations

import dataclasses
from fractions import Fraction
from pathlib import Path
from typing import Callable, Optional

import typer
from rich.console import Console

console = Console()


def _open_source(source: str, from_: str) -> tuple[Callable[[int], "object"], list[int], Fraction, Path, str]:
    """(frame reader, frame numbers, fps, default output folder, description) for SOURCE."""
    from machinima.imageseq import find_frame, list_frames, read_image, read_video
    from machinima.take import Take

    from .archive import ArchiveError

    p = Path(source)
    if p.is_file():
        frames = list(read_video(p))
        if not frames:
            raise ArchiveError(f"{p} has no frames")
        import av

        with av.open(str(p)) as c:
            rate = c.streams.video[0].average_rate or Fraction(24)
        return (lambda f: frames[f]), list(range(len(frames))), Fraction(rate), p.with_name(f"{p.stem}-archive"), f"video {p.name}"
    take_dir = None
    if (p / "take.json").exists():
        take_dir = p
    elif not p.is_dir():
        from machinima.cli import resolve_take

        take_dir = resolve_take(source)
    if take_dir is not None:
        take = Take.open(take_dir)
        folder = take.passes_dir("rgb") if from_ == "rgb" else take.path / from_ / "frames"
        if from_ != "rgb" and not folder.is_dir() and (take.path / from_ / "rgb").is_dir():
            folder = take.path / from_ / "rgb"  # a composite or face-swap step writes rgb/
        if not folder.is_dir():
            raise ArchiveError(f"take {take.id} has no frames at {folder}", hint="render passes first, or name a step with --from post/<step-id>")
        files = list_frames(folder)
        # a frame written after the listing (a plan streams a step still running) is found on disk
        return (lambda f: read_image(files[f] if f in files else find_frame(folder, f))), list(files), take.fps, take.post_dir(), f"take {take.id} ({from_})"
    files = list_frames(p)
    if not files:
        raise ArchiveError(f"no numbered images in {p}")
    return (lambda f: read_image(files[f] if f in files else find_frame(p, f))), list(files), Fraction(24), p.with_name(f"{p.name}-archive"), f"folder {p.name}"


def archive(
    source: str = typer.Argument(..., help="Take id/folder, video file, or image folder."),
    preset: str = typer.Option("vhs-1994", "--preset", "-p", help="Preset name or .toml file (see --list)."),
    seed: int = typer.Option(0, help="Same seed, same pixels."),
    from_: str = typer.Option("rgb", "--from", help="For a take: 'rgb' (the render) or 'post/<step-id>'."),
    out: Optional[Path] = typer.Option(None, help="Output folder (default: the take's post/ or beside the source)."),
    step_id: Optional[str] = typer.Option(None, help="Step folder name (default: archive-<preset>)."),
    mp4: bool = typer.Option(True, help="Also write an mp4."),
    ray: Optional[str] = typer.Option(None, "--ray", metavar="[ADDRESS]", help="Run on a Ray cluster (bare --ray: RAY_ADDRESS, a running cluster, else a local one; or host:6379, local)."),
    list_: bool = typer.Option(False, "--list", help="List the shipped presets and exit."),
) -> None:
    """Age footage with an archive preset (VHS, DV, early phone, Super 8): deterministic by seed,
    resumable, frames + mp4 with provenance."""
    from .archive import list_presets, load_preset

    if list_:
        for name in list_presets():
            console.print(f"{name:<12} {load_preset(name).description}")
        raise typer.Exit()
    rep, folder, frames = run_archive(source, preset, seed=seed, from_=from_, out=out, step_id=step_id, mp4=mp4, ray=ray)
    from machinima.sparse import describe, movie_note

    console.print(f"{len(rep.done)} frames aged, {len(rep.skipped)} already done -> {folder}")
    for line in getattr(rep, "summary_lines", lambda: [])():
        console.print(line)
    note = movie_note(frames)
    if note:
        console.print(f"source: {note}" if mp4 else f"source: {describe(frames)}")


def run_archive(source: str, preset: str = "vhs-1994", *, seed: int = 0, from_: str = "rgb", out: Optional[Path] = None,
                step_id: Optional[str] = None, mp4: bool = True, ray: Optional[str] = None, progress: bool = True,
                only: Optional[list[int]] = None, source_frames: Optional[list[int]] = None):
    """The archive step as a function (the CLI and ``machinima post run``): (report, folder, frames).

    ``only``/``source_frames`` (a plan streaming its input): age only those frames now, treating
    ``source_frames`` as the source's frame list (its groups of pictures, its held frames), so a
    frame comes out as in a run over the whole, finished source; no movie."""
    from machinima.imageseq import read_image
    from machinima.poststep import PostStep, write_video  # write_video: disclosed like the frames
    from machinima.sparse import held

    from .archive import ArchiveLook, load_preset

    pre = load_preset(preset)
    read, frames, fps, default_out, what = _open_source(source, from_)
    if source_frames is not None:
        frames = sorted(source_frames)
    todo = frames if only is None else sorted(only)
    if only is not None:
        mp4 = False
    prefetch = None
    if not ray:  # decode the next source frames while the look works on this one (Ray chunks read their own)
        from machinima.frameio import Prefetch

        prefetch = Prefetch(todo, read, depth=4)
        read = prefetch.get
    folder = (out or default_out) / (step_id or f"archive-{pre.name}")
    params = {"preset": dataclasses.asdict(pre), "seed": seed, "source": what}
    params["preset"]["fps"] = str(pre.fps) if pre.fps else None
    notes = [f"archive look '{pre.name}' (deterministic, seed {seed}); no model weights involved"]
    make_step = lambda: PostStep(folder, "archive", params, inputs={"source": what}, notes=notes)  # noqa: E731
    if ray:
        from machinima.distributed import run_on_ray

        where = str(Path(source).resolve()) if Path(source).exists() else source  # a path, never decoded frames, goes to the workers

        def make_process():  # runs on the worker: it opens (decodes) the source itself
            return ArchiveLook(pre, _open_source(where, from_)[0], seed=seed, source_fps=fps, frames=frames).process

        from machinima.poststep import stable_hash

        rep = run_on_ray(make_step, make_process, todo, address=ray, chunk_size=None, description=f"archive {pre.name}", progress=progress,
                         cache_key=stable_hash({"archive": params, "source": where, "from": from_}))
    else:
        look = ArchiveLook(pre, read, seed=seed, source_fps=fps, frames=frames)
        gop = max([int(e.params.get("gop", 1)) for e in pre.effects if e.kind == "codec"] + [1])
        try:
            rep = make_step().run(todo, look.process, batch_size=gop, description=f"archive {pre.name}", progress=progress)
        finally:
            if prefetch is not None:
                prefetch.close()
    step = make_step()
    if mp4:
        outs = step.outputs_of("frames")
        shown = held(sorted(outs))  # a take rendered every Nth frame keeps its timing
        write_video(folder / f"{folder.name}.mp4", (read_image(outs[f]) for f in shown), fps=fps)
    return rep, folder, frames

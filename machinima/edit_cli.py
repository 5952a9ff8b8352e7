"""``machinima edit export / import``: the editor's timeline through OpenTimelineIO (see
``editorial.py`` and docs/editorial.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

console = Console(soft_wrap=True)  # paths stay on one line
app = typer.Typer(help="Editorial: circled takes out as a timeline (.otio/.edl/.xml), an edited cut back in.", no_args_is_help=True)

RootOpt = typer.Option(None, "--root", help="Takes root (default: from machinima.toml / MACHINIMA_TAKES_ROOT, else ./takes).")


@app.command("export")
def edit_export(
    out: list[Path] = typer.Option(..., "--out", "-o", help="cut.otio, cut.edl (CMX 3600) or cut.xml (FCP 7); repeatable"),
    scene: Optional[str] = typer.Option(None, "--scene", help="The scene whose takes to cut"),
    production: Optional[str] = typer.Option(None, "--production", help="Only this production (default: any)"),
    shot: list[str] = typer.Option([], "--shot", help="Only these shots (repeatable)"),
    take: list[str] = typer.Option([], "--take", help="These takes (ids or folders), in this order, instead of the scene's circled ones"),
    all_takes: bool = typer.Option(False, "--all", help="Every complete take of the scene, not only circled ones"),
    version: Optional[str] = typer.Option(None, "--version", help="render | composite | stylize | archive | a step id; default: each circle's"),
    media: str = typer.Option("auto", "--media", help="auto (the step's mp4 if any) | mp4 | frames"),
    name: Optional[str] = typer.Option(None, "--name", help="Timeline name (default: the first --out's file name)"),
    record_start: str = typer.Option("01:00:00:00", "--record-start", help="Record timecode of the first frame of the cut"),
    deliver: bool = typer.Option(True, "--deliver/--no-deliver",
                                 help="Deliver QOI step frames (editors cannot read them) as mp4/PNG first; --no-deliver refuses instead"),
    root: Optional[Path] = RootOpt,
) -> None:
    """Write the circled takes of a scene (each with its chosen version) as a timeline."""
    from .cli import _takes_root, resolve_take
    from .editorial import build_timeline, cut_text, find_media, scene_takes
    from .fsutil import atomic_write_text
    from .errors import EditorialError
    from .take import Take

    if take:
        takes = [Take.open(resolve_take(t, root)) for t in take]
    elif scene is None:
        raise EditorialError("say which takes: --scene SCENE (its circled takes) or --take ID ...")
    else:
        takes = scene_takes(_takes_root(root), scene, production=production, shots=shot, circled_only=not all_takes)
    picks = []
    for t in takes:
        v = version or (t.manifest.circle or {}).get("version") or "render"
        m = find_media(t, v, media, deliver=deliver)
        if m.gaps:
            console.print(f"[yellow]warning[/] {t.id}: {m.gaps} frames missing in {m.version}; the clip spans them")
        picks.append((t, m))
    timeline = build_timeline(picks, name or out[0].stem, record_start=record_start)
    texts = [cut_text(timeline, path) for path in out]  # every format checked before any file is written
    for path, text in zip(out, texts):
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, text)
        console.print(f"wrote {path}: {len(picks)} clips")
    for t, m in picks:
        console.print(f"  {t.id}  {m.version} ({m.kind})  frames {m.first}-{m.first + m.count - 1}")


@app.command("import")
def edit_import(
    cut: Path = typer.Argument(..., help="An edited cut: .otio, .edl or .xml"),
    name: Optional[str] = typer.Option(None, "--name", help="The cut's name in take.json (default: the file name without suffix)"),
    fps: Optional[str] = typer.Option(None, "--fps", help="EDL frame rate (default: the rate of the takes it names)"),
    root: Optional[Path] = RootOpt,
) -> None:
    """Read an edited cut and mark in each take which frames it uses (`takes list --used-in CUT`)."""
    from .cli import _takes_root
    from .editorial import cut_uses, mark_used, read_cut

    r = _takes_root(root)
    timeline = read_cut(cut, r, fps=fps)
    uses, unknown = cut_uses(timeline, r)
    label = name or cut.stem
    mark_used(r, label, cut, uses)
    for u in uses:
        spans = ", ".join(f"{a}-{b} ({ta}-{tb})" for (a, b), (ta, tb) in zip(u.ranges, u.timecodes))
        console.print(f"{u.take_id}: {spans}")
    if not uses and not unknown:
        console.print(f"[yellow]warning[/] {cut.name} holds no clips")
    if unknown:
        console.print(f"[yellow]warning[/] {len(unknown)} clips are no take in {r}: {', '.join(unknown[:10])}")
    console.print(f"cut {label!r}: {len(uses)} takes used")

"""The ``machinima`` command: the core's own commands (takes, demo) plus every spoke's,
found by name through the ``machinima.cli`` entry points and imported only when used.

Errors meant for people (``MachinimaError``) print as one line and exit 1, no traceback.
"""

from __future__ import annotations

import logging
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from . import __version__
from .config import load_config
from .errors import MachinimaError, TakeError

console = Console()
err_console = Console(stderr=True, soft_wrap=True)  # one-line errors stay one line in logs
log = logging.getLogger("machinima")

app = typer.Typer(
    name="machinima",
    help="A production toolkit for films shot inside virtual worlds.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
takes_app = typer.Typer(help="List, inspect, verify, recover, export and import takes.", no_args_is_help=True)
app.add_typer(takes_app, name="takes")


def _version(value: bool) -> None:
    if value:
        console.print(f"machinima {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """machinima: stage, mocap, engine bridge, Blender sets and passes, AI post."""


def _takes_root(root: Optional[Path]) -> Path:
    return root if root else load_config().takes_root


def resolve_take(take: str, root: Optional[Path] = None) -> Path:
    """A take given as a folder path or as an id inside the takes root."""
    p = Path(take)
    if p.is_dir():
        return p
    candidate = _takes_root(root) / take
    if candidate.is_dir():
        return candidate
    raise TakeError(f"no take {take!r} (neither a folder nor an id in {_takes_root(root)})", hint="`machinima takes list` shows the takes")


RootOpt = typer.Option(None, "--root", help="Takes root (default: from machinima.toml / MACHINIMA_TAKES_ROOT, else ./takes).")


@takes_app.command("list")
def takes_list(
    root: Optional[Path] = RootOpt,
    production: Optional[str] = typer.Option(None),
    scene: Optional[str] = typer.Option(None),
    shot: Optional[str] = typer.Option(None),
    status: Optional[str] = typer.Option(None),
    performer: Optional[str] = typer.Option(None),
    since: Optional[str] = typer.Option(None, help="ISO date, e.g. 2026-11-01"),
    text: Optional[str] = typer.Option(None, help="Search ids and notes."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (for scripts)."),
) -> None:
    """List takes from the catalog (rebuilt from the folders when missing)."""
    from .catalog import CATALOG, Catalog

    r = _takes_root(root)
    fresh = not (r / CATALOG).exists()
    cat = Catalog(r)
    if fresh:
        cat.rebuild()
    rows = cat.search(production=production, scene=scene, shot=shot, status=status, performer=performer, since=since, text=text)
    if as_json:
        import json

        print(json.dumps(rows, indent=2))
        return
    table = Table(title=f"takes in {r}")
    table.add_column("id", no_wrap=True)
    for col in ("status", "fps", "in", "out", "performers", "created"):
        table.add_column(col)
    for row in rows:
        table.add_row(row["id"], row["status"], row["fps"], row["timecode_in"] or "", row["timecode_out"] or "", ", ".join(row["performers"]), (row["created"] or "")[:10])
    console.print(table)


@takes_app.command("show")
def takes_show(take: str, root: Optional[Path] = RootOpt) -> None:
    """Show a take's manifest and streams."""
    from .take import Take

    t = Take.open(resolve_take(take, root))
    m = t.manifest
    console.print(f"[bold]{m.id}[/]  {m.status}  {m.fps} fps  {m.timecode_in} -> {m.timecode_out or '?'}")
    console.print(f"slate: {m.slate.production} / scene {m.slate.scene} / shot {m.slate.shot} / take {m.slate.take}")
    for s in m.streams:
        console.print(f"  {s['name']:<32} {s['kind']:<7} {s.get('samples', '')}")
    for mk in m.markers:
        console.print(f"  marker {mk.get('timecode')} {mk.get('name')} {mk.get('note', '')}")
    for n in m.notes:
        console.print(f"  note: {n}")


@takes_app.command("verify")
def takes_verify(take: str, root: Optional[Path] = RootOpt) -> None:
    """Check a take: manifest, streams file, SQLite integrity, sample counts. Exit 1 on problems."""
    from .take import Take

    t = Take.open(resolve_take(take, root))
    problems = t.verify()
    if problems:
        for p in problems:
            err_console.print(f"[red]problem[/] {t.id}: {p}")
        raise typer.Exit(1)
    console.print(f"[green]ok[/] {t.id}")


@takes_app.command("recover")
def takes_recover(take: Optional[str] = typer.Argument(None, help="One take; default: every take left in 'recording'."), root: Optional[Path] = RootOpt) -> None:
    """Recover takes left in 'recording' by a crash (everything committed is kept)."""
    from .take import recover, recover_all

    if take:
        t = recover(resolve_take(take, root))
        console.print(f"{t.id}: {t.manifest.status}")
    else:
        done = recover_all(_takes_root(root))
        console.print(f"recovered {len(done)} take(s) {' '.join(done)}")


@takes_app.command("export")
def takes_export(
    take: str,
    out: Path = typer.Option(..., "--out", "-o", help="Output .bvh file (one performer) or folder (all performers)."),
    performer: Optional[str] = typer.Option(None, help="Performer to export; default: all, into a folder."),
    root: Optional[Path] = RootOpt,
) -> None:
    """Export performers as BVH, resampled to the take's fps."""
    from .export import export_take_bvh

    for path in export_take_bvh(resolve_take(take, root), out, performer):
        console.print(f"wrote {path}")


@takes_app.command("import")
def takes_import(
    bvh: Path,
    performer: str = typer.Option(..., help="Performer name for the imported motion."),
    scene: str = typer.Option("imported"),
    shot: str = typer.Option("bvh"),
    production: Optional[str] = typer.Option(None),
    root: Optional[Path] = RootOpt,
) -> None:
    """Create a new take from a BVH file."""
    from .export import import_bvh_take

    cfg = load_config()
    t = import_bvh_take(bvh, _takes_root(root), production=production or cfg.production, scene=scene, shot=shot, performer=performer)
    console.print(f"created {t}")


@takes_app.command("rm")
def takes_rm(take: str, root: Optional[Path] = RootOpt) -> None:
    """Move a take to the trash folder (<root>/.trash); nothing is deleted."""
    from .take import delete

    dest = delete(resolve_take(take, root))
    console.print(f"moved to {dest}")


@takes_app.command("rebuild-catalog")
def takes_rebuild(root: Optional[Path] = RootOpt) -> None:
    """Rebuild catalog.sqlite from the take folders."""
    from .catalog import Catalog

    n, problems = Catalog(_takes_root(root)).rebuild()
    for p in problems:
        err_console.print(f"[yellow]skipped[/] {p}")
    console.print(f"indexed {n} take(s)")


@app.command("demo")
def demo(
    out: Path = typer.Option(Path("demo-out"), "--out", help="Where the demo writes its takes and outputs."),
) -> None:
    """Run the whole film end to end on synthetic performers (offline; resumable)."""
    from .demo import run_demo

    run_demo(out, console)


def _register_plugins() -> None:
    """Add each spoke's commands: a Typer app becomes a command group, a plain function a single
    command. A missing or broken spoke is logged and skipped."""
    for ep in entry_points(group="machinima.cli"):
        try:
            sub = ep.load()
        except ModuleNotFoundError as exc:
            if exc.name and ep.value.split(":")[0].startswith(exc.name):
                log.debug("spoke %s is not installed: %s", ep.name, exc)
            else:
                err_console.print(f"[yellow]warning[/]: command group {ep.name!r} is unavailable ({exc})")
            continue
        except Exception as exc:  # a broken plugin must not break the CLI
            err_console.print(f"[yellow]warning[/]: command group {ep.name!r} failed to load ({exc})")
            continue
        if isinstance(sub, typer.Typer):
            app.add_typer(sub, name=ep.name)
        else:  # a plain function: a single command (`machinima archive SOURCE ...`)
            app.command(name=ep.name)(sub)


def main(argv: list[str] | None = None) -> None:
    _register_plugins()
    try:
        app(args=argv, standalone_mode=True)
    except MachinimaError as exc:
        err_console.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)  # "[model]" is text, not markup
        sys.exit(1)
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]")
        sys.exit(130)


@app.command("verify")
def verify(
    target: Path = typer.Argument(..., help="A PNG/JPEG/MP4 file, a take or a delivery folder."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (one object per file, with status and reason)."),
    no_watermark: bool = typer.Option(False, "--no-watermark", help="Skip watermark decoding (faster; forged or stripped marks go unseen)."),
) -> None:
    """Check disclosure: signed by a trusted key, unchanged, watermark authentic. Exit 1 on anything else, with the reason."""
    from .verify_cli import run_verify

    code = run_verify(target, as_json=as_json, watermark=not no_watermark)
    if code:
        raise typer.Exit(code)


if __name__ == "__main__":
    main()

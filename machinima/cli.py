"""The ``machinima`` command: the core's own commands (takes, demo) plus every spoke's,
found by name through the ``machinima.cli`` entry points and imported only when used.

Errors meant for people (``MachinimaError``) and OS errors (a missing folder, no permission)
print as one line and exit 1, no traceback, in every command: ``run`` is the one place that
says so, for this app and for ``python -m server``.
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
from .distributed.cli import BareRayGroup
from .edit_cli import app as edit_app
from .errors import MachinimaError, TakeError
from .post_cli import app as post_app

console = Console()
err_console = Console(stderr=True, soft_wrap=True)  # one-line errors stay one line in logs
log = logging.getLogger("machinima")

app = typer.Typer(
    name="machinima",
    cls=BareRayGroup,  # a bare --ray on any step means --ray auto
    help="A production toolkit for films shot inside virtual worlds.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
takes_app = typer.Typer(help="List, inspect, verify, recover, circle, export and import takes.", no_args_is_help=True)
app.add_typer(takes_app, name="takes")
app.add_typer(edit_app, name="edit")
examples_app = typer.Typer(help="Shipped examples (looks, dreams, presets, sets, mappings, profiles, settings): list, copy.", no_args_is_help=True)
app.add_typer(examples_app, name="examples")
models_app = typer.Typer(help="Local model weights: what each look needs, what is there, what is missing (offline).", no_args_is_help=True)
app.add_typer(models_app, name="models")
app.add_typer(post_app, name="post")


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


def resolve_take(take: str | Path, root: Optional[Path] = None) -> Path:
    """A take given as an id or a folder (relative or absolute), resolved against the takes
    root (``--root``, else the configured one): ``machinima.takeref.find_take``."""
    from .takeref import find_take

    return find_take(take, _takes_root(root))


def resolve_in_take(path: str | Path, root: Optional[Path] = None) -> Path:
    """A folder inside a take (``TAKE/post/STEP``) whose take part may be an id."""
    from .takeref import find_in_take

    return find_in_take(path, _takes_root(root))


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
    circled: bool = typer.Option(False, "--circled", help="Only circled takes (with the version to cut with)."),
    used_in: Optional[str] = typer.Option(None, "--used-in", help="Only takes an imported cut uses (its name or file), with the frames."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (for scripts)."),
) -> None:
    """List takes from the catalog (brought up to date with the folders first)."""
    from .catalog import Catalog

    r = _takes_root(root)
    if not r.is_dir():
        raise TakeError(f"no takes folder {r}", hint="give --root, or record or import a take first")
    cat = Catalog(r)
    cat.sync()
    rows = cat.search(production=production, scene=scene, shot=shot, status=status, performer=performer, since=since, text=text)
    if circled or used_in:
        rows = _editorial_rows(rows, circled, used_in)
    if as_json:
        import json

        print(json.dumps(rows, indent=2))
        return
    table = Table(title=f"takes in {r}")
    table.add_column("id", no_wrap=True)
    extra = [c for c in ("circle", "used") if rows and c in rows[0]]
    for col in ("status", "fps", "in", "out", "performers", "created", *extra):
        table.add_column(col)
    for row in rows:
        table.add_row(row["id"], row["status"], row["fps"], row["timecode_in"] or "", row["timecode_out"] or "", ", ".join(row["performers"]),
                      (row["created"] or "")[:10], *(str(row[c]) for c in extra))
    console.print(table)


def _editorial_rows(rows: list[dict], circled: bool, used_in: Optional[str]) -> list[dict]:
    """Keep circled takes and/or those a cut uses, adding the circle's version and the used frames."""
    from .editorial import used_ranges
    from .take import read_manifest

    out = []
    for row in rows:
        m = read_manifest(Path(row["path"]))
        used = used_ranges(m, used_in) if used_in else []
        if (circled and not m.circle) or (used_in and not used):
            continue
        row = dict(row, circle=(m.circle or {}).get("version", ""))
        if used_in:
            row["used"] = " ".join(f"{a}-{b}" for a, b in used)
        out.append(row)
    return out


@takes_app.command("circle")
def takes_circle(
    take: str,
    version: str = typer.Option("render", "--version", help="What the editor gets: render | composite | stylize | archive | a post step id."),
    note: str = typer.Option("", "--note", help="Why (kept in take.json)."),
    off: bool = typer.Option(False, "--off", help="Uncircle the take."),
    root: Optional[Path] = RootOpt,
) -> None:
    """Circle a take (the director's pick) with the version to cut with: `edit export` cuts circled takes."""
    from .editorial import set_circle

    circle = set_circle(resolve_take(take, root), None if off else version, note)
    console.print(f"{Path(take).name}: " + (f"circled ({circle['version']})" if circle else "not circled"))


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
    if m.circle:
        console.print(f"  circled: {m.circle['version']} {m.circle.get('note', '')}".rstrip())
    for use in m.used_in:
        console.print(f"  used in {use['cut']}: " + ", ".join(f"{a}-{b}" for a, b in use["ranges"]))


@takes_app.command("verify")
def takes_verify(take: str, root: Optional[Path] = RootOpt) -> None:
    """Check a take: manifest, streams file, SQLite integrity, sample counts, and its post steps'
    frames (each done frame on disk, QOI frames unchanged, their disclosure.png). Exit 1 on problems."""
    from .take import Take

    t = Take.open(resolve_take(take, root))
    problems = t.verify()
    for name, (counts, _) in t.post_steps().items():  # frames on disk; their signatures: machinima verify
        side = ", disclosure.png" if counts["sidecar"] else ""
        console.print(f"post/{name}: {counts['frames']} frames, {counts['files']} files ({counts['qoi']} QOI{side})", highlight=False)
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
    out: Path = typer.Option(..., "--out", "-o", help="Output file (.bvh/.glb/.fbx, .mp4/.mov) or folder (one file per performer for BVH, per take for glb/fbx; frames for exr/png)."),
    fmt: Optional[str] = typer.Option(None, "--format", "-f", help="motion: bvh | glb | fbx (default: from --out's suffix, else bvh); with --step: mp4 | prores | dnxhr | exr | png (default mp4)."),
    step: Optional[str] = typer.Option(None, "--step", help="Deliver a post step's pictures (a folder under TAKE/post) instead of the motion."),
    output: Optional[str] = typer.Option(None, "--output", help="With --step: which of its outputs (default rgb, else frames)."),
    performer: Optional[str] = typer.Option(None, help="Performer to export; default: all."),
    engine: str = typer.Option("unity", "--engine", help="glb/fbx: unity | unreal | godot | blender (FBX axes and units)."),
    bone_names: str = typer.Option("canonical", "--bone-names", help="glb/fbx: canonical | vrm0 | vrm1 bone names."),
    rotation_order: str = typer.Option("ZXY", "--rotation-order", help="BVH: Euler order of the rotation channels (XYZ, XZY, YXZ, YZX, ZXY, ZYX)."),
    root: Optional[Path] = RootOpt,
) -> None:
    """Export a take: BVH (resampled to the take's fps, centimetres, the performer's own proportions;
    Blender reads back the same joint positions), or animated glb/fbx for engines (through Blender);
    with --step, a post step's pictures as mp4 / ProRes / DNxHR with timecode, or EXR / PNG frames,
    disclosed (marked and signed) as delivered."""
    from .interchange import ExportRequest, export_take_as

    if step is not None:
        import time as _time

        from .delivery import export_step

        t0 = _time.perf_counter()
        with console.status(f"delivering {take} {step} ..."):
            written = export_step(resolve_take(take, root), step, fmt or "mp4", out, output=output)
        for path in written:
            console.print(f"wrote {path}")
        console.print(f"delivered in {_time.perf_counter() - t0:.1f} s")
        return
    if output is not None:
        raise typer.BadParameter("--output needs --step")

    req = ExportRequest(resolve_take(take, root), out, performer, engine, bone_names, rotation_order)
    with console.status(f"exporting {take} ..."):  # glb/fbx: a Blender process, seconds per minute of take
        written = export_take_as(fmt, req)
    for path in written:
        console.print(f"wrote {path}")


@takes_app.command("import")
def takes_import(
    bvh: Path,
    performer: str = typer.Option(..., help="Performer name for the imported motion."),
    scene: str = typer.Option("imported"),
    shot: str = typer.Option("bvh"),
    production: Optional[str] = typer.Option(None),
    bone_map: Optional[str] = typer.Option(None, "--bone-map", help="Shipped map (mixamo, humanik, biovision, cmu, rokoko) or a .toml file; default: chosen by joint names."),
    units: str = typer.Option("auto", "--units", help="File units: cm, m, mm, in, or auto (from the rest pose's height)."),
    root: Optional[Path] = RootOpt,
) -> None:
    """Create a new take from a BVH file (any skeleton: retargeted with a bone map, the file's own
    skeleton kept in the take's source record)."""
    from .bvhimport import import_bvh

    cfg = load_config()
    result = import_bvh(bvh, _takes_root(root), production=production or cfg.production, scene=scene, shot=shot, performer=performer,
                        bone_map=bone_map, units=units)
    print_bvh_report(result)
    console.print(f"created {result.take_id}")


def print_bvh_report(result, info_console: Console | None = None) -> None:
    """What a BVH reader chose (map, units, fps) and what it could not map, one line each;
    warnings go to stderr, information to ``info_console`` (stdout by default)."""
    info, warnings = result.report()
    for line in info:
        (info_console or console).print(escape(line), highlight=False)
    for line in warnings:
        err_console.print(f"[yellow]warning[/]: {escape(line)}", highlight=False)


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


@examples_app.command("list")
def examples_list(
    kind: Optional[str] = typer.Option(None, "--kind", help="Only this kind (look, dream, set, ...)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (for scripts)."),
) -> None:
    """Every example shipped with machinima, by name: use the name where a command takes the file
    (--look watercolor-sd15), or copy the file out to edit it."""
    from .examples import kinds, shipped

    if not kinds():  # an editable install older than the entry points
        raise MachinimaError("no shipped examples are registered", hint="reinstall machinima (`pip install -e .` in a checkout) to register its entry points")
    if kind and kind not in kinds():
        raise MachinimaError(f"no example kind {kind!r}", hint=f"kinds: {', '.join(kinds())}")
    rows = shipped(kind)
    if as_json:
        import json

        print(json.dumps([{"kind": e.kind, "name": e.name, "file": e.path.name, "about": e.summary()} for e in rows], indent=2))
        return
    table = Table(title="shipped examples: `machinima examples copy NAME DIR` copies one out")
    for col in ("kind", "name", "what it is"):
        table.add_column(col, no_wrap=col != "what it is")
    for e in rows:
        table.add_row(e.kind, e.name, e.summary())
    console.print(table)


@examples_app.command("copy")
def examples_copy(
    name: str = typer.Argument(..., help="An example's name (diner) or KIND/NAME (set/diner)."),
    dest: Path = typer.Argument(Path("."), help="Folder to copy it into (created)."),
    force: bool = typer.Option(False, "--force", help="Overwrite a file of the same name."),
) -> None:
    """Copy a shipped example into DIR, to edit and use as your own."""
    from .examples import copy

    console.print(f"wrote {copy(name, dest, force=force)}", highlight=False)


@models_app.command("check")
def models_check(
    look: list[str] = typer.Option([], "--look", help="A look file or shipped name to check (repeatable); default: every shipped look."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (for scripts)."),
) -> None:
    """Say, without loading anything, which weights each look needs under models_dir, which are
    there, and what is missing; exit 1 when a look named with --look cannot run."""
    from .models import check_models

    cfg = load_config()
    rep = check_models(cfg.models_dir, list(look))
    named = {f"look {x}" for x in look}
    if as_json:
        import json

        print(json.dumps({"models_dir": str(rep.models_dir), "present": [{"path": p, "what": w} for p, w in rep.present],
                          "needs": [{"user": c.need.user, "what": c.need.what, "path": str(c.where), "state": c.state, "detail": c.detail,
                                     "expect": c.need.expect(), "fallback": c.need.fallback} for c in rep.checks],
                          "problems": rep.problems}, indent=2))
    else:
        _print_models(rep)
    if rep.problems or (look and rep.missing(named)):
        raise typer.Exit(1)


def _print_models(rep) -> None:
    where = rep.models_dir
    console.print(f"models_dir: {where}" + ("" if where.is_dir() else "  (does not exist: make it and put weights there; docs/models.md)"),
                  highlight=False, soft_wrap=True)
    for p, w in rep.present:
        console.print(escape(f"  on disk    {p}  {w}"), highlight=False, soft_wrap=True)
    users: dict[str, list] = {}
    for c in rep.checks:
        users.setdefault(c.need.user, []).append(c)
    for user, checks in users.items():
        short = [c for c in checks if not c.ok and not c.need.fallback]
        console.print(f"{user}: " + ("[green]ready[/]" if not short else f"[red]cannot run: {len(short)} missing or incomplete[/]"), soft_wrap=True)
        for c in checks:
            rel = c.where.relative_to(where) if c.where.is_relative_to(where) else c.where
            state = "ok" if c.ok else ("optional" if c.need.fallback else c.state)
            console.print(escape(f"  {state:<10} {rel}  {c.need.what}{f' ({c.detail})' if c.detail else ''}"), highlight=False,
                          style=None if c.ok or c.need.fallback else "red", soft_wrap=True)
            if not c.ok:
                alt = f"; without it: {c.need.fallback}" if c.need.fallback else ""
                console.print(escape(f"             put {c.need.expect()} there{alt}"), highlight=False, soft_wrap=True)
    for p in rep.problems:
        err_console.print(f"[red]problem[/] {escape(p)}", highlight=False)


@app.command("demo")
def demo(
    out: Path = typer.Option(Path("demo-out"), "--out", help="Where the demo writes its takes and outputs."),
    quality: bool = typer.Option(False, "--quality", help="Train the face model 2,000 iterations (the swapped face passes as the source person; ~14 min more on a CPU)."),
) -> None:
    """Run the whole film end to end on synthetic performers (offline; resumable)."""
    from .demo import run_demo

    run_demo(out, console, quality=quality)


_registered = False


def _register_plugins() -> None:
    """Add each spoke's commands: a Typer app becomes a command group, a plain function a single
    command. A missing or broken spoke is logged and skipped. Once per process."""
    global _registered
    if _registered:
        return
    _registered = True
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
    run(app, argv)


def run(typer_app: typer.Typer, argv: list[str] | None = None, prog_name: str | None = None) -> None:
    """Run a command with the errors a person can cause as one line each, exit status 1."""
    try:
        typer_app(args=argv, prog_name=prog_name, standalone_mode=True)
    except MachinimaError as exc:
        _error(str(exc))
    except OSError as exc:
        _error(describe_os_error(exc))
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]")
        sys.exit(130)


def _error(text: str) -> None:
    err_console.print(f"[red]error:[/] {escape(text)}", highlight=False)  # "[model]" is text, not markup
    sys.exit(1)


def describe_os_error(exc: OSError) -> str:
    """``No such file or directory: takes/x`` rather than ``[Errno 2] ...`` and a traceback."""
    what = exc.strerror or str(exc) or type(exc).__name__
    names = [str(n) for n in (exc.filename, exc.filename2) if n is not None]
    return f"{what}: {' -> '.join(names)}" if names else what


@app.command("verify")
def verify(
    target: Path = typer.Argument(..., help="A PNG/JPEG/MP4 file, a take (id or folder, or TAKE/post/STEP) or a delivery folder."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (one object per file, with status and reason)."),
    no_watermark: bool = typer.Option(False, "--no-watermark", help="Skip watermark decoding (faster; forged or stripped marks go unseen)."),
    root: Optional[Path] = RootOpt,
) -> None:
    """Check disclosure: signed by a trusted key, unchanged, watermark authentic. Exit 1 on anything else, with the reason."""
    from .verify_cli import run_verify

    code = run_verify(resolve_in_take(target, root), as_json=as_json, watermark=not no_watermark)
    if code:
        raise typer.Exit(code)


if __name__ == "__main__":
    main()

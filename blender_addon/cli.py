"""``machinima blender ...``: the add-on's operations headless, through the ``bpy`` module.

bpy is imported inside the commands, so ``machinima --help`` stays fast.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Optional

import typer

from machinima.cli import resolve_take

app = typer.Typer(help="Blender: build sets, import takes, render passes for post, export to engines, package the extension.",
                  no_args_is_help=True)


def _bpy():
    import bpy

    return bpy


def _fresh(blend: Optional[Path] = None):
    bpy = _bpy()
    if blend:
        from .errors import BlenderAddonError

        if not blend.exists():
            raise BlenderAddonError(f"no .blend at {blend}")
        bpy.ops.wm.open_mainfile(filepath=str(blend))
    else:
        bpy.ops.wm.read_factory_settings(use_empty=True)
    return bpy


def _save(bpy, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    bpy.ops.wm.save_as_mainfile(filepath=str(out.resolve()))


@app.command("check-set")
def check_set(set_file: Path = typer.Argument(..., help="A .toml or .json set file")) -> None:
    """Check a set file without Blender: every problem names the entry and the field."""
    from .setfile import load_set

    spec = load_set(set_file)
    typer.echo(f"set {spec.name!r}: {len(spec.materials)} materials, {len(spec.walls)} walls, {len(spec.props)} props, "
               f"{len(spec.lights)} lights, {len(spec.cameras)} cameras, groups {spec.groups()}")


@app.command("example-set")
def example_set() -> None:
    """Print the example set file (a small diner) to start from."""
    from .setfile import EXAMPLE_SET

    typer.echo(EXAMPLE_SET.read_text(), nl=False)


@app.command("build-set")
def build_set_cmd(
    set_file: Path = typer.Argument(..., help="A .toml or .json set file"),
    out: Path = typer.Option(..., "--out", help="The .blend to write"),
    blend: Optional[Path] = typer.Option(None, "--blend", help="Update the set inside this .blend instead of a new scene"),
) -> None:
    """Build (or update in place) a set and save it as a .blend."""
    from .setfile import load_set

    spec = load_set(set_file)
    bpy = _fresh(blend)
    from .build import build_set

    report = build_set(spec, bpy.context.scene)
    _save(bpy, out)
    typer.echo(f"{report.summary()} -> {out}")


@app.command("import-take")
def import_take_cmd(
    take: str = typer.Argument(..., help="A take id or folder"),
    out: Path = typer.Option(..., "--out", help="The .blend to write"),
    set_file: Optional[Path] = typer.Option(None, "--set", help="Build this set first"),
    blend: Optional[Path] = typer.Option(None, "--blend", help="Import into this .blend"),
    rig: Optional[str] = typer.Option(None, "--rig", help="Retarget onto this armature (in --blend) instead of making one"),
    bone_map: Optional[Path] = typer.Option(None, "--bone-map", help="JSON {canonical bone: rig bone} for --rig"),
) -> None:
    """Import a take (armatures, engine cameras, markers, frame range) and save a .blend."""
    from .errors import TakeImportError

    take_path = resolve_take(take)  # before bpy loads: a typo fails at once

    mapping = None
    if bone_map:
        try:
            mapping = json.loads(bone_map.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise TakeImportError(f"bone map {bone_map} cannot be read: {exc}") from None
    bpy = _fresh(blend)
    from .build import build_set
    from .takeimport import import_take

    if set_file:
        build_set(set_file, bpy.context.scene)
    report = import_take(take_path, bpy.context.scene, rig=rig, bone_map=mapping)
    _save(bpy, out)
    typer.echo(f"{report.summary()} -> {out}")


def _stops_on_ctrl_c(command):
    """Ctrl-C (or SIGTERM) during the command stops it at once, even inside a Cycles frame: the
    take's finished frames stay, temporary files go, one line says so (``interrupt.py``)."""

    @functools.wraps(command)
    def run(*args, **kwargs):
        from .interrupt import clean_passes, exit_on_interrupt

        passes_dir = Path(resolve_take(kwargs["take"])) / "passes"

        def stopped() -> str:
            n = clean_passes(passes_dir)
            return f"interrupted: {n} finished frames kept in {passes_dir}; run the same command again to resume"

        with exit_on_interrupt(stopped):
            return command(*args, **kwargs)

    return run


@app.command("render")
@_stops_on_ctrl_c
def render_cmd(
    take: str = typer.Argument(..., help="A take id or folder: passes go to <take>/passes/"),
    set_file: Optional[Path] = typer.Option(None, "--set", help="The set file to build"),
    blend: Optional[Path] = typer.Option(None, "--blend", help="Start from this .blend (a set built or dressed by hand)"),
    passes: str = typer.Option("rgb,depth,mask,pose", "--passes", help="Any of rgb,depth,normal,mask,pose,light,motion"),
    res: str = typer.Option("960x540", "--res", help="WIDTHxHEIGHT"),
    engine: str = typer.Option("cycles", "--engine", help="cycles | eevee | workbench (for the rgb pass)"),
    frames: Optional[str] = typer.Option(None, "--frames", help="A:B (inclusive, take frames); default: the whole take"),
    step: int = typer.Option(1, "--step", help="Render every Nth frame"),
    samples: int = typer.Option(16, "--samples", help="Cycles/EEVEE samples for rgb"),
    camera: Optional[str] = typer.Option(None, "--camera", help="Camera object; default: the take's engine camera, else the set's first"),
    save: Optional[Path] = typer.Option(None, "--save", help="Also save the assembled scene as this .blend"),
    denoise: bool = typer.Option(True, "--denoise/--no-denoise", help="Cycles: OpenImageDenoise on the rgb pass"),
) -> None:
    """Set + take -> passes (rgb, depth, normal, masks, pose map, light, motion, camera.json) in the take folder.
    Ctrl-C stops at once, keeps the finished frames and removes temporary files; rerun to resume."""
    from .render import RenderSettings, parse_frames, parse_res

    take_path = resolve_take(take)

    w, h = parse_res(res)
    settings = RenderSettings(passes=tuple(p.strip() for p in passes.split(",") if p.strip()), width=w, height=h,
                              engine=engine, frames=parse_frames(frames), step=step, samples=samples, camera=camera, denoise=denoise)
    settings.check()
    for w in settings.warnings():
        typer.echo(f"warning: {w}", err=True)
    _bpy()
    from .render import render_take

    report = render_take(take_path, settings, set_path=set_file, blend=blend)
    if save:
        _save(_bpy(), save)
    typer.echo(report.summary())


@app.command("export")
def export_cmd(
    set_file: Optional[Path] = typer.Argument(None, help="A set file (or a .blend holding a built set); optional with --take"),
    take: Optional[str] = typer.Option(None, "--take", help="A take (id or folder): performers, cameras, lip sync, markers, animated"),
    glb: Optional[Path] = typer.Option(None, "--glb", help="Write a glTF binary"),
    fbx: Optional[Path] = typer.Option(None, "--fbx", help="Write an FBX"),
    engine: str = typer.Option("unity", "--engine", help="unity | unreal | godot | blender: FBX axes and units (glb is the same for all)"),
    bone_names: str = typer.Option("canonical", "--bone-names", help="canonical (Unity humanoid) | vrm0 | vrm1: armature bone names"),
    performer: list[str] = typer.Option([], "--performer", help="Only this performer (repeatable); default: all"),
    no_cameras: bool = typer.Option(False, "--no-cameras", help="Leave the take's engine cameras out"),
    root: Optional[Path] = typer.Option(None, "--root", help="Takes root for a take id (default: from machinima.toml)"),
) -> None:
    """Export a set and/or a take as .glb and/or .fbx for Unity, Unreal, Godot or Blender."""
    from .errors import ExportError
    from .export import check_target

    if not glb and not fbx:
        raise ExportError("say where to write: --glb out.glb and/or --fbx out.fbx")
    if set_file is None and take is None:
        raise ExportError("say what to export: a set file, --take TAKE, or both")
    for out in (glb, fbx):
        if out:
            check_target(out, engine)
    take_path = resolve_take(take, root) if take is not None else None  # before bpy loads: a typo fails at once
    if set_file is not None and set_file.suffix.lower() == ".blend":
        bpy = _fresh(set_file)
    elif set_file is not None:
        from .setfile import load_set

        spec = load_set(set_file)
        bpy = _fresh()
        from .build import build_set

        build_set(spec, bpy.context.scene)
    else:
        bpy = _fresh()
    for out in (glb, fbx):
        if not out:
            continue
        if take_path is None:
            from .export import export_set

            typer.echo(f"wrote {export_set(out, engine=engine, scene=bpy.context.scene)}")
            continue
        from .take_export import TakeExportSettings, export_take

        settings = TakeExportSettings(engine=engine, bone_names=bone_names, performers=tuple(performer), cameras=not no_cameras)
        typer.echo(export_take(take_path, out, settings, scene=bpy.context.scene, with_set=set_file is not None).summary())


@app.command("package")
def package_cmd(
    out: Path = typer.Option(Path("dist"), "--out", help="Folder for the extension zip"),
    wheel: list[Path] = typer.Option([], "--wheel", help="Extra wheel to bundle (repeatable), e.g. opencv-python-headless"),
) -> None:
    """Build the Blender extension zip (Install from Disk in Blender 4.2+)."""
    from .package import build_package

    typer.echo(f"wrote {build_package(out, extra_wheels=wheel)}")

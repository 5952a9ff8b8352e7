"""``machinima composite TAKE --plate clip.mp4 --key green --place X,Y,Z``: one command, no sub-commands.

The Typer app's callback takes the arguments (``invoke_without_command``), so the command reads
as the issue writes it. Heavy imports (cv2, av, torch) happen inside, so ``machinima --help``
stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from machinima.distributed.cli import BareRayGroup

from .errors import SettingsError

SCHEMA = "machinima.composite"

app = typer.Typer(
    cls=BareRayGroup,  # --ray with no address: auto
    help="Composite a filmed actor (plate) into a rendered take: occluded and lit by the set.",
    invoke_without_command=True,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    subcommand_metavar="",
    context_settings={"allow_interspersed_args": True},  # options after TAKE, as people type them
)


def _floats(text: Optional[str], n: int, flag: str) -> Optional[tuple[float, ...]]:
    if text is None:
        return None
    try:
        vals = tuple(float(v) for v in text.replace(" ", "").split(","))
    except ValueError:
        vals = ()
    if len(vals) != n:
        raise SettingsError(f"{flag} needs {n} comma-separated numbers, got {text!r}")
    return vals


def _frames(text: Optional[str]) -> Optional[tuple[int, int]]:
    if text is None:
        return None
    try:
        a, b = text.split(":")
        return int(a), int(b)
    except ValueError:
        raise SettingsError(f"--frames needs START:END (END excluded), got {text!r}") from None


def _model_paths(depth_model: Optional[Path], seg_model: Optional[Path]) -> tuple[Optional[Path], Optional[Path]]:
    """Model folders from the flags or ``[composite] depth_model / seg_model`` in machinima.toml;
    relative paths are under the project's ``models_dir`` (a clear "put it there" error if missing)."""
    from machinima.config import load_config

    cfg = load_config()
    sec = cfg.section("composite")
    out = []
    for flag, key, what in ((depth_model, "depth_model", "depth model"), (seg_model, "seg_model", "segmentation model")):
        value = flag if flag is not None else sec.get(key)
        if value is None:
            out.append(None)
            continue
        p = Path(str(value)).expanduser()
        out.append(p if p.exists() else cfg.model_path(p, what=what, expect="config.json, weights and preprocessor_config.json from save_pretrained"))
    return out[0], out[1]


@app.callback()
def composite(
    ctx: typer.Context,
    take: Optional[str] = typer.Argument(None, help="Take folder or id (in the takes root)."),
    settings: Optional[Path] = typer.Option(None, "--settings", help="A TOML of these options (keys without dashes); flags on the line win. "
                                            "Example: `machinima examples copy composite .`"),
    plate: Optional[Path] = typer.Option(None, "--plate", help="Video file or folder of numbered frames of the actor."),
    key: str = typer.Option("auto", "--key", help="Matte: auto (plate alpha, else green), green, blue, alpha, segment."),
    screen_rgb: Optional[str] = typer.Option(None, "--screen-rgb", help="Screen colour R,G,B (default: measured on the plate's border)."),
    clip_black: float = typer.Option(0.25, help="Key: colour difference (fraction of the screen's) below which the actor is solid."),
    clip_white: float = typer.Option(0.75, help="Key: colour difference above which it is pure screen."),
    spill: float = typer.Option(1.0, help="Spill suppression 0..1."),
    softness: float = typer.Option(0.0, help="Extra matte edge blur (Gaussian sigma, px); unmixed edges are as soft as the plate."),
    edges: str = typer.Option("unmix", "--edges", help="Key edges: unmix (screen colour and spill taken out, colour unpremultiplied) or classic."),
    choke: int = typer.Option(0, help="Erode (>0) or dilate (<0) the matte, px."),
    seg_model: Optional[Path] = typer.Option(None, "--seg-model", help="Segmentation model folder (with --key segment)."),
    seg_label: str = typer.Option("person", "--seg-label"),
    place: Optional[str] = typer.Option(None, "--place", help="World X,Y,Z (Y-up, metres) of the actor's feet in the set."),
    ground_contact: Optional[str] = typer.Option(None, "--ground-contact", help="Plate pixel U,V of the feet (default: lowest matte point)."),
    ground_y: Optional[float] = typer.Option(None, "--ground-y", help="Ground plane height (default: --place Y, else 0)."),
    height: float = typer.Option(1.75, "--height", help="Actor height in metres (scales the plate with --place)."),
    plate_scale: Optional[float] = typer.Option(None, "--plate-scale", help="Explicit plate-to-frame scale (overrides --height)."),
    track: bool = typer.Option(True, "--track/--no-track", help="Follow the feet along the ground each frame (else a fixed billboard)."),
    smooth_feet: int = typer.Option(5, "--smooth-feet", help="Window (frames) for voting out stray feet positions; 1 = none."),
    depth_model: Optional[Path] = typer.Option(None, "--depth-model", help="Monocular depth model folder (transformers)."),
    depth_kind: str = typer.Option("auto", "--depth-kind", help="auto, disparity or metric."),
    body_depth: float = typer.Option(0.5, "--body-depth", help="Max relief of the depth model around the billboard, metres."),
    offset: float = typer.Option(0.0, "--offset", help="Plate frames at take frame 0 (positive skips the plate's head)."),
    plate_timecode: Optional[str] = typer.Option(None, "--plate-timecode", help="Timecode of the plate's first frame (aligns by timecode)."),
    timecode_align: bool = typer.Option(False, "--timecode-align", help="Align by the video's own timecode."),
    plate_fps: Optional[str] = typer.Option(None, "--plate-fps", help="Plate frame rate (default: the video's, or the take's for a folder)."),
    resample: str = typer.Option("nearest", "--resample", help="nearest or blend (different frame rates)."),
    light: str = typer.Option("auto", "--light", help="auto (pass if rendered, else estimate), pass (per pixel), contact (the pass at the feet), estimate, none."),
    light_pass: Optional[str] = typer.Option(None, "--light-pass", help="Name of the light/shadow pass (default: light, then shadow)."),
    color_match: str = typer.Option("lab", "--color-match", help="lab, histogram or none."),
    color_strength: float = typer.Option(0.5, "--color-strength", help="0..1."),
    grain_mode: str = typer.Option("auto", "--grain", help="auto, plate, set or none."),
    grain_size: float = typer.Option(1.0, "--grain-size"),
    depth_bias: float = typer.Option(0.25, "--depth-bias", help="Metres the actor counts as nearer in the z-test."),
    edge: float = typer.Option(1.0, "--edge", help="Occlusion edge softness (px)."),
    wrap_radius: float = typer.Option(8.0, "--wrap-radius"),
    wrap_strength: float = typer.Option(0.4, "--wrap-strength"),
    shadow_opacity: float = typer.Option(0.45, "--shadow", help="Contact shadow opacity (0 = none)."),
    frames: Optional[str] = typer.Option(None, "--frames", help="START:END take frames (END excluded)."),
    fmt: str = typer.Option("png", "--format", help="png or exr frames."),
    video: bool = typer.Option(True, "--video/--no-video", help="Also write composite.mp4."),
    step_id: str = typer.Option("composite", "--step-id", help="Output folder under <take>/post/."),
    device: str = typer.Option("cpu", "--device", help="Device for models (cpu, cuda)."),
    dtype: str = typer.Option("float32", "--dtype", help="Model dtype (float16 on GPU)."),
    workers: int = typer.Option(2, "--workers", help="Frames composited side by side (threads)."),
    root: Optional[Path] = typer.Option(None, "--root", help="Takes root."),
    ray: Optional[str] = typer.Option(None, "--ray", metavar="[ADDRESS]", help="Run the frames as chunks on a Ray cluster (bare --ray: RAY_ADDRESS, a running cluster, else a local one): host:6379, ray://host:10001 or local "
                                      "(the take and plate on storage every node sees)."),
    chunk: Optional[int] = typer.Option(None, "--chunk", min=1, help="With --ray: frames per task (default: measured, ~2 s of work a task, at least 2 tasks a worker)."),
    demo: Optional[Path] = typer.Option(None, "--demo", help="Without TAKE: write a synthetic set + green-screen plate into DIR and composite it. "
                                        "With TAKE: draw a green-screen actor through the take's cameras into DIR and composite that."),
) -> None:
    """Composite a plate into TAKE; outputs go to <take>/post/<step-id>/ (resumable: rerun to continue)."""
    from machinima.settingsfile import apply_settings

    values = apply_settings(ctx, settings, SCHEMA)
    values.pop("settings", None)
    _composite(**values)


def _composite(
    *,
    take, plate, key, screen_rgb, clip_black, clip_white, spill, softness, edges, choke, seg_model, seg_label,
    place, ground_contact, ground_y, height, plate_scale, track, smooth_feet, depth_model, depth_kind, body_depth,
    offset, plate_timecode, timecode_align, plate_fps, resample, light, light_pass, color_match, color_strength,
    grain_mode, grain_size, depth_bias, edge, wrap_radius, wrap_strength, shadow_opacity, frames, fmt, video,
    step_id, device, dtype, workers, root, demo, ray, chunk,
) -> None:
    """The command, its values from the line, the settings file and the defaults."""
    from rich.console import Console

    from .chain import ChainSettings
    from .keyer import KeySettings
    from .pipeline import CompositeSettings, run_composite
    from .placement import PlacementSettings

    console = Console()
    if demo is not None and plate is None:
        from .demo_scene import make_demo, plate_for_take

        if take is None:
            take_path, plate, pos = make_demo(demo)
        else:
            from machinima.cli import resolve_take

            take_path = resolve_take(take, root)
            plate, pos = plate_for_take(take_path, demo, ground_y=ground_y or 0.0)
        place = place or ",".join(f"{v:.4f}" for v in pos)
        key = "green" if key == "auto" else key
        console.print(f"demo take {take_path}, plate {plate}, --place {place}")
    else:
        if take is None or plate is None:
            raise SettingsError("give a TAKE and --plate (or --demo DIR)", hint="machinima composite TAKE --plate clip.mp4 --key green --place X,Y,Z")
        from machinima.cli import resolve_take

        take_path = resolve_take(take, root)
    depth_model, seg_model = _model_paths(depth_model, seg_model)
    srgb = _floats(screen_rgb, 3, "--screen-rgb")
    settings = CompositeSettings(
        plate=Path(plate),
        matte=key,
        key=KeySettings(screen=key if key in ("green", "blue") else "green", screen_rgb=tuple(int(v) for v in srgb) if srgb else None,
                        clip_black=clip_black, clip_white=clip_white, spill=spill, softness=softness, choke=choke, edges=edges),
        seg_model=seg_model, seg_label=seg_label,
        placement=PlacementSettings(position=_floats(place, 3, "--place"), ground_y=ground_y, contact=_floats(ground_contact, 2, "--ground-contact"),
                                    height_m=height, scale=plate_scale, track=track),
        depth_model=depth_model, depth_kind=depth_kind, body_depth=body_depth,
        plate_fps=plate_fps, offset=offset, plate_timecode=plate_timecode, align_timecode=timecode_align, resample=resample,
        light=light, light_pass=light_pass, color_match=color_match, color_strength=color_strength,
        grain=grain_mode, grain_size=grain_size,
        chain=ChainSettings(depth_bias=depth_bias, edge_px=edge, wrap_radius=wrap_radius, wrap_strength=wrap_strength, shadow_opacity=shadow_opacity),
        frames=_frames(frames), output_format=fmt, video=video, step_id=step_id, device=device, dtype=dtype, workers=workers, smooth_feet=smooth_feet,
    )
    res = run_composite(take_path, settings, ray=ray, chunk_size=chunk)
    r = res.report
    for line in getattr(r, "summary_lines", lambda: [])():
        console.print(line)
    console.print(f"composite: {len(r.done)} frames done, {len(r.skipped)} already done, {r.fps:.1f} fr/s -> {res.out_dir}")
    if res.setup:  # before the loop: where the rest of the wall time went
        console.print(f"set-up: {sum(res.setup.values()):.1f} s (" + ", ".join(f"{k.replace('_', ' ')} {v:.1f}" for k, v in res.setup.items()) + ")")
    if res.frames_note:
        console.print(f"passes: {res.frames_note}")
    if res.video:
        console.print(f"movie: {res.video}")

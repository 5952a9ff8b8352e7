"""``machinima animate TAKE --look look.toml``: AnimateDiff video-to-video over a whole take.

    machinima animate TAKE --look animatediff-sd15 [--motion-adapter DIR] [--frames 0:95]
                           [--context 16 --overlap 4] [--looped] [--input PLATES/] [--step-id ID]

Heavy imports (torch, diffusers) happen inside the command so ``machinima --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def animate(
    take: str = typer.Argument(..., help="Take folder or id."),
    look: str = typer.Option("animatediff-sd15", "--look", help="Look file (TOML with an \\[animatediff] table) or a shipped name."),
    motion_adapter: Optional[str] = typer.Option(None, "--motion-adapter", help="Motion adapter folder or file (overrides the look)."),
    frames: Optional[str] = typer.Option(None, "--frames", help="Frame range A:B (inclusive)."),
    context: Optional[int] = typer.Option(None, "--context", help="Frames per context window (default from the look, 16)."),
    overlap: Optional[int] = typer.Option(None, "--overlap", help="Frames shared by neighbouring windows."),
    looped: Optional[bool] = typer.Option(None, "--looped/--no-looped", help="Treat the take as a loop (last frames blend into the first)."),
    input_folder: Optional[Path] = typer.Option(None, "--input", help="Animate this image sequence instead of the rgb pass."),
    step_id: Optional[str] = typer.Option(None, "--step-id", help="Output folder name under post/ (default animatediff-<look>)."),
    root: Optional[Path] = typer.Option(None, "--root", help="Takes root."),
    no_video: bool = typer.Option(False, "--no-video", help="Skip the mp4."),
    ray: Optional[str] = typer.Option(None, "--ray", metavar="[ADDRESS]", help="One Ray task per segment (shot) on this cluster (bare --ray: RAY_ADDRESS, a running cluster, else a local one; or host:6379, local)."),
    gpus: float = typer.Option(0, "--gpus", help="With --ray: GPUs per segment (1 on a GPU cluster)."),
) -> None:
    """AnimateDiff a take in sliding context windows (resumable: rerun to continue)."""
    from rich.console import Console

    from machinima.cli import resolve_take

    from .animatediff import animate_take, check_look, load_animate_look
    from .runner import parse_range

    lk, motion = load_animate_look(look)
    if motion_adapter:
        motion.motion_adapter = motion_adapter
    if context is not None:
        motion.context_length = context
    if overlap is not None:
        motion.context_overlap = overlap
    if looped is not None:
        motion.looped = looped
    check_look(lk, motion, look)
    if ray:
        from .animate_distributed import animate_take_on_ray

        res = animate_take_on_ray(resolve_take(take, root), lk, motion, address=ray, frames=parse_range(frames), step_id=step_id,
                                  input_folder=input_folder, num_gpus=gpus, video=not no_video)
    else:
        res = animate_take(resolve_take(take, root), lk, motion, frames=parse_range(frames), step_id=step_id,
                           input_folder=input_folder, video=not no_video)
    r = res.report
    c = Console()
    c.print(f"{len(r.done)} frames made, {len(r.skipped)} already done in {len(res.segments)} segment(s), "
            f"{r.seconds:.1f} s -> {res.out_dir}")
    if res.frames_note:
        c.print(f"frames: {res.frames_note}")
    if res.video:
        c.print(f"video: {res.video}")

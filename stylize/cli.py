"""``machinima stylize``: stylize a take with a look, QC a finished step.

    machinima stylize run TAKE --look look.toml [--shots A,B] [--frames 0:47] [--preview N] [--input PLATES/]
    machinima stylize qc STEP_FOLDER

Heavy imports (torch, diffusers, cv2) happen inside the commands so ``machinima --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from machinima.distributed.cli import BareRayGroup


class _RunByDefault(BareRayGroup):
    """``machinima stylize TAKE ...`` means ``machinima stylize run TAKE ...`` (the issue's form);
    a bare ``--ray`` means ``--ray auto`` (``BareRayGroup``)."""

    def parse_args(self, ctx, args):  # type: ignore[override]
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(cls=_RunByDefault, help="Stylize takes with diffusion or classical looks; flicker QC.", no_args_is_help=True)


@app.command("run")
def run(
    take: str = typer.Argument(..., help="Take folder or id."),
    look: Path = typer.Option(..., "--look", help="A look file (TOML), or a shipped look by name (painted, watercolor-sd15; `machinima examples list`)."),
    shots: Optional[str] = typer.Option(None, "--shots", help="Comma-separated shot names from the look."),
    frames: Optional[str] = typer.Option(None, "--frames", help="Frame range A:B (inclusive)."),
    preview: int = typer.Option(0, "--preview", help="Render N evenly spaced frames only (every-frame mode), into <step>-preview."),
    step_id: Optional[str] = typer.Option(None, "--step-id", help="Output folder name under post/ (default stylize-<look>)."),
    input_folder: Optional[Path] = typer.Option(None, "--input", help="Stylize this image sequence (live-action plates) instead of the passes."),
    root: Optional[Path] = typer.Option(None, "--root", help="Takes root."),
    no_video: bool = typer.Option(False, "--no-video", help="Skip the mp4."),
    ray: Optional[str] = typer.Option(None, "--ray", metavar="[ADDRESS]", help="Run one Ray task per shot/segment on this cluster (bare --ray: RAY_ADDRESS, a running cluster, else a local one; or host:6379, local)."),
    gpus: float = typer.Option(0, "--gpus", help="With --ray: GPUs per task."),
) -> None:
    """Stylize a take's frames with a look (resumable: rerun to continue)."""
    from rich.console import Console

    from machinima.cli import resolve_take

    from .look import load_look
    from .runner import parse_range, stylize_take

    lk = load_look(look)
    if ray:
        from .distributed import stylize_take_on_ray

        res = stylize_take_on_ray(resolve_take(take, root), lk, address=ray, frames=parse_range(frames),
                                  shots=[s for s in (shots or "").split(",") if s], step_id=step_id, input_folder=input_folder,
                                  num_gpus=gpus, video=not no_video)
    else:
        res = stylize_take(resolve_take(take, root), lk, frames=parse_range(frames), shots=[s for s in (shots or "").split(",") if s],
                           step_id=step_id, input_folder=input_folder, preview=preview, video=not no_video)
    c = Console()
    for w in res.warnings:
        c.print(f"[yellow]warning:[/] {w}")
    r = res.report
    c.print(f"{len(r.done)} frames made, {len(r.skipped)} already done, {len(r.failed)} failed "
            f"({res.plan['keyframes']} keyframes of {res.plan['frames']}) in {r.seconds:.1f} s -> {res.out_dir}")
    st = res.stats
    if st.get("diffused") or st.get("propagated"):
        c.print(f"diffused {st['diffused']} (engine {st['engine_s']:.1f} s), propagated {st['propagated']}, held {st['held']}, "
                f"reused static {st.get('skipped_static', 0)} (flow/controls {st['flow_s']:.1f} s)")
    if res.frames_note:
        c.print(f"frames: {res.frames_note}")
    if res.video:
        c.print(f"video: {res.video}")


@app.command("qc")
def qc(step: Path = typer.Argument(..., help="The step folder: TAKE/post/<step-id>."),
       sheet: int = typer.Option(12, help="Frames on the contact sheet.")) -> None:
    """Flicker report (warp error between consecutive outputs) and a contact sheet."""
    from rich.console import Console
    from rich.table import Table

    from .qc import qc_step

    from machinima.cli import resolve_in_take

    rep = qc_step(resolve_in_take(step), sheet_frames=sheet)
    t = Table(title=f"flicker of {rep['step']} ({rep['engine']}): warp error 0..255, lower is steadier")
    for col in ("frames", "pairs", "mean", "p95", "input"):
        t.add_column(col)
    for s in rep["shots"]:
        t.add_row(f"{s['frames'][0]}-{s['frames'][1]}" + (f" {s['shot']}" if s.get("shot") else ""), str(s["pairs"]), str(s["mean"]), str(s["p95"]), str(s["input_mean"]))
    t.add_row("all", str(rep["pairs"]), str(rep["mean"]), str(rep["p95"]), str(rep["input_mean"]))
    Console().print(t)
    if rep.get("frames_note"):
        Console().print(f"frames: {rep['frames_note']}; pairs are {rep['gap']} frames apart")
    Console().print(f"contact sheet: {rep['contact_sheet']}")

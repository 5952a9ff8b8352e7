"""``machinima post run PLAN.toml [--take T] [--ray ADDRESS]``: a shot's post steps from one file.

See ``machinima.postplan`` for the plan format and the resume rules; ``machinima examples copy
shot .`` writes the example plan.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from .distributed.cli import BareRayGroup

app = typer.Typer(cls=BareRayGroup, help="Post plans: a shot's steps (merge -> composite -> stylize -> archive -> deliver) as one resumable graph.",
                  no_args_is_help=True)
console = Console()


@app.command("run")
def run_cmd(
    plan: Path = typer.Argument(..., help="The plan file (.toml)."),
    take: Optional[str] = typer.Option(None, "--take", help="The take (id or folder), instead of the plan's take = ..."),
    step_by_step: bool = typer.Option(False, "--step-by-step", help="Start a step only when the step it reads has finished "
                                      "(default: a step that can starts on its input's chunks as they are written)."),
    ray: Optional[str] = typer.Option(None, "--ray", metavar="[ADDRESS]", help="Run each step's frames on a Ray cluster (bare --ray: RAY_ADDRESS, a running cluster, else a local one; or host:6379, local)."),
) -> None:
    """Run the plan's steps in dependency order; rerun to resume (finished steps and frames are kept)."""
    from machinima.postplan import run_plan

    rep = run_plan(plan, take=take, ray=ray, log=console.print, stream=not step_by_step)
    console.print(f"plan done: {len(rep.ran)} step(s) ran, {len(rep.skipped)} done before")
    for sid, out in rep.outputs.items():
        console.print(f"  {sid:<12} {out}")


@app.command("show")
def show_cmd(plan: Path = typer.Argument(..., help="The plan file (.toml).")) -> None:
    """The steps in the order they run, and what each reads."""
    from machinima.postplan import load_plan

    p = load_plan(plan)
    for s in p.order:
        console.print(f"{s.id:<12} {s.kind:<16} after {', '.join(s.after) or '-'}")

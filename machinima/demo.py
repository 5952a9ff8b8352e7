"""The end-to-end demo: a whole (tiny) film from synthetic performers, offline.

Each step is timed and resumable (a second run skips steps whose outputs exist). Steps that
belong to spokes run as the CLI commands a person would type, so the demo also proves that the
commands work; a spoke that is not installed is reported and skipped.
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from rich.console import Console
from rich.table import Table

from . import quat
from .skeleton import BONE_INDEX, rest_pose
from .take import Take, iter_take_folders, read_manifest
from .timecode import NS_PER_S


@dataclass
class DemoStep:
    name: str
    run: Callable[["DemoContext"], str]


@dataclass
class DemoContext:
    out: Path
    console: Console

    @property
    def takes_root(self) -> Path:
        return self.out / "takes"

    def latest_take(self) -> Path | None:
        folders = [f for f in iter_take_folders(self.takes_root) if read_manifest(f).status in ("complete", "recovered")]
        return folders[-1] if folders else None

    def machinima(self, *args: str) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "machinima", *args]
        self.console.print(f"  $ machinima {' '.join(args)}", style="dim")
        return subprocess.run(cmd, check=True, cwd=self.out)


def _procedural_wave(n: int, fps: float, phase: float) -> np.ndarray:
    """A performer waving (used until the mocap spoke's synthetic performers stream over UDP)."""
    poses = np.broadcast_to(rest_pose(), (n, *rest_pose().shape)).copy()
    t = np.arange(n) / fps
    angle = 0.6 * np.sin(2 * np.pi * 1.2 * t + phase) - 1.1
    poses[:, BONE_INDEX["RightUpperArm"], 3:7] = quat.from_axis_angle(np.array([0, 0, 1.0]), angle)
    poses[:, BONE_INDEX["Hips"], 0] += 0.3 * np.sin(2 * np.pi * 0.2 * t + phase)
    return poses


def step_record(ctx: DemoContext) -> str:
    if ctx.latest_take():
        return f"take exists: {ctx.latest_take().name} (skipped)"
    fps, seconds = 24, 4
    take = Take.create(ctx.takes_root, production="demo", scene="1", shot="10", fps=fps, performers=["ada", "bo"])
    n = fps * seconds
    t = take.store.origin_ns + (np.arange(n, dtype=np.int64) * NS_PER_S // fps)
    for i, name in enumerate(("ada", "bo")):
        take.add_performer(name, source="synthetic")
        take.store.append(f"mocap/{name}", t, _procedural_wave(n, fps, phase=i * 1.3))
    take.add_marker(int(t[n // 2]), "action", "the wave starts")
    take.finalize()
    return f"recorded {take.id}: 2 performers x {n} frames"


def step_export(ctx: DemoContext) -> str:
    take = ctx.latest_take()
    target = ctx.out / "bvh"
    if target.exists() and any(target.glob("*.bvh")):
        return "BVH exists (skipped)"
    ctx.machinima("takes", "export", str(take), "--out", str(target))
    return f"BVH files in {target}"


def step_verify(ctx: DemoContext) -> str:
    take = ctx.latest_take()
    ctx.machinima("takes", "verify", str(take))
    return "take verified"


STEPS: list[DemoStep] = [
    DemoStep("record a take", step_record),
    DemoStep("export BVH", step_export),
    DemoStep("verify the take", step_verify),
]


def run_demo(out: Path, console: Console) -> None:
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    ctx = DemoContext(out, console)
    table = Table(title="machinima demo")
    table.add_column("step")
    table.add_column("seconds", justify="right")
    table.add_column("result")
    for step in STEPS:
        console.print(f"[bold]{step.name}[/]")
        t0 = time.perf_counter()
        result = step.run(ctx)
        table.add_row(step.name, f"{time.perf_counter() - t0:.2f}", result)
    console.print(table)
    console.print(f"outputs in {out}")

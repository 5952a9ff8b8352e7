"""``machinima takes export TAKE --format ...``: one table from format name to the function that
writes it, so a new format (picture delivery, another engine format) is one more entry.

BVH is written here in the hub. glb and fbx need Blender (bpy), which only the ``blender`` spoke
may import, so they run as ``machinima blender export --take`` in a child process (as ``machinima
demo`` runs each spoke): the hub stays free of spoke imports and of bpy.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Callable

from .errors import TakeError
from .export import export_take_bvh
from .take import Take


@dataclass(frozen=True)
class ExportRequest:
    """Everything ``takes export`` was asked for (engine and bone names matter to glb/fbx only)."""

    take: Path
    out: Path
    performer: str | None = None
    engine: str = "unity"
    bone_names: str = "canonical"
    rotation_order: str = "ZXY"  # BVH only


def _bvh(req: ExportRequest) -> list[Path]:
    if (req.engine, req.bone_names) != ("unity", "canonical"):
        raise TakeError("--engine and --bone-names apply to glb and fbx; BVH keeps the canonical names and axes")
    return export_take_bvh(req.take, req.out, req.performer, order=req.rotation_order)


def _through_blender(fmt: str) -> Callable[[ExportRequest], list[Path]]:
    def run(req: ExportRequest) -> list[Path]:
        if not any(ep.name == "blender" for ep in entry_points(group="machinima.cli")):
            raise TakeError(f"--format {fmt} needs the Blender spoke", hint="pip install 'machinima[blender]'")
        take = Take.open(req.take)
        target = req.out if req.out.suffix.lower() == f".{fmt}" else req.out / f"{take.id}.{fmt}"
        cmd = [sys.executable, "-m", "machinima", "blender", "export", "--take", str(req.take), f"--{fmt}", str(target),
               "--engine", req.engine, "--bone-names", req.bone_names] + (["--performer", req.performer] if req.performer else [])
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
            raise TakeError(lines[-1].removeprefix("error: ") if lines else f"Blender export failed (exit {res.returncode})")
        return [target]

    return run


FORMATS: dict[str, Callable[[ExportRequest], list[Path]]] = {"bvh": _bvh, "glb": _through_blender("glb"), "fbx": _through_blender("fbx")}


def format_for(fmt: str | None, out: Path) -> str:
    """The format asked for, else the one --out's suffix names, else BVH (the old default)."""
    suffix = out.suffix.lower().lstrip(".")
    if fmt is None:
        return suffix if suffix in FORMATS else "bvh"
    fmt = fmt.lower()
    if fmt not in FORMATS:
        raise TakeError(f"unknown export format {fmt!r}; formats: {', '.join(FORMATS)}")
    if suffix and suffix != fmt and suffix in (*FORMATS, "gltf"):
        raise TakeError(f"--out {out.name} does not end in .{fmt}: name a .{fmt} file or a folder")
    return fmt


def export_take_as(fmt: str | None, req: ExportRequest) -> list[Path]:
    """Write the take in the given format (``None``: from the --out suffix); returns the files."""
    return FORMATS[format_for(fmt, req.out)](req)

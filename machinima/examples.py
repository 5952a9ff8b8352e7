"""Examples that ship inside the package, found by name: looks, dream schedules, archive presets,
set files, engine mappings, OSC profiles (bone maps), settings files.

A pip user has no repository, so no message or guide may say ``stylize/looks/x.toml``: a shipped
file is named (``--look watercolor-sd15``) or copied out (``machinima examples copy diner .``).
Two halves, both without importing anything heavy:

* ``resolve(ref, folder, what)``: what a spoke calls with its own examples folder. A path that
  exists wins; else a shipped name (with or without its suffix); else one error naming the
  shipped ones. It needs no package metadata, so a spoke's names work in any checkout.
* ``shipped()`` / ``find()`` / ``copy()``: every spoke's examples, for ``machinima examples``.
  Spokes declare their folders as ``machinima.examples`` entry points (kind = package holding
  the files, e.g. ``look = "stylize.looks"``; several spokes share a kind as ``settings.lora``,
  ``settings.composite``); the hub never imports a spoke by name.
"""

from __future__ import annotations

import shutil
import tomllib
from dataclasses import dataclass
from importlib import resources
from importlib.metadata import entry_points
from pathlib import Path

from .errors import MachinimaError

GROUP = "machinima.examples"
SUFFIXES = (".toml", ".py", ".json", ".bvh")
LICENCE = ".LICENSE.txt"  # a file's own licence beside it (walk.LICENSE.txt): copied with it


class ExampleError(MachinimaError):
    """No shipped example (or file) of that name, or a copy that would overwrite a file."""


@dataclass(frozen=True)
class Example:
    kind: str       # the entry point's name: look, dream, set, ...
    name: str       # the file's stem: watercolor-sd15
    path: Path      # where it lies inside the installed package

    @property
    def qualified(self) -> str:
        return f"{self.kind}/{self.name}"

    def summary(self) -> str:
        """What it is, in one sentence: the file's ``description`` (archive presets), else its
        opening comment (TOML ``#``) or docstring; a format without comments (BVH) is described
        by the first sentence of its licence file."""
        licence = self.path.with_name(self.path.stem + LICENCE)
        if self.path.suffix == ".bvh":
            text = licence.read_text(encoding="utf-8") if licence.is_file() else ""
            return " ".join(text.split("\n\n")[0].split()).split(". ")[0].split(": ", 1)[-1]
        text = self.path.read_text(encoding="utf-8")
        if self.path.suffix == ".toml":
            try:
                about = tomllib.loads(text).get("description")
            except tomllib.TOMLDecodeError:
                about = None
            if isinstance(about, str):
                return about.split(": ")[0]
        lines = []
        for line in text.splitlines():
            line = line.strip()
            if not line.startswith(("#", '"""')) and lines:
                break
            if line.startswith(("#", '"""')):
                lines.append(line.strip('#" '))
        first = " ".join(lines)
        return first.split(". ")[0].rstrip(".")


def folder_examples(folder: Path) -> dict[str, Path]:
    """The example files of one folder by name (stem), package plumbing left out."""
    if not folder.is_dir():
        return {}
    return {p.stem: p for p in sorted(folder.iterdir())
            if p.is_file() and p.suffix in SUFFIXES and not p.name.startswith(("_", "."))}


def resolve(ref: str | Path, folder: Path, what: str, error: type[MachinimaError] = ExampleError) -> Path:
    """The file ``ref`` means: an existing path, else the shipped example of that name in
    ``folder`` (``watercolor-sd15`` or ``watercolor-sd15.toml``). ``what`` names the kind in the
    message (``look``), which lists the shipped names; ``error`` is the caller's error class."""
    given = Path(str(ref)).expanduser()
    if given.is_file():
        return given
    names = folder_examples(folder)
    key = given.stem if given.suffix in SUFFIXES and given.parent == Path(".") else str(ref)
    if key in names:
        return names[key]
    if given.exists():
        raise error(f"{given} is a folder, not a {what} file")
    raise error(f"{what} file {given} does not exist, and no shipped {what} has that name",
                hint=f"shipped: {', '.join(names) or 'none'}; `machinima examples copy NAME .` copies one to edit")


def _folders() -> list[tuple[str, Path]]:
    out = []
    for ep in entry_points(group=GROUP):
        try:
            out.append((ep.name.partition(".")[0], Path(str(resources.files(ep.value)))))
        except (ModuleNotFoundError, TypeError):  # a spoke that is not installed ships nothing
            continue
    return sorted(out)


def shipped(kind: str | None = None) -> list[Example]:
    """Every shipped example (of one kind), sorted by kind and name."""
    return [Example(k, name, p) for k, folder in _folders() if kind in (None, k) for name, p in folder_examples(folder).items()]


def kinds() -> list[str]:
    return sorted({k for k, _ in _folders()})


def find(name: str) -> Example:
    """A shipped example by ``name`` or ``kind/name``; an ambiguous name lists its kinds."""
    kind, _, bare = name.rpartition("/")
    stem = Path(bare).stem if Path(bare).suffix in SUFFIXES else bare
    hits = [e for e in shipped(kind or None) if e.name == stem]
    if len(hits) == 1:
        return hits[0]
    if hits:
        raise ExampleError(f"{name!r} names {len(hits)} examples: {', '.join(e.qualified for e in hits)}", hint="give KIND/NAME")
    raise ExampleError(f"no shipped example {name!r}", hint="`machinima examples list` shows them")


def copy(name: str, dest: str | Path, *, force: bool = False) -> Path:
    """Copy a shipped example into the folder ``dest`` (created); never overwrites unless
    ``force``. Returns the new file."""
    ex = find(name)
    dest = Path(dest)
    target = dest / ex.path.name
    if target.exists() and not force:
        raise ExampleError(f"{target} already exists", hint="edit it, give another folder, or --force to overwrite it")
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ex.path, target)
    licence = ex.path.with_name(ex.path.stem + LICENCE)
    if licence.is_file():  # a file someone else made travels with its terms
        shutil.copyfile(licence, dest / licence.name)
    return target

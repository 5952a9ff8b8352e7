"""Local model weights under ``models_dir``: what each user of them needs, what is there, what
is missing, said offline (``machinima models check``). Nothing here loads a model or imports
torch: a need is checked by the files a loader will open, so "present" means "the loader finds
what it reads", not merely "a folder of that name exists".

Spokes say what they need through ``machinima.models`` entry points: a function
``needs(refs: list[str]) -> list[ModelNeed]`` (refs are what the person named, e.g. looks;
none = everything shipped). The hub checks each need against the disk (``probe``) and lists
what lies under ``models_dir`` (``inventory``). See docs/models.md for the weights themselves.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Callable

GROUP = "machinima.models"
CHECKPOINT_SUFFIXES = (".safetensors", ".ckpt")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".ckpt", ".pth", ".pt")

# layout -> what a person must put there (the loaders' own words)
LAYOUTS = {
    "pipeline": "a diffusers folder (model_index.json and the folders it lists, with weights) or a single .safetensors/.ckpt checkpoint",
    "config": "a diffusers config folder (model_index.json and each part's config; no weights needed)",
    "model": "a diffusers model folder (config.json + diffusion_pytorch_model.safetensors) or a single .safetensors file",
    "transformers": "a transformers folder (config.json + model.safetensors or pytorch_model.bin)",
    "file": "a weights file",
    "files": "a folder holding the named files",
    "image": "an image file",
}


@dataclass(frozen=True)
class ModelNeed:
    """One path a user of models will open, and what must be there."""

    user: str                  # who needs it: "look watercolor-sd15"
    what: str                  # "base model", "ControlNet for 'depth'"
    path: str                  # as written (relative = under models_dir)
    layout: str                # a key of LAYOUTS
    suffixes: tuple[str, ...] = ()   # layout "file": the suffixes the loader takes
    files: tuple[tuple[str, ...], ...] = ()  # layout "files": alternatives, each a set of file names
    fallback: str = ""         # what runs without it ("" = required)

    def expect(self) -> str:
        if self.layout == "file" and self.suffixes:
            return f"a {'/'.join(self.suffixes)} file"
        if self.layout == "files":
            return "a folder with " + " or ".join(" + ".join(f) for f in self.files)
        return LAYOUTS[self.layout]


@dataclass
class Check:
    need: ModelNeed
    where: Path
    state: str                 # present | missing | incomplete
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.state == "present"


def _weights(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.is_file() and p.suffix in WEIGHT_SUFFIXES] if folder.is_dir() else []


def _pipeline_parts(folder: Path, weights: bool) -> str:
    """'' when every part model_index.json lists is there (with weights for model parts)."""
    try:
        index = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        return f"model_index.json cannot be read ({exc})"
    for part, spec in index.items():
        if part.startswith("_") or not isinstance(spec, list) or spec[0] is None:
            continue
        sub = folder / part
        if not sub.is_dir():
            return f"{part}/ is missing (model_index.json lists it)"
        if not any(sub.glob("*config*.json")) and not any(sub.glob("*.txt")):
            return f"{part}/ has no config"
        if weights and spec[1] not in ("CLIPTokenizer", "CLIPImageProcessor", "CLIPFeatureExtractor") \
                and not spec[1].endswith("Scheduler") and not _weights(sub):
            return f"{part}/ has no weights"
    return ""


def probe(need: ModelNeed, models_dir: Path) -> Check:
    """Whether ``need`` is met on disk: present, missing, or incomplete (with what is wrong)."""
    where = Path(need.path).expanduser()
    if not where.is_absolute():
        where = models_dir / where
    if not where.exists():
        return Check(need, where, "missing")
    problem = ""
    lay = need.layout
    if lay in ("pipeline", "config"):
        if where.is_file():
            problem = "" if lay == "pipeline" and where.suffix in CHECKPOINT_SUFFIXES else f"{where.name} is a file, not {LAYOUTS[lay].split(' (')[0]}"
        elif not (where / "model_index.json").is_file():
            problem = "no model_index.json"
        else:
            problem = _pipeline_parts(where, weights=lay == "pipeline")
    elif lay == "model":
        if where.is_file():
            problem = "" if where.suffix in WEIGHT_SUFFIXES else f"{where.name} is not a weights file"
        elif not (where / "config.json").is_file():
            problem = "no config.json"
        elif not _weights(where):
            problem = "config.json but no weights file"
    elif lay == "transformers":
        if not (where / "config.json").is_file():
            problem = "no config.json"
        elif not _weights(where):
            problem = "config.json but no weights file"
    elif lay in ("file", "image"):
        if where.is_dir():
            problem = f"{where.name} is a folder, not a file"
        elif need.suffixes and where.suffix.lower() not in need.suffixes:
            problem = f"{where.name} is not a {'/'.join(need.suffixes)} file"
        elif where.stat().st_size == 0:
            problem = "the file is empty"
    elif lay == "files":
        if not any(all((where / f).is_file() for f in alt) for alt in need.files):
            problem = "lacks " + " or ".join(" + ".join(f) for f in need.files)
    return Check(need, where, "incomplete" if problem else "present", problem)


def describe(path: Path) -> str:
    """What a file or folder under models_dir looks like to the loaders (for the inventory)."""
    if path.is_file():
        return "checkpoint / weights file" if path.suffix in WEIGHT_SUFFIXES else "file"
    if (path / "model_index.json").is_file():
        missing = _pipeline_parts(path, weights=True)
        return "diffusers pipeline" + (f" ({missing})" if missing else "")
    if (path / "config.json").is_file():
        try:
            cls = json.loads((path / "config.json").read_text(encoding="utf-8")).get("_class_name") or "transformers"
        except (OSError, json.JSONDecodeError):
            cls = "unreadable config.json"
        return f"{cls} folder" + ("" if _weights(path) else " (no weights)")
    if _weights(path):
        return f"folder of {len(_weights(path))} weights file(s)"
    return ""


def inventory(models_dir: Path) -> list[tuple[str, str]]:
    """(path under models_dir, what it looks like) for each model-like entry, two levels deep."""
    out: list[tuple[str, str]] = []
    if not models_dir.is_dir():
        return out
    for p in sorted(models_dir.iterdir()):
        if p.name.startswith("."):
            continue
        what = describe(p)
        if what or p.is_file():
            out.append((p.name, what or "file"))
            continue
        subs = [(f"{p.name}/{q.name}", describe(q)) for q in sorted(p.iterdir()) if not q.name.startswith(".")]
        out += [(n, w) for n, w in subs if w] or [(p.name, "folder with nothing a loader reads")]
    return out


@dataclass
class Report:
    models_dir: Path
    checks: list[Check] = field(default_factory=list)
    present: list[tuple[str, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)   # providers that failed, bad refs

    def missing(self, users: set[str] | None = None) -> list[Check]:
        """Required needs not met (of these users only, when given)."""
        return [c for c in self.checks if not c.ok and not c.need.fallback and (users is None or c.need.user in users)]


def providers() -> list[tuple[str, Callable[[list[str]], list[ModelNeed]]]]:
    out = []
    for ep in entry_points(group=GROUP):
        try:
            out.append((ep.name, ep.load()))
        except ModuleNotFoundError:  # a spoke that is not installed needs nothing
            continue
    return sorted(out, key=lambda x: x[0])


def check_models(models_dir: Path, refs: list[str] | None = None,
                 sources: list[tuple[str, Callable[[list[str]], Any]]] | None = None) -> Report:
    """Every provider's needs (for ``refs``, else everything shipped) checked under ``models_dir``.
    A provider's error (a look that does not parse) is a problem line, not a crash."""
    from .errors import MachinimaError

    rep = Report(models_dir, present=inventory(models_dir))
    sources = sources if sources is not None else providers()
    if not sources:  # an editable install older than the entry points
        rep.problems.append("no package says what it needs (machinima.models entry points): reinstall machinima, e.g. `pip install -e .`")
    for name, fn in sources:
        for batch in ([[r] for r in refs] if refs else [[]]):  # one bad ref does not hide the others
            try:
                rep.checks += [probe(n, models_dir) for n in fn(batch)]
            except MachinimaError as exc:
                rep.problems.append(f"{name}: {exc}")
    return rep

"""Configuration: ``machinima.toml`` in the project folder, overridden by ``MACHINIMA_*``
environment variables, overridden by CLI flags. One place resolves every path.

    # machinima.toml
    takes_root = "takes"            # relative to the project folder
    models_dir = "models"           # where local model weights live (see `model_path`)
    production = "my-film"
    fps = "24"
    [server]
    host = "127.0.0.1"
    port = 8765
    [stylize]                        # each spoke reads its own section with `section()`
    base_model = "sd15"

Environment: ``MACHINIMA_TAKES_ROOT``, ``MACHINIMA_MODELS_DIR``, ``MACHINIMA_PRODUCTION``,
``MACHINIMA_FPS``, and ``MACHINIMA_<SECTION>__<KEY>`` for a section key (double underscore).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError

CONFIG_FILE = "machinima.toml"
_TOP = ("takes_root", "models_dir", "production", "fps")


@dataclass
class Config:
    project_dir: Path
    takes_root: Path
    models_dir: Path
    production: str = "untitled"
    fps: str = "24"
    sections: dict[str, dict[str, Any]] = field(default_factory=dict)
    source: str = "defaults"

    def section(self, name: str) -> dict[str, Any]:
        """A spoke's own settings (empty dict when absent)."""
        return dict(self.sections.get(name, {}))

    def model_path(self, relative: str | Path, *, what: str, expect: str = "") -> Path:
        """Resolve a model path (absolute, or under ``models_dir``) and fail clearly if missing.

        ``what`` names the model for a person; ``expect`` says what should be inside.
        """
        p = Path(relative).expanduser()
        if not p.is_absolute():
            p = self.models_dir / p
        if not p.exists():
            raise ConfigError(
                f"{what} not found at {p}",
                hint=f"put it there{f': {expect}' if expect else ''}; or set its path in {CONFIG_FILE}. Nothing is downloaded",
            )
        return p


def _coerce(value: str) -> Any:
    low = value.lower()
    if low in ("true", "false"):
        return low == "true"
    for typ in (int, float):
        try:
            return typ(value)
        except ValueError:
            pass
    return value


def load_config(project_dir: str | Path | None = None, *, overrides: dict[str, Any] | None = None, env: dict[str, str] | None = None) -> Config:
    project = Path(project_dir or os.environ.get("MACHINIMA_PROJECT", ".")).resolve()
    env = dict(os.environ if env is None else env)
    doc: dict[str, Any] = {}
    source = "defaults"
    path = project / CONFIG_FILE
    if path.exists():
        try:
            doc = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: {exc}") from None
        source = str(path)
    top = {k: doc.get(k) for k in _TOP if k in doc}
    sections = {k: dict(v) for k, v in doc.items() if isinstance(v, dict)}
    unknown = [k for k in doc if k not in _TOP and not isinstance(doc[k], dict)]
    if unknown:
        raise ConfigError(f"{path}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(_TOP)} and [sections]")
    for key, value in env.items():
        if not key.startswith("MACHINIMA_") or key == "MACHINIMA_PROJECT" or key == "MACHINIMA_VENV":
            continue
        name = key[len("MACHINIMA_"):].lower()
        if "__" in name:
            sec, sub = name.split("__", 1)
            sections.setdefault(sec, {})[sub] = _coerce(value)
        elif name in _TOP:
            top[name] = value
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        if "." in key:
            sec, sub = key.split(".", 1)
            sections.setdefault(sec, {})[sub] = value
        else:
            top[key] = value

    def resolve(p: Any) -> Path:
        q = Path(str(p)).expanduser()
        return q if q.is_absolute() else (project / q)

    return Config(
        project_dir=project,
        takes_root=resolve(top.get("takes_root", "takes")),
        models_dir=resolve(top.get("models_dir", "models")),
        production=str(top.get("production", "untitled")),
        fps=str(top.get("fps", "24")),
        sections=sections,
        source=source,
    )

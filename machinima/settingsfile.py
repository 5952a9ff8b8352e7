"""Settings files for commands with many options (``machinima lora train --settings run.toml``).

A settings file is TOML whose keys are the command's long options without their dashes
(``lr-scheduler = "cosine"``, ``no-buckets = true``, ``sample-prompt = ["a", "b"]``) and its
arguments by name (``dataset = "datasets/alice"``). Order of precedence, lowest first::

    the command's defaults < the settings file < MACHINIMA_* variables < flags typed on the line

so a file holds a run's recipe and a flag changes one thing for one run. Relative paths in the
file are relative to the file (like set files), so the file can move with its data. Optional
``schema``/``version`` keys name what the file is for; another command's file is refused.
Each key is checked and converted exactly as the flag would be, and an unknown key is an error
that names the close ones: a typo never silently keeps a default.
"""

from __future__ import annotations

import difflib
import tomllib
from pathlib import Path
from typing import Any

from .errors import ConfigError

VERSION = 1


class SettingsError(ConfigError):
    """A settings file that cannot be read or does not fit its command."""


def _keys(ctx: Any) -> dict[str, tuple[Any, bool]]:
    """settings key -> (click parameter, negated): ``--lr-scheduler`` -> ``lr-scheduler``; the
    second name of a flag pair (``--no-grad-checkpointing``) sets the opposite value."""
    out: dict[str, tuple[Any, bool]] = {}
    for p in ctx.command.params:
        if getattr(p, "param_type_name", "") == "argument":
            out[p.name.replace("_", "-")] = (p, False)
            continue
        for opt in p.opts:
            if opt.startswith("--") and opt != "--settings":
                out[opt[2:]] = (p, False)
        for opt in getattr(p, "secondary_opts", []):
            if opt.startswith("--"):
                out[opt[2:]] = (p, True)
    return out


def read_settings(path: str | Path, schema: str) -> dict[str, Any]:
    """The file's table, its ``schema``/``version`` checked and removed."""
    p = Path(path)
    try:
        doc = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SettingsError(f"settings file {p} does not exist",
                            hint="`machinima examples list --kind settings` shows examples to copy") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SettingsError(f"settings file {p}: not valid TOML: {exc}") from None
    got = doc.pop("schema", schema)
    if got != schema:
        raise SettingsError(f"settings file {p} is for {got!r}, this command reads {schema!r}")
    version = doc.pop("version", VERSION)
    if version != VERSION:
        raise SettingsError(f"settings file {p}: version {version!r} is not supported (this machinima reads {VERSION})")
    return doc


def apply_settings(ctx: Any, path: str | Path | None, schema: str) -> dict[str, Any]:
    """``ctx.params`` with every value the person did not give (on the line or by variable)
    taken from the settings file at ``path``; ``None`` = no file, the params as they are."""
    values = dict(ctx.params)
    if path is None:
        return values
    p = Path(path)
    doc = read_settings(p, schema)
    keys = _keys(ctx)
    for key, raw in doc.items():
        if key not in keys:
            close = difflib.get_close_matches(key, list(keys), n=3)
            raise SettingsError(f"settings file {p}: unknown setting {key!r}" + (f"; did you mean {', '.join(close)}?" if close else ""),
                                hint=f"keys are the options of the command without their dashes: {', '.join(sorted(keys))}")
        param, negated = keys[key]
        if negated:
            if not isinstance(raw, bool):
                raise SettingsError(f"settings file {p}: {key} must be true or false, got {raw!r}")
            raw = not raw
        try:
            value = param.process_value(ctx, raw)  # the flag's own conversion and checks
        except Exception as exc:  # click's BadParameter and the types' own errors
            why = exc.format_message() if hasattr(exc, "format_message") else str(exc)
            raise SettingsError(f"settings file {p}: {key} = {raw!r}: {why}") from None
        value = _relative_to(value, p.parent)
        source = ctx.get_parameter_source(param.name)
        if source is None or source.name in ("DEFAULT", "DEFAULT_MAP"):
            values[param.name] = value
    return values


def _relative_to(value: Any, base: Path) -> Any:
    if isinstance(value, Path):
        return value if value.is_absolute() else base / value
    if isinstance(value, (list, tuple)):
        return type(value)(_relative_to(v, base) for v in value)
    return value


def require(values: dict[str, Any], *names: str) -> None:
    """A value that is required but may come from either the line or the file."""
    for name in names:
        if values.get(name) is None:
            flag = name.replace("_", "-")
            raise SettingsError(f"--{flag} is needed", hint=f"give it on the command line, or {flag} = ... in the --settings file")

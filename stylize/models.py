"""Local model weights: where they are (``need_model``, one message that says what to put where),
what they are (``fingerprint`` for params.json) and loading them with a clear error
(``load_model``, ``load_pipeline``, ``load_controlnets``, ``load_loras``). Shared by the
diffusion and AnimateDiff engines, RAFT, annotators and depth models. Nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Callable, Sequence

from .errors import LookError, ModelMissingError, StylizeError
from .look import Look


def fingerprint(path: str | Path, *, edge: int = 1 << 20) -> str:
    """A quick identity of a model file or folder: sizes + hashes of each weight file's ends."""
    p = Path(path)
    files = [p] if p.is_file() else sorted(x for x in p.rglob("*") if x.is_file() and not x.name.startswith("."))
    h = hashlib.sha256()
    for f in files:
        size = f.stat().st_size
        h.update(f"{f.relative_to(p) if p.is_dir() else f.name}:{size}".encode())
        with open(f, "rb") as fh:
            h.update(fh.read(edge))
            if size > 2 * edge:
                fh.seek(size - edge)
                h.update(fh.read(edge))
    return h.hexdigest()[:16]


def need_model(cfg: Any, rel: str | None, what: str, expect: str) -> Path:
    """A model path from the look, resolved under models_dir; missing -> ModelMissingError
    that says what to put where."""
    from machinima.errors import ConfigError

    if not rel:
        raise ModelMissingError(f"{what} is not set in the look", hint=f"set it to {expect}")
    try:
        return cfg.model_path(rel, what=what, expect=expect)
    except ConfigError as exc:
        raise ModelMissingError(str(exc.args[0]), hint=exc.hint) from None


def load_model(fn: Callable[..., Any], path: Path, **kw: Any) -> Any:
    """``fn(path, **kw)`` (a diffusers ``from_pretrained``/``from_single_file``) with a clear
    error for an incomplete or foreign file."""
    try:
        return fn(str(path), **kw)
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
        raise ModelMissingError(f"cannot load {path}: {str(exc).splitlines()[0][:300]}",
                                hint="check that the file or folder is complete; nothing is downloaded") from None


def load_pipeline(pcls: Any, base: Path, config_rel: str | None, need: Callable[[str, str, str], Path], kw: dict[str, Any]) -> Any:
    """A diffusers pipeline from a single checkpoint (with its config folder when given) or a
    diffusers folder (which must hold model_index.json)."""
    if base.is_file():
        if config_rel:
            kw = {**kw, "config": str(need(config_rel, f"config folder for {base.name}", "the diffusers config of this model family"))}
        return load_model(pcls.from_single_file, base, **kw)
    if not (base / "model_index.json").exists():
        raise ModelMissingError(f"{base} is not a diffusers folder (no model_index.json)",
                                hint="point the look's model base at a diffusers folder or a single .safetensors checkpoint")
    return load_model(pcls.from_pretrained, base, **kw)


def load_loras(pipe: Any, loras: Sequence[tuple[str, str, Any]], need: Callable[..., Path] | None,
               models: dict[str, Any], target: str) -> None:
    """Each ``(adapter name, what, LoraSpec)`` from a local .safetensors file as one weighted
    adapter of ``pipe``, recorded in ``models`` (``need`` resolves the path; None = as given)."""
    names, weights = [], []
    for name, what, lora in loras:
        p = need(lora.path, f"{what} {lora.path!r}", "a .safetensors LoRA file") if need else Path(lora.path)
        if not p.is_file():
            raise ModelMissingError(f"{what} {p} not found", hint="put the .safetensors file there or fix its path in the look")
        try:
            pipe.load_lora_weights(str(p.parent), weight_name=p.name, adapter_name=name)
        except (ValueError, KeyError, OSError, RuntimeError) as exc:
            raise StylizeError(f"{what} {p} cannot be loaded into this {target}: {str(exc)[:200]}") from None
        names.append(name)
        weights.append(lora.weight)
        models[name] = {"path": str(p), "fingerprint": fingerprint(p), "weight": lora.weight}
    if names:
        pipe.set_adapters(names, adapter_weights=weights)


def load_controlnets(look: Look, need: Callable[[str, str, str], Path], dtype: Any, models: dict[str, Any]) -> list[Any]:
    """The look's ControlNets from local paths (folder or single file), recorded in ``models``."""
    from diffusers import ControlNetModel

    cns = []
    for c in look.controls:
        if not c.model:
            raise LookError(f"control {c.kind!r} needs model = path of its ControlNet for the diffusion engine")
        p = need(c.model, f"ControlNet for {c.kind!r} ({c.model})", "a diffusers ControlNet folder or a single .safetensors file")
        models[f"controlnet_{c.kind}"] = {"path": str(p), "fingerprint": fingerprint(p)}
        load = ControlNetModel.from_single_file if p.is_file() else ControlNetModel.from_pretrained
        cns.append(load_model(load, p, dtype=dtype, local_files_only=True))
    return cns

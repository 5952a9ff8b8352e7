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


# --- what looks need, offline (`machinima models check`) -----------------------------------------
def model_needs(looks: list[str]) -> list[Any]:
    """The ``machinima.models`` provider: what each look needs under models_dir (the looks
    named, else every shipped one), as the engines will open it."""
    from machinima.examples import folder_examples

    from .look import LOOKS_DIR

    out: list[Any] = []
    for ref in looks or list(folder_examples(LOOKS_DIR)):
        out += look_needs(ref)
    return out


def look_needs(ref: str) -> list[Any]:
    """One look's needs: base, config, VAEs, LoRAs, IP-Adapter, ControlNets, annotators (with
    their weight-free fallbacks), RAFT, and the AnimateDiff motion adapter and motion LoRAs."""
    from machinima.models import ModelNeed

    from .annotators import ANNOTATED, AUX, DEFAULT_FOLDER, FALLBACK, OPENCV
    from .look import load_look

    look = load_look(ref)
    user = f"look {ref}"
    need: list[ModelNeed] = []

    def add(what: str, path: str, layout: str, **kw: Any) -> None:
        if path:
            need.append(ModelNeed(user, what, path, layout, **kw))

    m = look.model
    if look.engine == "diffusion":
        add("base model", m.base or "(model.base is not set)", "pipeline")
        add("config folder of the single-file base", m.config, "config")
        add("VAE", m.vae, "model")
        add("tiny VAE", m.tiny_vae, "model")
        for lora in m.loras:
            add("LoRA", lora.path, "file", suffixes=(".safetensors",))
        if m.ip_adapter:
            add("IP-Adapter", m.ip_adapter, "file", suffixes=(".safetensors", ".bin"))
            add("IP-Adapter image encoder", str(Path(m.ip_adapter).parent / "image_encoder"), "transformers")
        add("IP-Adapter style image", m.ip_adapter_image, "image")
        for c in look.controls:
            add(f"ControlNet for {c.kind!r}", c.model or f"(controls {c.kind!r} has no model)", "model")
    for c in look.controls:
        if c.kind in ANNOTATED and c.annotator != OPENCV:
            alts = tuple(files for _, _, files in AUX[c.kind]) + ((("config.json",),) if c.kind == "depth" else ())
            add(f"{c.kind} annotator (footage without a {c.kind} pass)" if c.kind in ("depth", "normal") else f"{c.kind} annotator",
                c.annotator or DEFAULT_FOLDER, "files", files=alts, fallback="" if c.annotator else FALLBACK[c.kind])
    if look.cadence.raft:
        add("RAFT optical flow", look.cadence.raft, "file", suffixes=(".pth", ".pt"))
    ad = look.other.get("animatediff")
    if isinstance(ad, dict):
        add("motion adapter", str(ad.get("motion_adapter") or "(animatediff.motion_adapter is not set)"), "model")
        add("motion adapter config", str(ad.get("adapter_config") or ""), "files", files=(("config.json",),))
        for x in ad.get("motion_loras") or []:
            if isinstance(x, dict):
                add("motion LoRA", str(x.get("path", "")), "file", suffixes=(".safetensors",))
    return need

"""The base model a LoRA trains on: a local diffusers folder or a single-file checkpoint, checked
before anything loads (one message says what to put where), hashed for the LoRA's metadata.
Never a download."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import BaseModelError


@dataclass
class BaseModel:
    path: Path
    unet: Any
    vae: Any
    scheduler: Any
    text_encoder: Any = None
    tokenizer: Any = None
    hash: str = ""


_BASE_HINT = ("put a diffusers folder there (model_index.json, unet/, vae/, scheduler/, text_encoder/, tokenizer/) "
              "or a single .safetensors/.ckpt checkpoint (with --config DIR, its diffusers config folder); nothing is downloaded; "
              "which weights, from where: docs/models.md; `machinima lora tiny-base DIR` makes a random one to try the pipeline")


def base_hash(path: Path) -> str:
    """SHA-256 of the weights a LoRA depends on: the UNet (and text encoder) files of a folder, or
    the single checkpoint file. (Cached beside the weights' sizes and times in ``.machinima-hash``
    files is not done: the hash is recomputed each run, a few seconds for SD 1.5.)"""
    h = hashlib.sha256()
    if path.is_file():
        files = [path]
    else:
        files = sorted(p for sub in ("unet", "text_encoder") if (path / sub).is_dir() for p in (path / sub).iterdir()
                       if p.suffix in (".safetensors", ".bin", ".json"))
    for p in files:
        h.update(p.name.encode())
        with open(p, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 22), b""):
                h.update(chunk)
    return h.hexdigest()


def check_base(path: str | Path) -> Path:
    path = Path(path).expanduser()
    if not path.exists():
        raise BaseModelError(f"base model not found at {path}", hint=_BASE_HINT)
    if path.is_dir():
        if not (path / "model_index.json").exists():
            raise BaseModelError(f"{path} is not a diffusers model folder (no model_index.json)", hint=_BASE_HINT)
        for sub in ("unet", "vae"):
            if not (path / sub / "config.json").exists():
                raise BaseModelError(f"{path} has no {sub}/ model (no {sub}/config.json)", hint=_BASE_HINT)
    elif path.suffix.lower() not in (".safetensors", ".ckpt"):
        raise BaseModelError(f"{path} is not a model checkpoint (expected .safetensors or .ckpt)", hint=_BASE_HINT)
    return path


def load_base(path: str | Path, *, config: str | Path | None = None, need_text_encoder: bool = True) -> BaseModel:
    """Load UNet, VAE, noise scheduler and (when present) text encoder + tokenizer from local files."""
    path = check_base(path)
    try:
        from diffusers import AutoencoderKL, DDPMScheduler, StableDiffusionPipeline, UNet2DConditionModel

        if path.is_file():
            kw: dict[str, Any] = {"local_files_only": True, "safety_checker": None, "requires_safety_checker": False}
            if config:
                kw["config"] = str(config)
            pipe = StableDiffusionPipeline.from_single_file(str(path), **kw)
            base = BaseModel(path, pipe.unet, pipe.vae, DDPMScheduler.from_config(pipe.scheduler.config), pipe.text_encoder, pipe.tokenizer)
        else:
            index = json.loads((path / "model_index.json").read_text())
            unet = UNet2DConditionModel.from_pretrained(str(path), subfolder="unet", local_files_only=True)
            vae = AutoencoderKL.from_pretrained(str(path), subfolder="vae", local_files_only=True)
            sched = (DDPMScheduler.from_pretrained(str(path), subfolder="scheduler", local_files_only=True)
                     if (path / "scheduler").is_dir() else DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012))
            te = tok = None
            if (index.get("text_encoder") or [None])[0] and (path / "text_encoder").is_dir():
                from transformers import CLIPTextModel, CLIPTokenizer

                te = CLIPTextModel.from_pretrained(str(path), subfolder="text_encoder", local_files_only=True)
                tok = CLIPTokenizer.from_pretrained(str(path), subfolder="tokenizer", local_files_only=True)
            base = BaseModel(path, unet, vae, sched, te, tok)
    except BaseModelError:
        raise
    except Exception as exc:  # noqa: BLE001 - any loader failure means the files are not a usable model
        msg = str(exc).splitlines()[0][:240] if str(exc) else type(exc).__name__
        extra = " (a single-file checkpoint needs --config DIR offline)" if path.is_file() and not config else ""
        raise BaseModelError(f"cannot load the base model at {path}: {msg}{extra}", hint=_BASE_HINT) from None
    if need_text_encoder and base.text_encoder is None:
        raise BaseModelError(f"{path} has no text encoder", hint="use a full diffusers folder (text_encoder/ and tokenizer/) or a checkpoint that contains one")
    base.hash = base_hash(path)
    return base

"""A face model folder's ``model.json`` and ``checkpoint.pt`` as the steps that use a trained model
read them (merge, the compositor, ONNX export, the segmenter's device choice), apart from the
trainer: reading a model must not import the training loop.

``model.json`` is schema ``machinima.faceswap-model`` v1 (layout: ``faceswap.train``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .errors import ModelError

SCHEMA = "machinima.faceswap-model"
VERSION = 1


def pick_device(name: str = "auto") -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ModelError("CUDA was asked for but no GPU is available", hint="use --device cpu")
    return name


def read_model_doc(model_dir: str | Path) -> dict[str, Any]:
    p = Path(model_dir) / "model.json"
    if not p.exists():
        raise ModelError(f"no model at {model_dir} (model.json missing)", hint="train one with `machinima faceswap train --src A --dst B --model DIR`")
    try:
        doc = json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise ModelError(f"{p} is not valid JSON: {exc}") from None
    if doc.get("schema") != SCHEMA:
        raise ModelError(f"{p} is not a face-swap model (schema {doc.get('schema')!r})")
    if int(doc.get("version", 0)) > VERSION:
        raise ModelError(f"{p} is version {doc.get('version')}, newer than this machinima understands", hint="upgrade machinima")
    return doc


def load_model(model_dir: str | Path, device: str = "auto"):
    """(FaceModel in eval mode, model doc) from a model folder."""
    import torch

    from .model import FaceModel, ModelConfig

    doc = read_model_doc(model_dir)
    cfg = ModelConfig.from_doc(doc["model"])
    dev = pick_device(device)
    model = FaceModel(cfg).to(dev)
    ck = Path(model_dir) / "checkpoint.pt"
    if not ck.exists():
        raise ModelError(f"{ck} is missing", hint="train the model first (or restore the checkpoint)")
    try:
        st = torch.load(ck, map_location=dev, weights_only=False)
        model.load_state_dict(st["model"])
    except Exception as exc:  # noqa: BLE001
        raise ModelError(f"{ck} cannot be loaded: {exc}") from None
    model.eval()
    return model, doc

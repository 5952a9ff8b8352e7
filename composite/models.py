"""Optional models from local folders (nothing is downloaded): monocular depth and person mattes.

Both load with the transformers ``Auto*`` classes from a folder holding ``config.json``, the
weights and ``preprocessor_config.json`` (what ``save_pretrained`` writes for the model and its
image processor), e.g. a DPT or Depth Anything checkpoint for depth, a SegFormer/Mask2Former
semantic-segmentation checkpoint with a ``person`` label for mattes. ``device='cuda'`` with
``dtype='float16'`` runs them in half precision on a GPU.

Depth models give relative depth (most are disparity-like: larger = nearer; "metric" ones give
metres). ``scale_to_metres`` anchors the map to the placement's billboard depth: the median over
the matte's interior becomes the billboard depth, relief is clamped to ``body_depth`` around it,
and the soft edge band (where the model is least reliable) takes the nearest interior depth.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import ModelError, SettingsError
from .keyer import _cv2

KINDS = ("auto", "disparity", "metric")
_EXPECT = "a folder with config.json, model weights and preprocessor_config.json (save_pretrained of the model and its image processor)"


def _device(device: str, dtype: str):
    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SettingsError(f"device {device!r} asked for but CUDA is not available", hint="use --device cpu")
    dt = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}.get(dtype)
    if dt is None:
        raise SettingsError(f"dtype must be float32, float16 or bfloat16, not {dtype!r}")
    if device == "cpu" and dt is torch.float16:
        dt = torch.float32  # half on CPU is slow and partly unsupported
    return torch.device(device), dt


def _check_folder(path: str | Path, what: str) -> Path:
    p = Path(path).expanduser()
    if not p.is_dir() or not (p / "config.json").exists():
        raise ModelError(f"{what} not found at {p}", hint=f"put {_EXPECT} there; nothing is downloaded")
    return p


class DepthModel:
    """A transformers depth-estimation model from a local folder."""

    def __init__(self, path: str | Path, *, device: str = "cpu", dtype: str = "float32", kind: str = "auto") -> None:
        if kind not in KINDS:
            raise SettingsError(f"depth kind must be one of {KINDS}, not {kind!r}")
        p = _check_folder(path, "depth model")
        from transformers import AutoImageProcessor, AutoModelForDepthEstimation

        try:
            self.processor = AutoImageProcessor.from_pretrained(str(p))
            self.model = AutoModelForDepthEstimation.from_pretrained(str(p))
        except Exception as exc:  # a broken folder: say which, not a 40-line traceback
            raise ModelError(f"could not load the depth model at {p}: {exc}", hint=f"the folder needs {_EXPECT}") from None
        self.device, self.dtype = _device(device, dtype)
        self.model.to(self.device, self.dtype).eval()
        if kind == "auto":
            kind = "metric" if getattr(self.model.config, "depth_estimation_type", "relative") == "metric" else "disparity"
        self.kind = kind
        self.path = p

    def predict(self, rgb: np.ndarray) -> np.ndarray:
        """Raw model output resized to the image (float32 HxW)."""
        import torch

        h, w = rgb.shape[:2]
        inputs = self.processor(images=np.ascontiguousarray(rgb[..., :3]), return_tensors="pt")
        pv = inputs["pixel_values"].to(self.device, self.dtype)
        with torch.inference_mode():
            out = self.model(pixel_values=pv).predicted_depth
        pred = out.float().reshape(out.shape[-2], out.shape[-1]).cpu().numpy()
        return _cv2().resize(pred, (w, h), interpolation=_cv2().INTER_LINEAR)


def scale_to_metres(raw: np.ndarray, alpha: np.ndarray, depth_m: float, *, kind: str = "disparity",
                    body_depth: float = 0.5, edge_px: int = 3) -> np.ndarray:
    """Metric planar depth (float32 HxW) of the actor from a model's raw map and the billboard depth."""
    cv2 = _cv2()
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * edge_px + 1,) * 2)
    inner = cv2.erode(cv2.compare(alpha, 250, cv2.CMP_GE), k) > 0
    if inner.sum() < 8:
        inner = alpha >= 128
    if inner.sum() < 1:
        return np.full(alpha.shape, depth_m, np.float32)
    raw = raw.astype(np.float32)
    ref = float(np.median(raw[inner]))
    if kind == "metric":
        d = raw - ref + depth_m
    else:
        d = depth_m * max(ref, 1e-6) / np.maximum(raw, 1e-6)
    d = np.clip(d, depth_m - body_depth, depth_m + body_depth).astype(np.float32)
    # edge band: take the nearest interior depth (grey dilation of the interior, nearest first)
    fill = np.where(inner, d, 0).astype(np.float32)
    known = inner.astype(np.uint8)
    k3 = np.ones((3, 3), np.uint8)
    for _ in range(edge_px + 2):
        grown = cv2.dilate(fill, k3)
        new = (cv2.dilate(known, k3) > 0) & (known == 0)
        fill[new] = grown[new]
        known[new] = 1
    out = np.where(inner, d, np.where(known > 0, fill, depth_m)).astype(np.float32)
    return out


class SegmentationMatte:
    """A person matte from a transformers semantic-segmentation model in a local folder."""

    def __init__(self, path: str | Path, *, label: str = "person", device: str = "cpu", dtype: str = "float32") -> None:
        p = _check_folder(path, "segmentation model")
        from transformers import AutoImageProcessor, AutoModelForSemanticSegmentation

        try:
            self.processor = AutoImageProcessor.from_pretrained(str(p))
            self.model = AutoModelForSemanticSegmentation.from_pretrained(str(p))
        except Exception as exc:
            raise ModelError(f"could not load the segmentation model at {p}: {exc}", hint=f"the folder needs {_EXPECT}") from None
        labels = {str(v).lower(): int(k) for k, v in (self.model.config.id2label or {}).items()}
        if label.lower() not in labels:
            raise ModelError(f"the segmentation model at {p} has no {label!r} label; it has {sorted(labels)[:20]}", hint="pass --seg-label NAME")
        self.index = labels[label.lower()]
        self.device, self.dtype = _device(device, dtype)
        self.model.to(self.device, self.dtype).eval()

    def matte(self, rgb: np.ndarray) -> np.ndarray:
        """uint8 HxW matte: the softmax probability of the label."""
        import torch

        h, w = rgb.shape[:2]
        inputs = self.processor(images=np.ascontiguousarray(rgb[..., :3]), return_tensors="pt")
        with torch.inference_mode():
            logits = self.model(pixel_values=inputs["pixel_values"].to(self.device, self.dtype)).logits.float()
        prob = torch.softmax(logits, dim=1)[0, self.index].cpu().numpy()
        prob = _cv2().resize(prob, (w, h), interpolation=_cv2().INTER_LINEAR)
        return np.clip(prob * 255 + 0.5, 0, 255).astype(np.uint8)

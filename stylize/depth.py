"""Depth from a single picture with a local transformers depth model (DPT, Depth Anything,
ZoeDepth... any ``AutoModelForDepthEstimation`` folder), for footage without a depth pass:
depth ControlNet controls and the 3D warps of dreams.

Relative models (DPT, Depth Anything) answer inverse depth up to scale and shift; ``metres``
turns that into depth with its median at a given distance (the dream's ``depth``), which is all
a camera move by schedule needs. Metric models (ZoeDepth, Depth Pro) answer metres directly.
Nothing is downloaded: the folder holds ``config.json``, the weights and, ideally, the image
processor's ``preprocessor_config.json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .errors import ModelMissingError

METRIC_TYPES = ("zoedepth", "depth_pro")


class DepthModel:
    """A monocular depth model from a local folder, on the GPU when there is one."""

    def __init__(self, path: str | Path, *, device: str = "auto") -> None:
        import torch
        from transformers import AutoImageProcessor, AutoModelForDepthEstimation

        self.path = Path(path)
        if not (self.path / "config.json").exists():
            raise ModelMissingError(f"no depth model at {self.path} (no config.json)",
                                    hint="put a transformers depth model folder there (DPT, Depth Anything: config.json + weights)")
        try:
            self.model = AutoModelForDepthEstimation.from_pretrained(str(self.path), local_files_only=True).eval()
        except (OSError, ValueError, KeyError) as exc:
            raise ModelMissingError(f"cannot load the depth model at {self.path}: {str(exc).splitlines()[0][:200]}",
                                    hint="a transformers depth model folder (AutoModelForDepthEstimation); nothing is downloaded") from None
        try:
            self.processor = AutoImageProcessor.from_pretrained(str(self.path), local_files_only=True)
        except (OSError, ValueError):
            self.processor = None  # plain ImageNet normalisation at the model's size
        dev = "cuda" if device == "auto" and torch.cuda.is_available() else ("cpu" if device == "auto" else device)
        self.device = torch.device(dev)
        self.model.to(self.device)
        self.metric = self.model.config.model_type in METRIC_TYPES

    def predict(self, image: np.ndarray) -> np.ndarray:
        """The model's own answer at the picture's size (HxW float32): inverse depth (relative
        models) or metres (metric models)."""
        import torch
        import torch.nn.functional as TF

        img = np.ascontiguousarray(np.asarray(image)[..., :3])
        h, w = img.shape[:2]
        if self.processor is not None:
            x = self.processor(images=img, return_tensors="pt")["pixel_values"]
        else:
            side = int(getattr(self.model.config, "image_size", 384) or 384)
            x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255.0
            x = TF.interpolate(x, size=(side, side), mode="bilinear", align_corners=False)
            x = (x - torch.tensor([0.485, 0.456, 0.406])[:, None, None]) / torch.tensor([0.229, 0.224, 0.225])[:, None, None]
        with torch.inference_mode():
            pred = self.model(pixel_values=x.to(self.device)).predicted_depth
        pred = TF.interpolate(pred[:, None].float(), size=(h, w), mode="bicubic", align_corners=False)[0, 0]
        return pred.cpu().numpy().astype(np.float32)

    def inverse(self, image: np.ndarray) -> np.ndarray:
        """Inverse depth (larger = nearer), for depth ControlNets (what MiDaS annotators give)."""
        p = self.predict(image)
        return 1.0 / np.maximum(p, 1e-3) if self.metric else p

    def metres(self, image: np.ndarray, median_m: float) -> np.ndarray:
        """Depth in metres; a relative model's answer is scaled so its median sits at ``median_m``."""
        p = self.predict(image)
        if self.metric:
            return np.maximum(p, 1e-3)
        inv = np.maximum(p - float(np.percentile(p, 1)), 0.0) + 1e-3 * max(float(np.ptp(p)), 1e-6)
        depth = float(np.median(inv)) * median_m / inv
        return np.clip(depth, 0.05 * median_m, 50.0 * median_m).astype(np.float32)

    def describe(self) -> dict[str, Any]:
        from .models import fingerprint

        return {"model": type(self.model).__name__, "path": str(self.path), "fingerprint": fingerprint(self.path),
                "output": "metres" if self.metric else "relative inverse depth"}

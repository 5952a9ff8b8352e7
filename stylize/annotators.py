"""Control images made from the picture itself (footage without passes): controlnet_aux's
annotators where their weights sit at a local path, OpenCV as the weight-free fallback, and
every one says which it is (``describe()`` goes into params.json, the fallback into a warning).

| kind     | controlnet_aux (file in the annotators folder)                     | weight-free fallback |
|----------|--------------------------------------------------------------------|----------------------|
| lineart  | LineartDetector (sk_model.pth + sk_model2.pth)                     | OpenCV difference of Gaussians |
| softedge | HEDdetector (ControlNetHED.pth), else PidiNetDetector (table5_pidinet.pth) | OpenCV blurred Sobel magnitude |
| depth    | MidasDetector (dpt_hybrid-midas-501f0c75.pt), or a transformers depth model folder | a plane (no depth information) |
| normal   | NormalBaeDetector (scannet.pt)                                     | OpenCV: the luminance as a height field |

The annotators folder is ``<models_dir>/annotators`` (the layout of lllyasviel/Annotators, the
files controlnet_aux's ``from_pretrained`` looks for), or the control's ``annotator`` path; a
folder with ``config.json`` is a transformers depth model. ``annotator = "opencv"`` asks for the
fallback. A folder named explicitly but missing its files is an error; the default folder
missing them falls back, and says so. Nothing is downloaded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from . import controls as C
from .errors import ModelMissingError

ANNOTATED = ("lineart", "softedge", "depth", "normal")
DEFAULT_FOLDER = "annotators"
OPENCV = "opencv"

# kind -> [(controlnet_aux class, module, weight files)], first found wins
AUX: dict[str, list[tuple[str, str, tuple[str, ...]]]] = {
    "lineart": [("LineartDetector", "controlnet_aux.lineart", ("sk_model.pth", "sk_model2.pth"))],
    "softedge": [("HEDdetector", "controlnet_aux.hed", ("ControlNetHED.pth",)),
                 ("PidiNetDetector", "controlnet_aux.pidi", ("table5_pidinet.pth",))],
    "depth": [("MidasDetector", "controlnet_aux.midas", ("dpt_hybrid-midas-501f0c75.pt",))],
    "normal": [("NormalBaeDetector", "controlnet_aux.normalbae", ("scannet.pt",))],
}
FALLBACK = {
    "lineart": "OpenCV difference of Gaussians",
    "softedge": "OpenCV blurred Sobel magnitude",
    "depth": "flat plane (no depth information)",
    "normal": "OpenCV normals of the luminance as a height field",
}


@dataclass
class Annotator:
    """Picture (HxWx3 uint8) -> control image of the same size (HxWx3 uint8)."""

    kind: str
    name: str
    fallback: bool
    run: Callable[[np.ndarray], np.ndarray]
    weights: dict[str, str] = field(default_factory=dict)  # file -> fingerprint
    reason: str = ""

    def __call__(self, image: np.ndarray) -> np.ndarray:
        img = np.ascontiguousarray(np.asarray(image)[..., :3])
        out = C._rgb3(self.run(img))
        if out.shape[:2] != img.shape[:2]:
            import cv2

            out = cv2.resize(out, (img.shape[1], img.shape[0]), interpolation=cv2.INTER_AREA)
        return out

    @property
    def warning(self) -> str:
        return f"{self.kind}: uses the {self.name} fallback ({self.reason})" if self.fallback else ""

    def describe(self) -> dict[str, Any]:
        d: dict[str, Any] = {"kind": self.kind, "annotator": self.name, "fallback": self.fallback}
        if self.weights:
            d["weights"] = self.weights
        if self.reason:
            d["reason"] = self.reason
        return d


def opencv_annotator(kind: str, options: dict[str, Any] | None = None, reason: str = "") -> Annotator:
    """The weight-free fallback of ``kind``."""
    o = dict(options or {})
    run: Callable[[np.ndarray], np.ndarray]
    if kind == "lineart":
        run = lambda img: C.lineart_control(img, o.get("sigma", 1.0))  # noqa: E731
    elif kind == "softedge":
        run = lambda img: C.softedge_control(img, o.get("blur", 1.5))  # noqa: E731
    elif kind == "depth":
        run = lambda img: np.zeros(img.shape[:2], np.uint8)  # noqa: E731  (flat: no nearer or farther)
    else:
        run = C.luminance_normals
    return Annotator(kind, FALLBACK[kind], True, run, reason=reason or "asked for")


def _detect_size(img: np.ndarray) -> int:
    # controlnet_aux resizes the short side to this (multiples of 64): the frame's own, at most 512
    return int(max(64, min(512, round(min(img.shape[:2]) / 64) * 64)))


def aux_annotator(kind: str, cls_name: str, module: str, folder: Path) -> Annotator:
    """A controlnet_aux detector loaded from ``folder`` (its ``from_pretrained`` with a directory)."""
    import importlib

    import torch

    from .models import fingerprint

    cls = getattr(importlib.import_module(module), cls_name)
    try:
        det = cls.from_pretrained(str(folder))
    except (OSError, RuntimeError, KeyError, ValueError) as exc:
        raise ModelMissingError(f"cannot load controlnet_aux {cls_name} from {folder}: {str(exc).splitlines()[0][:200]}",
                                hint="the files must be the ones controlnet_aux expects (lllyasviel/Annotators)") from None
    if torch.cuda.is_available():
        det = det.to("cuda")

    def run(img: np.ndarray) -> np.ndarray:
        s = _detect_size(img)
        return np.asarray(det(img, detect_resolution=s, image_resolution=s, output_type="np"))

    files = next(f for c, m, f in AUX[kind] if c == cls_name)
    return Annotator(kind, f"controlnet_aux {cls_name}", False, run, {f: fingerprint(folder / f) for f in files})


def depth_model_annotator(folder: Path) -> Annotator:
    """Inverse depth from a transformers depth model, scaled to 0..255 per frame (as MiDaS's)."""
    from .depth import DepthModel

    model = DepthModel(folder)

    def run(img: np.ndarray) -> np.ndarray:
        inv = model.inverse(img).astype(np.float64)
        lo, hi = float(inv.min()), float(inv.max())
        if not hi > lo:
            return np.zeros(inv.shape, np.uint8)
        return ((inv - lo) / (hi - lo) * 255.0 + 0.5).astype(np.uint8)

    d = model.describe()
    return Annotator("depth", f"transformers {d['model']}", False, run, {str(folder): d["fingerprint"]})


def build_annotator(kind: str, folder: str = "", *, options: dict[str, Any] | None = None, config: Any = None) -> Annotator:
    """The annotator a control asks for (``folder`` = the control's ``annotator`` setting)."""
    if kind not in ANNOTATED:
        raise ValueError(f"{kind!r} has no annotator; those are {', '.join(ANNOTATED)}")
    if folder == OPENCV:
        return opencv_annotator(kind, options)
    if config is None:
        from machinima.config import load_config

        config = load_config()
    explicit = bool(folder)
    p = Path(folder or DEFAULT_FOLDER).expanduser()
    if not p.is_absolute():
        p = config.models_dir / p
    if kind == "depth" and (p / "config.json").exists():
        return depth_model_annotator(p)
    for cls_name, module, files in AUX[kind]:
        if all((p / f).is_file() for f in files):
            return aux_annotator(kind, cls_name, module, p)
    wanted = " or ".join("+".join(files) for _, _, files in AUX[kind])
    if explicit:
        raise ModelMissingError(f"no {kind} annotator weights at {p} ({wanted})",
                                hint=f"put controlnet_aux's files there{' or a transformers depth model' if kind == 'depth' else ''}, "
                                     "or set annotator = 'opencv' for the weight-free fallback")
    return opencv_annotator(kind, options, reason=f"no controlnet_aux weights at {p} ({wanted})")

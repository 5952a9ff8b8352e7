"""The settings of an AnimateDiff look: its ``[animatediff]`` table (``MotionSpec``), parsed and
checked before any model loads, so a wrong look fails in a second with one clear line."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .context_windows import FUSE_METHODS, ContextWindows
from .errors import LookError
from .look import LoraSpec, Look, read_look_doc

BETA_SCHEDULES = ("linear", "scaled_linear")


@dataclass
class MotionSpec:
    motion_adapter: str = ""       # folder or single file (under models_dir when relative)
    adapter_config: str = ""       # folder with config.json, for a single-file adapter
    context_length: int = 16       # frames per window (the adapter was trained on 16)
    context_overlap: int = 4       # frames shared by neighbouring windows
    context_shift: bool = True     # move the window grid every step
    looped: bool = False           # the take is a loop: last frames blend into the first
    fuse: str = "pyramid"          # flat | pyramid | gauss
    window_batch: int = 1          # windows per UNet call (GPU memory vs speed)
    decode_chunk: int = 8          # frames per VAE call
    beta_schedule: str = "linear"  # AnimateDiff was trained with linear betas
    motion_loras: list[LoraSpec] = field(default_factory=list)

    def windows(self) -> ContextWindows:
        return ContextWindows(self.context_length, self.context_overlap, shift=self.context_shift,
                              looped=self.looped, fuse=self.fuse)

    def describe(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("decode_chunk")  # speed only
        d.pop("window_batch")
        return d


def parse_animate_look(doc: Any, where: str = "look") -> tuple[Look, MotionSpec]:
    """A look document with an ``[animatediff]`` table -> (Look, MotionSpec). Sans-I/O."""
    if not isinstance(doc, dict):
        raise LookError(f"{where}: a look is a table of settings")
    doc = dict(doc)
    raw = doc.pop("animatediff", None)
    if not isinstance(raw, dict):
        raise LookError(f"{where}: an AnimateDiff look needs an animatediff table (TOML header: animatediff in brackets) with motion_adapter = path",
                        hint="the shipped look animatediff-sd15 has one: `machinima examples copy animatediff-sd15 .`")
    look = Look.from_doc(doc, where)
    raw = dict(raw)
    loras = raw.pop("motion_loras", [])
    if not isinstance(loras, list):
        raise LookError(f"{where}: animatediff.motion_loras must be a list of tables")
    known = {f for f in MotionSpec.__dataclass_fields__ if f != "motion_loras"}
    for key, value in raw.items():
        if key not in known:
            raise LookError(f"{where}: animatediff: unknown setting {key!r}; known: {', '.join(sorted(known | {'motion_loras'}))}")
        default = getattr(MotionSpec, key)
        if type(value) is not type(default):
            raise LookError(f"{where}: animatediff.{key} must be {type(default).__name__}, got {value!r}")
    spec = MotionSpec(**raw)
    for i, x in enumerate(loras):
        if not isinstance(x, dict) or not isinstance(x.get("path"), str) or set(x) - {"path", "weight"}:
            raise LookError(f"{where}: animatediff.motion_loras #{i + 1} needs path = file (and optional weight)")
        spec.motion_loras.append(LoraSpec(x["path"], float(x.get("weight", 1.0))))
    check_look(look, spec, where)
    return look, spec


def check_look(look: Look, spec: MotionSpec, where: str = "look") -> None:
    if look.engine != "diffusion":
        raise LookError(f"{where}: AnimateDiff needs engine = 'diffusion' (a local SD 1.5 model as model.base)")
    if look.model.family != "sd15":
        raise LookError(f"{where}: AnimateDiff video-to-video runs on SD 1.5 models; model.family is {look.model.family!r}")
    if look.model.mode != "img2img":
        raise LookError(f"{where}: AnimateDiff here is video-to-video: set model.mode = 'img2img'")
    if look.model.ip_adapter:
        raise LookError(f"{where}: IP-Adapter is not wired into the AnimateDiff loop; remove model.ip_adapter")
    if spec.fuse not in FUSE_METHODS:
        raise LookError(f"{where}: animatediff.fuse {spec.fuse!r} is not one of {', '.join(FUSE_METHODS)}")
    if spec.beta_schedule not in BETA_SCHEDULES:
        raise LookError(f"{where}: animatediff.beta_schedule must be one of {', '.join(BETA_SCHEDULES)}")
    if spec.window_batch < 1 or spec.decode_chunk < 1:
        raise LookError(f"{where}: animatediff.window_batch and animatediff.decode_chunk must be >= 1")
    spec.windows()  # length/overlap checks


def load_animate_look(path: str | Path) -> tuple[Look, MotionSpec]:
    p, doc = read_look_doc(path)
    look, spec = parse_animate_look(doc, str(p))
    if look.name == "look":
        look.name = p.stem
    return look, spec


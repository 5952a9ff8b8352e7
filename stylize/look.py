"""Look files: what a stylized shot should look like, as TOML (schema ``machinima.look``).

A look names the engine and its models, prompts (per shot or frame range), controls and their
weights, strength, steps, scheduler, cadence, seed and runtime options. Parsing is sans-I/O
(``Look.from_doc(dict)``); ``load_look(path)`` only reads the file. Every stored look carries
``schema`` and ``version``; older versions are upgraded by registered steps (``UPGRADES``).

See ``docs/stylize.md`` for the full reference; shipped looks go by name (``machinima examples list``).
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from .errors import LookError

SCHEMA = "machinima.look"
VERSION = 1
ENGINES = ("diffusion", "classical")
FAMILIES = ("sd15", "sdxl")
MODES = ("img2img", "txt2img")
CADENCES = ("every", "hold", "propagate")
FLOWS = ("auto", "motion", "raft", "dis")
CONTROL_KINDS = ("depth", "pose", "normal", "mask", "canny", "lineart", "softedge", "rgb")
SCHEDULERS = ("ddim", "euler", "euler_a", "dpm", "unipc", "lcm", "pndm")
SEED_MODES = ("shot", "frame")
MEMORY_PRESETS = ("cpu", "8gb", "12gb", "24gb")
CLASSICAL_METHODS = ("painted", "stylization", "edge_preserving", "ink")

# Sections that belong to other post steps sharing the look format (parsed by them, kept here as is)
OTHER_SECTIONS = {"animatediff": "machinima animate"}

# version -> function(doc) -> doc of version + 1
UPGRADES: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {}


@dataclass
class LoraSpec:
    path: str
    weight: float = 1.0


@dataclass
class ControlSpec:
    kind: str
    model: str = ""            # ControlNet (diffusers folder or single file); "" for the classical engine
    weight: float = 1.0
    start: float = 0.0
    end: float = 1.0
    options: dict[str, Any] = field(default_factory=dict)  # canny low/high, mask name, depth near/far...
    annotator: str = ""        # image-derived kinds: folder of controlnet_aux weights ("" = <models_dir>/annotators;
                               # "opencv" = the weight-free OpenCV fallback)


@dataclass
class ModelSpec:
    family: str = "sd15"
    base: str = ""             # diffusers folder or single-file checkpoint (under models_dir if relative)
    config: str = ""           # diffusers config folder for a single-file checkpoint (offline)
    vae: str = ""
    tiny_vae: str = ""         # AutoencoderTiny folder for fast previews
    mode: str = "img2img"
    scheduler: str = "ddim"
    steps: int = 20
    strength: float = 0.5
    guidance: float = 7.5
    loras: list[LoraSpec] = field(default_factory=list)
    ip_adapter: str = ""       # folder with the IP-Adapter weights (and image encoder)
    ip_adapter_weight: float = 0.6
    ip_adapter_image: str = "" # style reference image


@dataclass
class ShotSpec:
    name: str
    frames: tuple[int, int]    # inclusive range
    prompt: str | None = None
    negative: str | None = None
    seed: int | None = None
    strength: float | None = None


@dataclass
class CadenceSpec:
    mode: str = "propagate"
    every: int = 4             # a keyframe every N frames
    adaptive: bool = False     # keyframes by motion instead of every N
    motion_px: float = 12.0    # adaptive: new keyframe when mean motion since the last one passes this
    max_gap: int = 12          # adaptive: never more than this many frames between keyframes
    init_blend: float = 0.3    # keyframe init = (1-b)*frame + b*warped previous stylized keyframe
    init_noise: bool | None = None  # diffusion: a keyframe's noise is the previous keyframe's, carried along the
                                    # motion (None: whenever init_blend > 0, so init_blend = 0 is init off)
    flow: str = "auto"         # auto (motion pass > RAFT if configured > DIS) | motion | raft | dis
    raft: str = ""             # torchvision RAFT weights (.pth, under models_dir if relative): flow = auto uses them
    color_match: bool = True
    color_window: int = 3      # match each keyframe's colour to the last N keyframes of the shot
    detect_cuts: bool = True
    cut_threshold: float = 0.5 # histogram distance that counts as a cut (0..1)
    occlusion_px: float = 1.5  # forward-backward flow disagreement that marks a pixel occluded
    cross_frame: bool = False  # diffusion: keyframes' self-attention also attends to the shot's first keyframe
    skip_static: float = 0.0   # > 0: a keyframe whose input matches the previous keyframe's (warped) within
                               # this mean difference (0..255) reuses it instead of diffusing

    def carries_noise(self) -> bool:
        """Whether keyframes start from the previous keyframe's noise, moved (``init_noise``)."""
        return self.init_noise if self.init_noise is not None else self.init_blend > 0


@dataclass
class RuntimeSpec:
    memory: str = "cpu"
    device: str = "auto"
    dtype: str = "auto"        # auto | fp32 | fp16 | bf16
    batch: int | None = None   # frames per UNet call (default from the memory preset)
    channels_last: bool | None = None
    compile: bool = False
    vae_slicing: bool | None = None
    vae_tiling: bool | None = None
    cpu_offload: bool | None = None
    width: int | None = None   # resize frames for diffusion (multiple of 8); output is resized back
    height: int | None = None


@dataclass
class ClassicalSpec:
    method: str = "painted"
    sigma_s: float = 60.0
    sigma_r: float = 0.45
    colors: int = 12
    edges: float = 0.6         # strength of ink lines from the edge-like controls


@dataclass
class Look:
    name: str = "look"
    engine: str = "classical"
    seed: int = 0
    seed_mode: str = "shot"
    prompt: str = ""
    negative: str = ""
    model: ModelSpec = field(default_factory=ModelSpec)
    controls: list[ControlSpec] = field(default_factory=list)
    shots: list[ShotSpec] = field(default_factory=list)
    cadence: CadenceSpec = field(default_factory=CadenceSpec)
    runtime: RuntimeSpec = field(default_factory=RuntimeSpec)
    classical: ClassicalSpec = field(default_factory=ClassicalSpec)
    other: dict[str, Any] = field(default_factory=dict)  # sections of other steps (OTHER_SECTIONS)
    version: int = VERSION

    # --- shots ------------------------------------------------------------------------------
    def shot_of(self, frame: int) -> ShotSpec | None:
        for s in self.shots:
            if s.frames[0] <= frame <= s.frames[1]:
                return s
        return None

    def prompt_for(self, frame: int) -> tuple[str, str]:
        s = self.shot_of(frame)
        p = s.prompt if s and s.prompt is not None else self.prompt
        n = s.negative if s and s.negative is not None else self.negative
        return p, n

    def to_doc(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("version")
        d.update(d.pop("other"))
        for s in d["shots"]:
            s["frames"] = list(s["frames"])
        return {"schema": SCHEMA, "version": VERSION, **_drop_none(d)}

    def global_params(self) -> dict[str, Any]:
        """Everything that shapes every frame's pixels (shots excluded: they are per frame)."""
        d = self.to_doc()
        d.pop("shots", None)
        d.pop("name", None)
        rt = d.get("runtime", {})
        for k in ("device", "compile", "cpu_offload", "vae_slicing", "vae_tiling"):  # speed only
            rt.pop(k, None)
        return d

    @classmethod
    def from_doc(cls, doc: Any, where: str = "look") -> "Look":
        return _parse(doc, where)


def _drop_none(d: Any) -> Any:
    if isinstance(d, dict):
        return {k: _drop_none(v) for k, v in d.items() if v is not None}
    if isinstance(d, list):
        return [_drop_none(v) for v in d]
    return d


LOOKS_DIR = Path(__file__).parent / "looks"


def find_look(path: str | Path) -> Path:
    """A look file, or the file of a shipped look named ``painted``, ``watercolor-sd15``..."""
    from machinima.examples import resolve

    return resolve(path, LOOKS_DIR, "look", LookError)


def read_look_doc(path: str | Path) -> tuple[Path, dict[str, Any]]:
    """(the look file, its TOML document): a file that is not TOML -> LookError naming it."""
    p = find_look(path)
    try:
        return p, tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise LookError(f"{p}: {exc}") from None


def load_look(path: str | Path) -> Look:
    """A look file, or the name of a shipped look (``painted``, ``watercolor-sd15``)."""
    p, doc = read_look_doc(path)
    look = Look.from_doc(doc, where=str(p))
    if look.name == "look":
        look.name = p.stem
    return look


# --- validation -----------------------------------------------------------------------------
def _parse(doc: Any, where: str) -> Look:
    if not isinstance(doc, dict):
        raise LookError(f"{where}: a look is a table of settings")
    doc = dict(doc)
    schema = doc.pop("schema", SCHEMA)
    if schema != SCHEMA:
        raise LookError(f"{where}: schema is {schema!r}, expected {SCHEMA!r}")
    version = doc.pop("version", VERSION)
    if not isinstance(version, int) or version < 1 or version > VERSION:
        raise LookError(f"{where}: look version {version!r} is not supported (this machinima reads 1..{VERSION})",
                        hint="upgrade machinima to read newer looks")
    while version < VERSION:
        doc = UPGRADES[version](doc)
        version += 1

    def sub(name: str, typ: type) -> Any:
        raw = doc.pop(name, {})
        if not isinstance(raw, dict):
            raise LookError(f"{where}: [{name}] must be a table")
        return _fill(typ, raw, f"{where}: [{name}]")

    model_raw = doc.pop("model", {})
    if not isinstance(model_raw, dict):
        raise LookError(f"{where}: [model] must be a table")
    model_raw = dict(model_raw)  # never change the caller's document
    loras = [_fill(LoraSpec, x, f"{where}: [[model.loras]]") for x in model_raw.pop("loras", [])]
    model = _fill(ModelSpec, model_raw, f"{where}: [model]")
    model.loras = loras
    controls = []
    for i, c in enumerate(doc.pop("controls", [])):
        spec = _fill(ControlSpec, c, f"{where}: [[controls]] #{i + 1}")
        if spec.kind not in CONTROL_KINDS:
            raise LookError(f"{where}: [[controls]] #{i + 1}: kind {spec.kind!r} is not one of {', '.join(CONTROL_KINDS)}")
        if not 0.0 <= spec.start < spec.end <= 1.0:
            raise LookError(f"{where}: [[controls]] #{i + 1}: need 0 <= start < end <= 1 (got {spec.start}, {spec.end})")
        controls.append(spec)
    shots = []
    for i, s in enumerate(doc.pop("shots", [])):
        if not isinstance(s, dict):
            raise LookError(f"{where}: [[shots]] #{i + 1} must be a table")
        s = dict(s)
        fr = s.pop("frames", None)
        if not (isinstance(fr, list) and len(fr) == 2 and all(isinstance(x, int) for x in fr) and fr[0] <= fr[1]):
            raise LookError(f"{where}: [[shots]] #{i + 1}: frames must be [first, last] (inclusive), got {fr!r}")
        s.setdefault("name", f"shot{i + 1}")
        spec = _fill(ShotSpec, {**s, "frames": (fr[0], fr[1])}, f"{where}: [[shots]] #{i + 1}")
        shots.append(spec)
    shots.sort(key=lambda s: s.frames[0])
    for a, b in zip(shots, shots[1:]):
        if b.frames[0] <= a.frames[1]:
            raise LookError(f"{where}: shots {a.name!r} and {b.name!r} overlap")
    other = {k: doc.pop(k) for k in list(doc) if k in OTHER_SECTIONS}
    look = Look(
        model=model, controls=controls, shots=shots, other=other,
        cadence=sub("cadence", CadenceSpec), runtime=sub("runtime", RuntimeSpec), classical=sub("classical", ClassicalSpec),
    )
    for key, value in doc.items():
        if key not in ("name", "engine", "seed", "seed_mode", "prompt", "negative"):
            raise LookError(f"{where}: unknown setting {key!r}", hint="see docs/stylize.md for the look reference")
        _check_type(key, value, type(getattr(look, key)), where)
        setattr(look, key, value)
    _check_choice(look.engine, ENGINES, "engine", where)
    _check_choice(look.seed_mode, SEED_MODES, "seed_mode", where)
    _check_choice(model.family, FAMILIES, "model.family", where)
    _check_choice(model.mode, MODES, "model.mode", where)
    _check_choice(model.scheduler, SCHEDULERS, "model.scheduler", where)
    _check_choice(look.cadence.mode, CADENCES, "cadence.mode", where)
    _check_choice(look.cadence.flow, FLOWS, "cadence.flow", where)
    if look.cadence.flow == "raft" and not look.cadence.raft:
        raise LookError(f"{where}: cadence.flow = 'raft' needs cadence.raft = path of torchvision RAFT weights (.pth)")
    _check_choice(look.runtime.memory, MEMORY_PRESETS, "runtime.memory", where)
    _check_choice(look.runtime.dtype, ("auto", "fp32", "fp16", "bf16"), "runtime.dtype", where)
    _check_choice(look.classical.method, CLASSICAL_METHODS, "classical.method", where)
    if look.engine == "diffusion" and not model.base:
        raise LookError(f"{where}: engine 'diffusion' needs [model] base = path of a diffusers folder or checkpoint")
    if not 0.0 < model.strength <= 1.0:
        raise LookError(f"{where}: model.strength must be in (0, 1], got {model.strength}")
    if model.steps < 1:
        raise LookError(f"{where}: model.steps must be >= 1")
    if look.cadence.every < 1 or look.cadence.max_gap < 1:
        raise LookError(f"{where}: cadence.every and cadence.max_gap must be >= 1")
    if not 0.0 <= look.cadence.init_blend < 1.0:
        raise LookError(f"{where}: cadence.init_blend must be in [0, 1)")
    for k in ("width", "height"):
        v = getattr(look.runtime, k)
        if v is not None and (v < 8 or v % 8):
            raise LookError(f"{where}: runtime.{k} must be a multiple of 8, got {v}")
    return look


def _check_choice(value: Any, choices: tuple[str, ...], name: str, where: str) -> None:
    if value not in choices:
        raise LookError(f"{where}: {name} = {value!r} is not one of {', '.join(choices)}")


def _check_type(key: str, value: Any, typ: type, where: str) -> None:
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        return
    if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
        raise LookError(f"{where}: {key} must be {typ.__name__}, got {value!r}")


def _fill(typ: type, raw: Any, where: str) -> Any:
    if not isinstance(raw, dict):
        raise LookError(f"{where} must be a table")
    import dataclasses
    import typing

    hints = typing.get_type_hints(typ)
    known = {f.name for f in dataclasses.fields(typ)}
    for key in raw:
        if key not in known:
            raise LookError(f"{where}: unknown setting {key!r}; known: {', '.join(sorted(known))}")
    obj = typ(**{k: v for k, v in raw.items()})
    for key, value in raw.items():
        hint = hints[key]
        if typing.get_origin(hint) in (tuple, list):
            continue
        base = {float: float, int: int, str: str, bool: bool, dict[str, Any]: dict}.get(hint)
        if base is None:
            args = typing.get_args(hint)
            base = next((a for a in args if a in (float, int, str, bool)), None)
            if value is None or base is None:
                continue
        _check_type(key, value, base, where)
        if base is float:
            setattr(obj, key, float(value))
    return obj

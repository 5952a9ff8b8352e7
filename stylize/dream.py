"""Deforum-style dream sequences: each frame is the previous stylized frame, moved by the
camera (2D affine from schedules, or 3D from depth and the take's recorded camera track or
schedules), plus a little noise, then re-stylized at the scheduled strength, prompt, seed and
CFG, guided by the look's ControlNets.

    1. check the dream file (schedules parsed safely, engine from its look)
    2. frame 0: the init image (the take's first rendered frame, or an image) stylized
    3. frame f: warp frame f-1 -> (every ``cadence`` frames) add noise, stylize -> colour match
       to a window of recent diffused frames (not frame 0 forever: no washed-out palette)
    4. frames resumable (a ``PostStep`` ledger: a rerun continues from the last finished frame
       with the same seeds), then an mp4

Depth for 3D warps: a local transformers depth model (``depth_model``) on the fed-back frame
when configured, else the take's depth pass, else a plane at ``depth`` metres (with a warning).
Controls (ControlNet looks): from the take's passes at the matching take frame when there is a
take, picture-made kinds from the fed-back frame (``stylize.control_maker``).

Seeds: ``fixed``, ``iter`` (+1 a frame), ``random`` (reproducible from the seed), ``schedule``.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .dream_schedule import Schedule, ScheduleError, parse_prompt_schedule, parse_schedule, seeds
from .dream_warp import affine_2d, intrinsics_from_fov, relative_motion, rotation_matrix, warp_3d
from .errors import LookError

DREAMS_DIR = Path(__file__).parent / "dreams"
SCHEDULE_NAMES = ("zoom", "angle", "translation_x", "translation_y", "translation_z",
                  "rotation_3d_x", "rotation_3d_y", "rotation_3d_z", "strength", "noise", "seed", "cfg")
DEFAULTS = {"zoom": 1.0, "angle": 0.0, "translation_x": 0.0, "translation_y": 0.0, "translation_z": 0.0,
            "rotation_3d_x": 0.0, "rotation_3d_y": 0.0, "rotation_3d_z": 0.0, "strength": 0.55, "noise": 0.02}


@dataclass
class Dream:
    look: str = "painted"
    frames: int = 48
    mode: str = "2d"
    camera: str = "schedule"
    cadence: int = 1
    color_coherence: str = "lab"
    color_window: int = 4
    seed: int = 0
    seed_behavior: str = "iter"
    depth: float = 6.0
    depth_model: str = ""      # transformers depth model folder (under models_dir) for 3D warps
    fov: float = 40.0
    schedules: dict[str, Schedule] = field(default_factory=dict)
    prompts: Callable[[int], str] | None = None
    source: dict[str, Any] = field(default_factory=dict)  # the parsed document, for params.json
    base_dir: Path = Path(".")
    _table: dict[str, np.ndarray] = field(default_factory=dict, repr=False)  # schedule values over the frames

    def value(self, name: str, frame: int) -> float:
        """A schedule's value at ``frame``: every schedule is evaluated once over the dream's
        frames (vectorised), then each frame reads its row (the loop asks per frame)."""
        s = self.schedules.get(name)
        if s is None:
            return float(DEFAULTS[name])
        table = self._table.get(name)
        if table is None or len(table) != self.frames:
            table = self._table[name] = s(np.arange(self.frames))
        return float(table[frame]) if 0 <= frame < len(table) else s.at(frame)

    def cfg(self, frame: int) -> float | None:
        """The scheduled classifier-free guidance, or None (the look's ``guidance``)."""
        return self.value("cfg", frame) if "cfg" in self.schedules else None

    def seed_of(self, frame: int) -> int:
        return int(seeds(self.seed_behavior, self.seed, np.array([frame]), self.schedules.get("seed"))[0])


def parse_dream(doc: dict[str, Any], where: str = "dream", base_dir: Path = Path(".")) -> Dream:
    if doc.get("schema", "machinima.dream") != "machinima.dream":
        raise LookError(f"{where}: schema is {doc.get('schema')!r}, expected 'machinima.dream'")
    known = {"schema", "version", "look", "frames", "mode", "camera", "cadence", "color_coherence", "color_window", "seed",
             "seed_behavior", "depth", "depth_model", "fov", "schedules", "prompts", "interpolation"}
    unknown = set(doc) - known
    if unknown:
        raise LookError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    d = Dream(base_dir=base_dir, source=doc)
    for k in ("look", "mode", "camera", "color_coherence", "seed_behavior", "depth_model"):
        if k in doc:
            setattr(d, k, str(doc[k]))
    for k in ("frames", "cadence", "color_window", "seed"):
        if k in doc:
            if not isinstance(doc[k], int) or doc[k] < (0 if k == "seed" else 1):
                raise LookError(f"{where}: '{k}' must be a positive integer")
            setattr(d, k, doc[k])
    for k in ("depth", "fov"):
        if k in doc:
            setattr(d, k, float(doc[k]))
    for k, allowed in (("mode", ("2d", "3d")), ("camera", ("schedule", "take")), ("color_coherence", ("lab", "hsv", "rgb", "none"))):
        if getattr(d, k) not in allowed:
            raise LookError(f"{where}: '{k}' is {getattr(d, k)!r}; one of {', '.join(allowed)}")
    interp = str(doc.get("interpolation", "linear"))
    for name, text in dict(doc.get("schedules", {})).items():
        if name not in SCHEDULE_NAMES:
            raise LookError(f"{where}: unknown schedule {name!r}; schedules: {', '.join(SCHEDULE_NAMES)}")
        try:
            d.schedules[name] = parse_schedule(text, interp)
            d.schedules[name](np.arange(d.frames))  # evaluate once: errors now, not at frame 40
        except ScheduleError as exc:
            raise ScheduleError(f"{where}: schedule {name!r}: {exc}") from None
    if doc.get("prompts"):
        d.prompts = parse_prompt_schedule({int(k): v for k, v in doc["prompts"].items()})
    seeds(d.seed_behavior, d.seed, np.arange(2), d.schedules.get("seed"))  # validates the behaviour
    if "cfg" in d.schedules and (d.schedules["cfg"](np.arange(d.frames)) < 0).any():
        raise LookError(f"{where}: schedule 'cfg' goes below 0 (guidance 0..~20; <= 1 skips the negative pass)")
    return d


def load_dream(path: str | Path) -> Dream:
    from machinima.examples import resolve

    p = resolve(path, DREAMS_DIR, "dream", LookError)
    try:
        doc = tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise LookError(f"{p}: {exc}") from None
    return parse_dream(doc, str(p), p.parent)


def resolve_look_path(d: Dream) -> Path:
    from .look import find_look

    p = Path(d.look)
    if not p.is_absolute() and (d.base_dir / p).is_file():
        return d.base_dir / p
    try:
        return find_look(p)
    except LookError as exc:
        raise LookError(f"the dream's look {d.look!r}: {exc.args[0]}", hint=exc.hint) from None


# --- per-frame operations (pure) -------------------------------------------------------------
def move(img: np.ndarray, d: Dream, frame: int, *, depth: np.ndarray | None = None,
         cam_motion: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Frame ``frame``'s camera move applied to the previous frame ``img``."""
    if d.mode == "2d":
        return affine_2d(img, zoom=d.value("zoom", frame), angle=d.value("angle", frame),
                         tx=d.value("translation_x", frame), ty=d.value("translation_y", frame))
    h, w = img.shape[:2]
    K = intrinsics_from_fov(w, h, d.fov)
    dep = depth if depth is not None else np.full((h, w), d.depth, np.float32)
    if cam_motion is not None:
        R, t = cam_motion
    else:
        R = rotation_matrix(d.value("rotation_3d_x", frame), d.value("rotation_3d_y", frame), d.value("rotation_3d_z", frame))
        # Deforum's translation: +z moves the camera forward (the world comes closer)
        t = np.array([-d.value("translation_x", frame) * 0.01, -d.value("translation_y", frame) * 0.01, d.value("translation_z", frame)])
    return warp_3d(img, dep, K, R, t)


def add_noise(img: np.ndarray, amount: float, seed: int) -> np.ndarray:
    if amount <= 0:
        return img
    rng = np.random.default_rng(seed)
    return np.clip(img.astype(np.float32) + rng.normal(0, 255 * amount, img.shape), 0, 255).astype(np.uint8)


def cohere(img: np.ndarray, refs: list[np.ndarray], space: str) -> np.ndarray:
    """Match colour statistics to the average of ``refs`` in LAB, HSV or RGB."""
    import cv2

    if space == "none" or not refs:
        return img
    conv = {"lab": (cv2.COLOR_RGB2LAB, cv2.COLOR_LAB2RGB), "hsv": (cv2.COLOR_RGB2HSV, cv2.COLOR_HSV2RGB), "rgb": (None, None)}[space]

    def to(x):
        return (cv2.cvtColor(x, conv[0]) if conv[0] is not None else x).reshape(-1, 3).astype(np.float32)

    stats = np.mean([np.stack([to(r).mean(0), to(r).std(0) + 1e-3]) for r in refs], axis=0)
    src = to(img)
    out = (src - src.mean(0)) / (src.std(0) + 1e-3) * stats[1] + stats[0]
    out = np.clip(out + 0.5, 0, 255).astype(np.uint8).reshape(img.shape)
    return cv2.cvtColor(out, conv[1]) if conv[1] is not None else out


Depth = Callable[[int, np.ndarray], "np.ndarray | None"]          # (frame, fed-back picture) -> metres
Controls = Callable[[int, np.ndarray], "dict[str, np.ndarray]"]    # (frame, picture) -> control images


class DreamRun:
    """Renders frames of a dream one after another; ``frame(f)`` needs frame f-1 (given by
    ``previous(f)``, read back from disk on resume). ``depth(f, picture)`` gives frame f's depth
    in metres for 3D warps (None: a plane at ``d.depth``); ``controls(f, picture)`` its control
    images (None: the engine takes none)."""

    def __init__(self, d: Dream, engine: Any, init: np.ndarray, previous: Callable[[int], np.ndarray],
                 diffused: Callable[[int], np.ndarray | None], *, depth: Depth | None = None,
                 cameras: dict[int, Any] | None = None, controls: Controls | None = None) -> None:
        self.d, self.engine, self.init = d, engine, init
        self.previous, self.diffused = previous, diffused
        self.depth = depth or (lambda f, img: None)
        self.cameras = cameras or {}
        self.controls = controls

    def is_diffused(self, f: int) -> bool:
        return f % self.d.cadence == 0

    def _stylize(self, img: np.ndarray, f: int) -> np.ndarray:
        prompt = self.d.prompts(f) if self.d.prompts else ""
        ctl = self.controls(f, img) if self.controls is not None else {}
        return self.engine.stylize([img], [ctl], prompts=[(prompt, "")], seeds=[self.d.seed_of(f)],
                                   strengths=[float(np.clip(self.d.value("strength", f), 0.0, 1.0))], guidances=[self.d.cfg(f)])[0]

    def frame(self, f: int) -> np.ndarray:
        d = self.d
        if f == 0:
            return self._stylize(self.init, 0)
        prev = self.previous(f - 1)
        motion = None
        if d.camera == "take" and f in self.cameras and (f - 1) in self.cameras:
            motion = relative_motion(self.cameras[f - 1].world_to_camera, self.cameras[f].world_to_camera)
        moved = move(prev, d, f, depth=self.depth(f - 1, prev) if d.mode == "3d" else None, cam_motion=motion)
        if not self.is_diffused(f):
            return moved
        out = self._stylize(add_noise(moved, d.value("noise", f), d.seed_of(f)), f)
        window = [k for k in range(f - d.cadence, -1, -d.cadence)][: max(0, d.color_window - 1)] if d.color_window > 1 else []
        refs = [r for r in (self.diffused(k) for k in ([0] if d.color_window == 1 else window)) if r is not None]
        return cohere(out, refs, d.color_coherence)

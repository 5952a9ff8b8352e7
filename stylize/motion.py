"""Where the motion between two frames comes from: the render's exact ``motion`` pass, RAFT
(torchvision's architecture, weights from a local file) or OpenCV DIS.

Every provider answers ``flow(t, k)`` in the convention of ``stylize.flow``:
``frame_t(x) ~ frame_k(x + F(x))`` (HxWx2 float32, pixels), so ``flow.warp(img_k, F)`` brings
frame k into frame t.

The motion pass (written by the Blender render, ``passes/motion/NNNNNN.exr``): float32, two
channels (dx, dy) in pixels, x right, y down, *backward*: the content at pixel (x, y) of frame N
was at (x + dx, y + dy) in frame N-1 (frame 0: zeros). So ``flow(N, N-1)`` is the pass itself,
exactly. Longer spans are chained (``F(t, k) = m_t + warp(F(t-1, k), m_t)``); the forward
direction is the backward one inverted by fixed-point iteration (``G = -warp(m, G)``), which is
exact wherever the pixel stays visible; where it does not, forward and backward disagree and
the propagation's visibility test drops it, as it does for estimated flow.

Choice (``[cadence] flow`` in the look): ``auto`` takes the motion pass where the source has
one, else RAFT when ``[cadence] raft`` names weights, else DIS; ``motion``, ``raft`` and ``dis``
force one. ``describe()`` goes into the step's params.json (the flow shapes the pixels).
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable

import numpy as np

from . import flow as F
from .errors import ControlError, LookError, ModelMissingError
from .look import FLOWS

INVERT_ITERATIONS = 12
RAFT_MIN_SIDE = 128


# --- the motion pass on disk ---------------------------------------------------------------
def read_motion(path: str | Path) -> np.ndarray:
    """A motion pass frame as HxWx2 float32 (dx, dy). Two-channel EXRs are read with OpenEXR
    (OpenCV cannot read every channel naming); channels R/G, X/Y or U/V, else the first two."""
    path = Path(path)
    if not path.exists():
        raise ControlError(f"motion pass frame {path} does not exist")
    try:
        import OpenEXR

        with OpenEXR.File(str(path), separate_channels=True) as f:
            ch = {name: np.asarray(c.pixels, np.float32) for name, c in f.channels().items()}
    except ImportError:  # pragma: no cover - OpenEXR ships with the project's extras
        from machinima.imageseq import read_image

        img = read_image(path)
        return np.ascontiguousarray(np.asarray(img, np.float32)[..., :2])
    except Exception as exc:  # OpenEXR raises plain RuntimeError/OSError on a bad file
        raise ControlError(f"{path} is not a readable EXR: {str(exc).splitlines()[0][:200]}") from None
    short = {name.rsplit(".", 1)[-1].upper(): v for name, v in ch.items()}
    for a, b in (("R", "G"), ("X", "Y"), ("U", "V"), ("DX", "DY")):
        if a in short and b in short:
            return np.ascontiguousarray(np.stack([short[a], short[b]], axis=-1))
    if len(ch) < 2:
        raise ControlError(f"{path} has {len(ch)} channel(s); a motion pass has two (dx, dy)")
    names = sorted(ch)
    return np.ascontiguousarray(np.stack([ch[names[0]], ch[names[1]]], axis=-1))


def write_motion(path: str | Path, flow: np.ndarray) -> Path:
    """Write one motion pass frame in the agreed format (two float32 channels R=dx, G=dy)."""
    import OpenEXR

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    f = np.asarray(flow, np.float32)
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    tmp = path.with_name(f".{path.name}.tmp.exr")
    OpenEXR.File(header, {"R": np.ascontiguousarray(f[..., 0]), "G": np.ascontiguousarray(f[..., 1])}).write(str(tmp))
    tmp.replace(path)
    return path


# --- composition ---------------------------------------------------------------------------
def chain(step: np.ndarray, rest: np.ndarray) -> np.ndarray:
    """``F(t, k)`` from ``step = F(t, s)`` and ``rest = F(s, k)``: follow the step, then the rest."""
    return (step + F.warp(rest, step)).astype(np.float32)


def invert(backward: np.ndarray, iterations: int = INVERT_ITERATIONS) -> np.ndarray:
    """The forward flow ``G`` with ``a(x) ~ b(x + G(x))`` from ``backward`` with ``b(y) ~ a(y + m(y))``:
    ``G(x) = -m(x + G(x))``, solved by fixed-point iteration (exact for smooth motion)."""
    g = -backward.astype(np.float32)
    for _ in range(iterations):
        g = -F.warp(backward, g)
    return g.astype(np.float32)


class _Cache(OrderedDict):
    def __init__(self, size: int = 48) -> None:
        super().__init__()
        self.size = size

    def get_or(self, key: Any, make: Callable[[], np.ndarray]) -> np.ndarray:
        if key in self:
            self.move_to_end(key)
            return self[key]
        v = make()
        self[key] = v
        while len(self) > self.size:
            self.popitem(last=False)
        return v


# --- providers -----------------------------------------------------------------------------
class Motion:
    """Flow between two frames of one source."""

    method = "motion"

    def flow(self, t: int, k: int) -> np.ndarray:
        raise NotImplementedError

    def mean_motion(self, a: int, b: int) -> float:
        """Mean motion a -> b in pixels (keyframe planning)."""
        return float(np.linalg.norm(self.flow(b, a), axis=2).mean())

    def describe(self) -> dict[str, Any]:
        return {"method": self.method}


class PassMotion(Motion):
    """Exact motion from the render: ``m(N) = flow(N, N-1)``, chained and inverted for other spans."""

    method = "motion-pass"

    def __init__(self, backward: Callable[[int], np.ndarray], frames: list[int]) -> None:
        self._backward = backward
        self._frames = set(frames)
        self._cache = _Cache()

    def _m(self, f: int) -> np.ndarray:
        return self._cache.get_or(("m", f), lambda: np.asarray(self._backward(f), np.float32))

    def flow(self, t: int, k: int) -> np.ndarray:
        if t == k:
            return np.zeros_like(self._m(t))
        missing = [f for f in range(min(t, k), max(t, k) + 1) if f not in self._frames]
        if missing:
            raise ControlError(f"the motion pass has no frame {missing[0]} (needed between frames {min(t, k)} and {max(t, k)})")
        if k < t:  # backward: follow m_t, then the rest of the way
            return self._cache.get_or((t, k), lambda: self._m(t) if k == t - 1 else chain(self._m(t), self.flow(t - 1, k)))
        # forward: the inverse of the next frame's backward motion, then onward
        step = self._cache.get_or(("inv", t), lambda: invert(self._m(t + 1)))
        return self._cache.get_or((t, k), lambda: step if k == t + 1 else chain(step, self.flow(t + 1, k)))

    def mean_motion(self, a: int, b: int) -> float:
        if b == a + 1:
            return float(np.linalg.norm(self._m(b), axis=2).mean())
        return super().mean_motion(a, b)

    def describe(self) -> dict[str, Any]:
        return {"method": self.method, "note": "exact motion from the render's motion pass (backward, chained; forward by inversion)"}


class ImageMotion(Motion):
    """Flow estimated from the frames themselves (DIS or RAFT), cached per pair."""

    def __init__(self, image: Callable[[int], np.ndarray], estimator: Callable[[np.ndarray, np.ndarray], np.ndarray],
                 method: str, info: dict[str, Any] | None = None) -> None:
        self._image = image
        self._estimate = estimator
        self.method = method
        self._info = dict(info or {})
        self._cache = _Cache()

    def flow(self, t: int, k: int) -> np.ndarray:
        return self._cache.get_or((t, k), lambda: self._estimate(self._image(t), self._image(k)))

    def mean_motion(self, a: int, b: int) -> float:
        return F.mean_motion(self._image(a), self._image(b))  # small and fast: planning only

    def describe(self) -> dict[str, Any]:
        return {"method": self.method, **self._info}


class RaftFlow:
    """torchvision's RAFT (large or small, told apart by the weights) from a local state dict."""

    def __init__(self, path: str | Path, *, device: str = "auto", max_side: int = F.FLOW_MAX_SIDE, updates: int = 12) -> None:
        import torch
        from torchvision.models.optical_flow import raft_large, raft_small

        self.path = Path(path)
        if not self.path.is_file():
            raise ModelMissingError(f"RAFT weights not found at {self.path}",
                                    hint="put a torchvision RAFT state dict (.pth, raft_large or raft_small) there; nothing is downloaded")
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise ModelMissingError(f"cannot read RAFT weights {self.path}: {str(exc).splitlines()[0][:200]}") from None
        state = state.get("state_dict", state) if isinstance(state, dict) else state
        errors = []
        for name, build in (("raft_large", raft_large), ("raft_small", raft_small)):
            model = build(weights=None, progress=False)
            try:
                model.load_state_dict(state)
            except (RuntimeError, TypeError) as exc:
                errors.append(str(exc).splitlines()[0][:120])
                continue
            self.arch = name
            break
        else:
            raise ModelMissingError(f"{self.path} is not a torchvision RAFT state dict ({errors[-1]})",
                                    hint="save one with torch.save(raft_large(...).state_dict(), path)")
        dev = "cuda" if device == "auto" and torch.cuda.is_available() else ("cpu" if device == "auto" else device)
        self.device = torch.device(dev)
        self.model = model.eval().to(self.device)
        self.max_side = max_side
        self.updates = updates

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Flow with ``a(x) ~ b(x + F(x))`` (RAFT's own convention for ``model(a, b)``)."""
        import cv2
        import torch
        import torch.nn.functional as TF

        h, w = a.shape[:2]
        s = min(1.0, self.max_side / max(h, w))
        # RAFT works on multiples of 8, and its correlation pyramid needs at least 128 px a side
        sh, sw = max(RAFT_MIN_SIDE, int(round(h * s / 8)) * 8), max(RAFT_MIN_SIDE, int(round(w * s / 8)) * 8)

        def tensor(img: np.ndarray) -> Any:
            x = torch.from_numpy(np.ascontiguousarray(np.asarray(img)[..., :3])).permute(2, 0, 1)[None].float()
            x = TF.interpolate(x, size=(sh, sw), mode="bilinear", align_corners=False, antialias=True)
            return (x / 127.5 - 1.0).to(self.device)

        with torch.inference_mode():
            f = self.model(tensor(a), tensor(b), num_flow_updates=self.updates)[-1][0].permute(1, 2, 0).float().cpu().numpy()
        f = cv2.resize(f, (w, h), interpolation=cv2.INTER_LINEAR)
        f[..., 0] *= w / sw
        f[..., 1] *= h / sh
        return f.astype(np.float32)

    def describe(self) -> dict[str, Any]:
        from .models import fingerprint

        return {"arch": self.arch, "weights": str(self.path), "fingerprint": fingerprint(self.path), "updates": self.updates}


def source_step(frames: Any) -> int:
    """The source's frame step: 2 for passes every 2nd frame, 1 for complete or uneven ones."""
    from machinima.sparse import step_of

    return step_of(list(frames)) or 1


def choose_motion(method: str, raft: str, source: Any, *, config: Any = None) -> Motion:
    """The provider a look asks for (``[cadence] flow`` / ``raft``) on ``source``.

    A motion pass holds each frame's motion to the frame before it; passes rendered every Nth
    frame (N > 1) do not have that frame, so ``auto`` estimates the motion between the frames
    there are (RAFT or DIS) and says why in ``describe()["why"]``; ``motion`` is refused."""
    if method not in FLOWS:
        raise LookError(f"cadence.flow = {method!r} is not one of {', '.join(FLOWS)}")
    has_pass = bool(getattr(source, "has_motion", lambda: False)())
    if method == "motion" and not has_pass:
        raise ControlError("the look asks for flow = 'motion' but this source has no motion pass",
                           hint="render it (`machinima blender render TAKE --passes rgb,depth,motion`) or set flow = 'auto'")
    step = source_step(getattr(source, "frames", []))
    why = None
    if has_pass and step > 1:
        from machinima.sparse import describe

        why = (f"the passes hold {describe(list(source.frames))}: the motion pass gives each frame's motion to the frame "
               f"before, which is not rendered, so the motion between the frames there is estimated")
        if method == "motion":
            raise ControlError(f"flow = 'motion' cannot be used: {why}",
                               hint="render every frame (no --step) or set flow = 'auto' (estimated motion)")
        has_pass = False
    if method == "motion" or (method == "auto" and has_pass):
        return PassMotion(source.motion, list(source.frames))
    motion = _estimated(method, raft, source, config)
    if why:
        motion._info["why"] = why
    return motion


def _estimated(method: str, raft: str, source: Any, config: Any) -> "ImageMotion":
    """RAFT when asked or configured, else DIS."""
    if method == "raft" and not raft:
        raise LookError("cadence.flow = 'raft' needs cadence.raft = path of a torchvision RAFT state dict (.pth)")
    if method == "raft" or (method == "auto" and raft):
        from .models import need_model

        if config is None:
            from machinima.config import load_config

            config = load_config()
        est = RaftFlow(need_model(config, raft, f"RAFT weights {raft!r}", "a torchvision RAFT state dict (.pth)"))
        return ImageMotion(source.image, est, "raft", est.describe())
    return ImageMotion(source.image, F.flow, "dis", {"note": "OpenCV DIS optical flow of the input frames (no weights)"})

"""Where frames and their passes come from: a take's passes, an image folder, or numpy arrays.

A source gives, per frame number: the RGB image, raw passes (depth in metres, pose map,
normals, masks), the render's exact motion where it has a ``motion`` pass (``has_motion``,
``motion(f)``: backward flow, see ``stylize.motion``) and a fingerprint of what it read (so a
changed input redoes its frame).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from machinima.imageseq import ImageSeqError, list_frames, read_image
from machinima.passes import PassError, PassSet

from .errors import ControlError, SourceError


class Source:
    frames: list[int]
    fps: str = "24"
    rendered = False  # a render's passes: a missing depth/normal pass is a mistake, not footage
    def image(self, frame: int) -> np.ndarray:
        raise NotImplementedError

    def raw(self, name: str, frame: int) -> np.ndarray:
        """A pass: ``depth`` (HxW float metres), ``pose``, ``normal``, ``mask/<name>``."""
        raise ControlError(f"this source has no {name!r} pass", hint="use image-derived controls (canny, lineart, softedge) for footage without passes")

    def has(self, name: str) -> bool:
        """Whether the source holds pass ``name`` (depth, normal, motion...)."""
        return False

    def has_motion(self) -> bool:
        return self.has("motion")

    def motion(self, frame: int) -> np.ndarray:
        """The exact backward motion of ``frame`` (HxWx2 float32 pixels: frame(x) = frame-1(x + m(x)))."""
        raise ControlError("this source has no motion pass")

    def fingerprint(self, frame: int, names: Sequence[str] = ()) -> str:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        raise NotImplementedError


def _file_sig(p: Path) -> str:
    h = hashlib.sha256()
    with open(p, "rb") as fh:
        h.update(fh.read())
    return h.hexdigest()[:12]


class PassSource(Source):
    """A take's rendered passes (``<take>/passes``): rgb + exact depth, pose, normals, masks, motion."""

    rendered = True

    def __init__(self, root: str | Path) -> None:
        try:
            self.passes = PassSet.open(root)
        except PassError as exc:
            raise SourceError(str(exc.args[0]), hint=exc.hint) from None
        if not self.passes.has("rgb"):
            raise SourceError(f"the passes at {root} have no rgb pass", hint="render it: `machinima blender render TAKE --passes rgb,depth,mask,pose`")
        self.frames = self.passes.frames
        self.fps = str(self.passes.meta.get("fps", "24"))
        self.root = Path(root)

    def image(self, frame: int) -> np.ndarray:
        try:
            img = self.passes.read("rgb", frame)
        except (PassError, ImageSeqError) as exc:
            raise SourceError(str(exc)) from None
        return np.ascontiguousarray(img[..., :3]) if img.ndim == 3 else np.repeat(img[..., None], 3, axis=2)

    def raw(self, name: str, frame: int) -> np.ndarray:
        if name == "motion":
            return self.motion(frame)
        try:
            return self.passes.read(name, frame)
        except (PassError, ImageSeqError) as exc:
            raise ControlError(str(exc)) from None

    def has(self, name: str) -> bool:
        return self.passes.has(name)

    def motion(self, frame: int) -> np.ndarray:
        from .motion import read_motion

        if not self.passes.has("motion"):
            raise ControlError(f"the take at {self.root} has no motion pass")
        return read_motion(self.passes.path("motion", frame, "exr"))

    def fingerprint(self, frame: int, names: Sequence[str] = ()) -> str:
        parts = []
        for n in ("rgb", *names):
            p = self.passes.path(n, frame)
            parts.append(_file_sig(p) if p.exists() else "-")
        return "/".join(parts)

    def describe(self) -> dict[str, Any]:
        return {"kind": "passes", "path": str(self.root), "frames": [self.frames[0], self.frames[-1]] if self.frames else []}


class FolderSource(Source):
    """A numbered image sequence (live-action plates): image-derived controls only."""

    def __init__(self, folder: str | Path, fps: str = "24") -> None:
        try:
            self.files = list_frames(folder)
        except ImageSeqError as exc:
            raise SourceError(str(exc)) from None
        if not self.files:
            raise SourceError(f"no numbered images in {folder}", hint="name frames like 000001.png")
        self.frames = list(self.files)
        self.fps = fps
        self.root = Path(folder)

    def image(self, frame: int) -> np.ndarray:
        try:
            img = read_image(self.files[frame])
        except (KeyError, ImageSeqError) as exc:
            raise SourceError(f"frame {frame}: {exc}") from None
        return np.ascontiguousarray(img[..., :3]) if img.ndim == 3 else np.repeat(img[..., None], 3, axis=2)

    def fingerprint(self, frame: int, names: Sequence[str] = ()) -> str:
        return _file_sig(self.files[frame])

    def describe(self) -> dict[str, Any]:
        return {"kind": "folder", "path": str(self.root)}


class ArraySource(Source):
    """Frames (and optional passes) as numpy arrays, for the Python API."""

    def __init__(self, frames: Sequence[np.ndarray] | np.ndarray, passes: dict[str, Sequence[np.ndarray]] | None = None, fps: str = "24") -> None:
        self._frames = [np.asarray(f) for f in frames]
        if not self._frames:
            raise SourceError("no frames given")
        shape = self._frames[0].shape
        for i, f in enumerate(self._frames):
            if f.dtype != np.uint8 or f.ndim != 3 or f.shape[2] < 3 or f.shape != shape:
                raise SourceError(f"frame {i} must be HxWx3 uint8 like frame 0 {shape}, got {f.shape} {f.dtype}")
        self._passes = {k: list(v) for k, v in (passes or {}).items()}
        for k, v in self._passes.items():
            if len(v) != len(self._frames):
                raise SourceError(f"pass {k!r} has {len(v)} frames, the footage has {len(self._frames)}")
        self.frames = list(range(len(self._frames)))
        self.fps = fps

    def image(self, frame: int) -> np.ndarray:
        return np.ascontiguousarray(self._frames[frame][..., :3])

    def raw(self, name: str, frame: int) -> np.ndarray:
        if name not in self._passes:
            return super().raw(name, frame)
        return np.asarray(self._passes[name][frame])

    def has(self, name: str) -> bool:
        return name in self._passes

    def motion(self, frame: int) -> np.ndarray:
        return np.asarray(self.raw("motion", frame), np.float32)[..., :2]

    def fingerprint(self, frame: int, names: Sequence[str] = ()) -> str:
        h = hashlib.sha256(self._frames[frame].tobytes())
        for n in names:
            if n in self._passes:
                h.update(np.ascontiguousarray(self._passes[n][frame]).tobytes())
        return h.hexdigest()[:12]

    def describe(self) -> dict[str, Any]:
        return {"kind": "arrays", "frames": len(self._frames)}

"""Rendered passes of a take (``<take>/passes/``): the format Blender writes and post reads.

    passes/
      passes.json            {"schema": "machinima.passes", "version": 1, "width", "height", "fps",
                              "frames": [...], "engine", "passes": {name: {"format", ...}},
                              "masks": {mask name: "performer" | "group"}}
      rgb/NNNNNN.png         uint8 RGB
      depth/NNNNNN.exr       float32, one channel: planar depth along the camera axis in metres
                             (a wall 5 m in front of the camera reads 5.0); no geometry = BACKGROUND_DEPTH
      normal/NNNNNN.exr      float32 RGB, camera-space normals in [-1, 1]
      motion/NNNNNN.exr      float32, 2 channels (R = dx, G = dy) in pixels, x right, y down, backward
                             flow: the content at (x, y) of frame N was at (x + dx, y + dy) in frame
                             N-1 (first frame: zeros); ``read`` returns HxWx2
      light/NNNNNN.exr       from Blender: float32 RGB linear light on each surface (diffuse direct +
                             indirect), passes.json says {"kind": "irradiance", "linear": true}
      mask/<name>/NNNNNN.png uint8 0/255, one folder per performer/character and per object group
      pose/NNNNNN.png        uint8 RGB OpenPose-style skeleton map (black background)
      light/, shadow/ ...    other passes: PNG when written as uint8, EXR when float
      camera.json            {"frames": {"N": {"K": 3x3 pixels, "world_to_camera": 4x4,
                              "lens_mm", "sensor_mm", "width", "height", "clip": [near, far]}}}
    passes.previous/         the pass set before a render with other settings replaced it (one
                             generation): passes/ only ever holds what one render wrote

Frame numbers are the take's frame index at its fps (0 = timecode_in). ``world_to_camera`` maps
canonical world space (right-handed, Y-up, metres) to an OpenGL-style camera (looks down -Z,
+Y up); ``K`` projects camera-space (x, y, -z) to pixels with (0, 0) at the top-left.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import MachinimaError
from .fsutil import atomic_write_json
from .imageseq import frame_path, list_frames, read_image, write_image

BACKGROUND_DEPTH = 1.0e4
PREVIOUS_SUFFIX = ".previous"  # passes.previous/: the render before the settings changed
PASS_FORMATS = {"rgb": "png", "depth": "exr", "normal": "exr", "pose": "png", "motion": "exr"}
# How each pass is encoded: lossless and standard, chosen for read speed (post steps read every pass
# of every frame; at 1080p a PIZ float EXR reads in ~50-130 ms, an uncompressed one in ~6-17 ms, a
# stored PNG ~25 ms against ~40 ms at level 1: docs/performance.md). Data (depth, normals, motion)
# stays float32; linear light is colour and keeps half's 11-bit mantissa (0.05 %, far under an
# 8-bit step). Cost: disk (a 1080p float depth frame is 8.3 MB, half RGB light 12.4 MB).
PASS_ENCODING: dict[str, dict[str, Any]] = {
    "rgb": {"png_level": 0},
    "depth": {"exr_compression": "none"},
    "normal": {"exr_compression": "none"},
    "motion": {"exr_compression": "none"},
    "light": {"exr_compression": "none", "half": True, "png_level": 0},  # 8-bit light/shadow passes (a game engine's): stored PNG
    "shadow": {"exr_compression": "none", "half": True, "png_level": 0},
}


def encoding_of(name: str, ext: str) -> dict[str, Any]:
    """write_image's keywords for a pass frame (only those that apply to ``ext``)."""
    enc = PASS_ENCODING.get(name, {"exr_compression": "none"} if ext == "exr" else {})
    return {k: v for k, v in enc.items() if (k == "png_level") == (ext == "png")}


def describe_encoding(ext: str, enc: dict[str, Any]) -> str:
    """What passes.json records: ``png-level0``, ``exr-float-none``, ``exr-half-none``..."""
    if ext == "exr":
        return f"exr-{'half' if enc.get('half') else 'float'}-{enc.get('exr_compression', 'piz')}"
    return f"{ext}-level{enc['png_level']}" if "png_level" in enc else ext


class PassError(MachinimaError):
    """Passes missing, of the wrong size, or without the frame asked for."""


@dataclass
class CameraFrame:
    K: np.ndarray  # (3, 3)
    world_to_camera: np.ndarray  # (4, 4)
    width: int
    height: int
    lens_mm: float = 50.0
    sensor_mm: float = 36.0
    clip: tuple[float, float] = (0.1, 1000.0)

    def to_doc(self) -> dict[str, Any]:
        return {
            "K": np.asarray(self.K).tolist(), "world_to_camera": np.asarray(self.world_to_camera).tolist(),
            "width": self.width, "height": self.height, "lens_mm": self.lens_mm, "sensor_mm": self.sensor_mm,
            "clip": list(self.clip),
        }

    @classmethod
    def from_doc(cls, d: dict[str, Any]) -> "CameraFrame":
        return cls(np.array(d["K"], float), np.array(d["world_to_camera"], float), int(d["width"]), int(d["height"]),
                   float(d.get("lens_mm", 50.0)), float(d.get("sensor_mm", 36.0)), tuple(d.get("clip", (0.1, 1000.0))))

    def project(self, points_world: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixel coordinates (..., 2) and planar depth (...,) of world points (..., 3)."""
        p = np.asarray(points_world, float)
        cam = p @ self.world_to_camera[:3, :3].T + self.world_to_camera[:3, 3]
        depth = -cam[..., 2]
        z = np.where(np.abs(depth) > 1e-9, depth, 1e-9)
        x = self.K[0, 0] * cam[..., 0] / z + self.K[0, 2]
        y = -self.K[1, 1] * cam[..., 1] / z + self.K[1, 2]
        return np.stack([x, y], axis=-1), depth


def intrinsics(width: int, height: int, lens_mm: float = 50.0, sensor_mm: float = 36.0) -> np.ndarray:
    """Pinhole K for a sensor fitted to the image width (Blender's default sensor fit)."""
    f = lens_mm / sensor_mm * width
    return np.array([[f, 0, width / 2.0], [0, f, height / 2.0], [0, 0, 1.0]])


def look_at(eye: np.ndarray, target: np.ndarray, up: np.ndarray = np.array([0.0, 1.0, 0.0])) -> np.ndarray:
    """world_to_camera (4x4) for a camera at ``eye`` looking at ``target`` (OpenGL axes)."""
    eye, target = np.asarray(eye, float), np.asarray(target, float)
    fwd = target - eye
    fwd /= np.linalg.norm(fwd)
    right = np.cross(fwd, up)
    right /= np.linalg.norm(right)
    true_up = np.cross(right, fwd)
    r = np.stack([right, true_up, -fwd])
    m = np.eye(4)
    m[:3, :3] = r
    m[:3, 3] = -r @ eye
    return m


def write_two_channels(path: Path, image: np.ndarray) -> Path:
    """A 2-channel float EXR (R, G), atomically: with the OpenEXR bindings when installed (the
    ``blender`` extra), else as R, G and a zero B through OpenCV. Both read back the same.
    Uncompressed, like the other data passes (PASS_ENCODING): read speed over disk."""
    import os
    import tempfile

    try:
        import OpenEXR
    except ImportError:
        img = np.asarray(image, np.float32)
        return write_image(path, np.dstack([img, np.zeros(img.shape[:2], np.float32)]), exr_compression="none")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".exr", dir=path.parent)
    os.close(fd)
    try:
        chans = {c: np.ascontiguousarray(image[..., i], np.float32) for i, c in enumerate("RG")}
        with OpenEXR.File({"compression": OpenEXR.NO_COMPRESSION, "type": OpenEXR.scanlineimage}, chans) as f:
            f.write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


@dataclass
class PassSet:
    """Reader/writer for one take's passes folder."""

    root: Path
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def open(cls, root: str | Path) -> "PassSet":
        root = Path(root)
        path = root / "passes.json"
        if not path.exists():
            raise PassError(f"no passes at {root}", hint="render them first: `machinima blender render TAKE --passes rgb,depth,mask,pose`")
        try:
            meta = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise PassError(f"{path} is not valid JSON: {exc}") from None
        return cls(root, meta)

    @classmethod
    def create(cls, root: str | Path, *, width: int, height: int, fps: str, engine: str = "unknown") -> "PassSet":
        ps = cls(Path(root), {"schema": "machinima.passes", "version": 1, "width": width, "height": height, "fps": str(fps),
                              "frames": [], "engine": engine, "passes": {}, "masks": {}})
        ps.root.mkdir(parents=True, exist_ok=True)
        ps.save()
        return ps

    @classmethod
    def replace(cls, root: str | Path, *, width: int, height: int, fps: str, engine: str = "unknown") -> "PassSet":
        """A new, empty pass set in ``root`` for a render with other settings: whatever an
        earlier render left there moves to ``<root>.previous/`` (one generation, replaced each
        time), so no stale pass stays beside the new ones and no finished render is lost to a
        changed flag."""
        root = Path(root)
        if root.is_dir() and any(root.iterdir()):
            prev = root.with_name(root.name + PREVIOUS_SUFFIX)
            shutil.rmtree(prev, ignore_errors=True)
            root.rename(prev)
        return cls.create(root, width=width, height=height, fps=fps, engine=engine)

    def save(self) -> None:
        atomic_write_json(self.root / "passes.json", self.meta)

    @property
    def size(self) -> tuple[int, int]:
        return int(self.meta["width"]), int(self.meta["height"])

    @property
    def frames(self) -> list[int]:
        return list(self.meta.get("frames", []))

    def has(self, name: str) -> bool:
        return name in self.meta.get("passes", {}) or (name.startswith("mask/") and name[5:] in self.meta.get("masks", {}))

    def _folder(self, name: str) -> Path:
        return self.root / name

    def path(self, name: str, frame: int, ext: str | None = None) -> Path:
        """The file of a pass frame: the pass's fixed format, else the extension given, else
        whichever of png/exr exists (png when neither does)."""
        ext = PASS_FORMATS.get(name) or ext
        if ext is None:
            exr = frame_path(self._folder(name), frame, "exr")
            ext = "exr" if exr.exists() else "png"
        return frame_path(self._folder(name), frame, ext)

    def read(self, name: str, frame: int) -> np.ndarray:
        """One pass of one frame; a clear error if the pass or the frame is missing."""
        if not self.has(name):
            raise PassError(f"the take has no {name!r} pass; passes: {sorted(self.meta.get('passes', {}))} masks: {sorted(self.meta.get('masks', {}))}")
        p = self.path(name, frame)
        if not p.exists():
            raise PassError(f"pass {name!r} has no frame {frame}")
        img = read_image(p)
        if img.shape[:2] != (self.size[1], self.size[0]):
            raise PassError(f"pass {name!r} frame {frame} is {img.shape[1]}x{img.shape[0]}, passes.json says {self.size[0]}x{self.size[1]}")
        if name == "depth" and img.ndim == 3:
            img = img[..., 0]
        if name == "motion":
            img = img[..., :2] if img.ndim == 3 else np.stack([img, np.zeros_like(img)], -1)
        return img

    def write(self, name: str, frame: int, image: np.ndarray, **info: Any) -> Path:
        """Write one pass frame and record the pass and frame in passes.json."""
        ext = None if name in PASS_FORMATS else ("exr" if np.asarray(image).dtype.kind == "f" else "png")
        image = np.asarray(image)
        if image.ndim == 3 and image.shape[2] == 2:
            out = write_two_channels(self.path(name, frame, ext), image)
        else:
            path = self.path(name, frame, ext)
            enc = {} if name.startswith("mask/") else encoding_of(name, path.suffix[1:].lower())
            out = write_image(path, image, **enc)
        if name.startswith("mask/"):
            self.meta.setdefault("masks", {}).setdefault(name[5:], info.get("mask_kind", "group"))
        else:
            ext_out = out.suffix[1:].lower()
            enc = encoding_of(name, ext_out)
            self.meta.setdefault("passes", {}).setdefault(name, {"format": ext_out, "encoding": describe_encoding(ext_out, enc),
                                                                 **({"units": "m", "background": BACKGROUND_DEPTH} if name == "depth" else {})})
        if frame not in self.meta.setdefault("frames", []):
            self.meta["frames"] = sorted(self.meta["frames"] + [frame])
        return out

    def masks(self) -> dict[str, str]:
        return dict(self.meta.get("masks", {}))

    def cameras(self) -> dict[int, CameraFrame]:
        path = self.root / "camera.json"
        if not path.exists():
            raise PassError(f"no camera.json in {self.root}")
        doc = json.loads(path.read_text())
        return {int(k): CameraFrame.from_doc(v) for k, v in doc.get("frames", {}).items()}

    def write_cameras(self, cams: dict[int, CameraFrame]) -> None:
        atomic_write_json(self.root / "camera.json", {"frames": {str(k): v.to_doc() for k, v in sorted(cams.items())}})

    def frame_files(self, name: str) -> dict[int, Path]:
        return list_frames(self._folder(name))

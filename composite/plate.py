"""Plates: the filmed actor as a video file or an image sequence, read frame by frame.

A video is decoded in order with PyAV (random access re-opens and decodes forward, so the
usual in-order frame loop decodes each frame once); frames with an alpha channel (PNG/TIFF
sequences with RGBA, ProRes 4444 / QuickTime RLE / PNG-in-MOV) keep it as a 4th channel.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

from machinima.imageseq import ImageSeqError, list_frames, read_image
from machinima.timecode import parse_rate

from .errors import PlateError

VIDEO_EXTS = {".mp4", ".mov", ".mkv", ".avi", ".webm", ".mxf", ".m4v"}


class Plate:
    path: Path
    fps: Fraction
    length: int
    size: tuple[int, int]  # (w, h)
    has_alpha: bool
    timecode: str | None = None

    def frame(self, index: int) -> np.ndarray:  # uint8 RGB or RGBA
        raise NotImplementedError

    def close(self) -> None:
        pass

    def describe(self) -> dict:
        return {"path": str(self.path), "fps": str(self.fps), "frames": self.length, "size": list(self.size),
                "alpha": self.has_alpha, "timecode": self.timecode}


def _to_u8(img: np.ndarray, where: str) -> np.ndarray:
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    elif img.dtype.kind == "f":
        img = (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)
    elif img.dtype != np.uint8:
        raise PlateError(f"{where}: unsupported pixel type {img.dtype}")
    return img


class SequencePlate(Plate):
    def __init__(self, folder: Path, fps) -> None:
        self.path = folder
        try:
            files = list_frames(folder)
        except ImageSeqError as exc:
            raise PlateError(str(exc)) from None
        if not files:
            raise PlateError(f"no numbered frames in {folder}", hint="name frames like 000001.png")
        self.files = list(files.values())  # plate frame i = the i-th numbered file
        self.fps = parse_rate(fps)
        self.length = len(self.files)
        first = self.frame(0)
        self.size = (first.shape[1], first.shape[0])
        self.has_alpha = first.shape[2] == 4
        self._first = first  # given back once by frame(0): the screen colour and reference frame ask for it next

    def frame(self, index: int) -> np.ndarray:
        if not 0 <= index < self.length:
            raise PlateError(f"plate frame {index} is outside the plate (0..{self.length - 1})")
        if index == 0:
            kept = self.__dict__.pop("_first", None)  # atomic: decoder threads may ask at once
            if kept is not None:
                return kept
        try:
            img = _to_u8(read_image(self.files[index]), str(self.files[index]))
        except ImageSeqError as exc:
            raise PlateError(str(exc)) from None
        if hasattr(self, "size") and (img.shape[1], img.shape[0]) != self.size:
            raise PlateError(f"{self.files[index].name} is {img.shape[1]}x{img.shape[0]}, the plate's first frame is {self.size[0]}x{self.size[1]}")
        return img


class VideoPlate(Plate):
    def __init__(self, path: Path, fps=None) -> None:
        import av

        self.path = path
        try:
            c = av.open(str(path))
        except Exception as exc:
            raise PlateError(f"{path} is not a readable video: {exc}") from None
        with c:
            if not c.streams.video:
                raise PlateError(f"{path} has no video stream")
            st = c.streams.video[0]
            rate = st.average_rate or st.guessed_rate
            self.fps = parse_rate(fps) if fps else parse_rate(Fraction(rate) if rate else 24)
            self.size = (st.codec_context.width, st.codec_context.height)
            fmt = st.codec_context.pix_fmt or ""
            self.has_alpha = any(k in fmt for k in ("yuva", "rgba", "bgra", "argb", "abgr", "gbrap", "ya"))
            self.timecode = st.metadata.get("timecode") or c.metadata.get("timecode")
            n = st.frames
            if not n:
                n = sum(1 for p in c.demux(st) if p.size)
            self.length = int(n)
        if self.length == 0:
            raise PlateError(f"{path} has no frames")
        self._container = None
        self._iter = None
        self._next = 0
        self._last: tuple[int, np.ndarray] | None = None

    def _open(self) -> None:
        import av

        self.close()
        self._container = av.open(str(self.path))
        self._iter = self._container.decode(video=0)
        self._next = 0

    def frame(self, index: int) -> np.ndarray:
        if not 0 <= index < self.length:
            raise PlateError(f"plate frame {index} is outside the plate (0..{self.length - 1})")
        if self._last and self._last[0] == index:
            return self._last[1]
        if self._iter is None or index < self._next:
            self._open()
        fmt = "rgba" if self.has_alpha else "rgb24"
        while self._next <= index:
            try:
                fr = next(self._iter)
            except StopIteration:
                raise PlateError(f"{self.path} ended at frame {self._next}, before frame {index}") from None
            self._next += 1
        img = fr.to_ndarray(format=fmt)
        self._last = (index, img)
        return img

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None
            self._iter = None


def open_plate(path: str | Path, *, fps=None) -> Plate:
    """A plate from a video file or a folder of numbered frames (``fps`` needed for a folder, else the take's)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise PlateError(f"plate {path} does not exist", hint="pass a video file or a folder of numbered frames with --plate")
    if path.is_dir():
        return SequencePlate(path, fps or 24)
    if path.suffix.lower() in VIDEO_EXTS:
        return VideoPlate(path, fps)
    raise PlateError(f"plate {path} is neither a video ({', '.join(sorted(VIDEO_EXTS))}) nor a folder of frames")


def blend_frames(frames: list[tuple[np.ndarray, float]]) -> np.ndarray:
    """Weighted mix of plate frames (for framerate resampling with ``blend``)."""
    if len(frames) == 1:
        return frames[0][0]
    acc = sum(f.astype(np.float32) * w for f, w in frames)
    return np.clip(acc + 0.5, 0, 255).astype(np.uint8)

"""Frames to work on: a take (its ``passes/rgb``), a video file, or a folder of images.

``open_source(target)`` decides by what ``target`` is; every source gives a list of frame
numbers, ``read(frame)`` (uint8 RGB; a corrupt frame raises ``ImageSeqError``) and
``source_of(frame)`` (the ``machinima.collections.Source`` record for a faceset item).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from machinima.collections import Source
from machinima.imageseq import ImageSeqError, read_image

from .errors import InputError

VIDEO_EXT = {".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v"}
IMAGE_EXT = {".png", ".jpg", ".jpeg", ".exr", ".tif", ".tiff", ".bmp", ".webp", ".qoi", ".dpx"}


@dataclass
class FrameSource:
    kind: str  # "take" | "video" | "folder" | "image"
    path: Path
    frames: list[int]
    fps: float = 24.0
    take: Any = None  # machinima.take.Take for a take
    files: dict[int, Path] = field(default_factory=dict)
    _video: Iterator[np.ndarray] | None = None
    _video_pos: int = 0

    def read(self, frame: int) -> np.ndarray:
        if self.kind == "video":
            return self._read_video(frame)
        p = self.files.get(frame)
        if p is None:
            raise ImageSeqError(f"{self.path} has no frame {frame}")
        img = read_image(p)
        if img.dtype != np.uint8:
            img = np.clip(img * 255.0, 0, 255).astype(np.uint8)
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        return np.ascontiguousarray(img[..., :3])

    def _read_video(self, frame: int) -> np.ndarray:
        from machinima.imageseq import read_video

        if self._video is None or frame < self._video_pos:
            self._video = iter(read_video(self.path))
            self._video_pos = 0
        img = None
        while self._video_pos <= frame:
            try:
                img = next(self._video)
            except StopIteration:
                raise ImageSeqError(f"{self.path} has no frame {frame}") from None
            self._video_pos += 1
        return img  # type: ignore[return-value]

    def source_of(self, frame: int) -> Source:
        if self.kind == "take":
            return Source("take", path=str(self.path), frame=frame, take=self.take.id if self.take else None, pass_name="rgb")
        if self.kind == "video":
            return Source("video", path=str(self.path), frame=frame)
        return Source("file", path=str(self.files.get(frame, self.path)), frame=frame)


def open_source(target: str | Path) -> FrameSource:
    p = Path(target).expanduser()
    if not p.exists():
        raise InputError(f"{p} does not exist", hint="give a take folder, a video file or a folder of images")
    if p.is_dir() and (p / "take.json").exists():
        from machinima.passes import PassSet
        from machinima.take import Take

        take = Take.open(p)
        ps = PassSet.open(take.passes_dir())
        files = ps.frame_files("rgb")
        if not files:
            raise InputError(f"take {take.id} has no rgb frames in {take.passes_dir('rgb')}", hint="render the rgb pass first")
        return FrameSource("take", p, sorted(files), float(take.fps), take=take, files=files)
    if p.is_file() and p.suffix.lower() in VIDEO_EXT:
        import av

        try:
            with av.open(str(p)) as c:
                st = c.streams.video[0]
                fps = float(st.average_rate or 24)
                n = st.frames or sum(1 for _ in c.decode(video=0))
        except (av.error.FFmpegError, IndexError) as exc:
            raise InputError(f"{p} is not a readable video: {exc}") from None
        return FrameSource("video", p, list(range(n)), fps)
    if p.is_file() and p.suffix.lower() in IMAGE_EXT:
        return FrameSource("image", p, [0], files={0: p})
    if p.is_dir():
        imgs = sorted(q for q in p.iterdir() if q.is_file() and q.suffix.lower() in IMAGE_EXT and not q.name.startswith("."))
        if not imgs:
            raise InputError(f"{p} holds no images", hint=f"expected files ending in {', '.join(sorted(IMAGE_EXT))}")
        files = dict(enumerate(imgs))
        return FrameSource("folder", p, sorted(files), files=files)
    raise InputError(f"{p} is not a take, a video ({', '.join(sorted(VIDEO_EXT))}) or an image folder")

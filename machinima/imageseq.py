"""Image sequences on disk: PNG/EXR frames written atomically, read back as numpy, and mp4.

Conventions: frames are numpy HxWxC uint8 RGB (or float32 for depth and linear data);
PNG for 8-bit, EXR for float (depth in metres). File names are ``<prefix><frame:06d>.<ext>``.
OpenCV does the image I/O (EXR enabled here, before cv2 is imported anywhere); PyAV writes mp4.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from .errors import MachinimaError
from .fsutil import temp_beside

os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")

_FRAME_RE = re.compile(r"^(?P<prefix>.*?)(?P<num>\d+)\.(?P<ext>png|exr|jpg|jpeg|tif|tiff)$", re.IGNORECASE)


class ImageSeqError(MachinimaError):
    """A frame that cannot be read or written, or a sequence with missing frames."""


def _cv2():
    import cv2  # lazy: the stage (director's laptop) does not need OpenCV

    return cv2


def frame_path(folder: str | Path, frame: int, ext: str = "png", prefix: str = "") -> Path:
    return Path(folder) / f"{prefix}{frame:06d}.{ext}"


def write_image(path: str | Path, image: np.ndarray) -> Path:
    """Write atomically (temp file + rename) so an interrupted run never leaves half a frame.

    uint8/uint16 RGB(A) or grayscale -> PNG/JPEG; float32 -> EXR (1 or 3 channels).
    """
    cv2 = _cv2()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.asarray(image)
    ext = path.suffix.lower()
    if ext == ".exr":
        img = img.astype(np.float32)
    elif img.dtype not in (np.uint8, np.uint16):
        raise ImageSeqError(f"{path.name}: {img.dtype} image must be written as .exr (or converted to uint8)")
    if img.ndim == 3 and img.shape[2] == 3:
        img = img[..., ::-1]
    elif img.ndim == 3 and img.shape[2] == 4:
        img = img[..., [2, 1, 0, 3]]
    fd, tmp = temp_beside(path, suffix=ext)  # the umask's mode, not mkstemp's 0600
    os.close(fd)
    try:
        ok = cv2.imwrite(tmp, np.ascontiguousarray(img))
        if not ok:
            raise ImageSeqError(f"could not encode {path.name}")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def read_image(path: str | Path, *, rgb: bool = True) -> np.ndarray:
    """Read a frame: uint8 RGB for PNG/JPEG, float32 for EXR; a clear error for a bad file."""
    cv2 = _cv2()
    path = Path(path)
    if not path.exists():
        raise ImageSeqError(f"frame {path} does not exist")
    flags = cv2.IMREAD_UNCHANGED
    img = cv2.imread(str(path), flags)
    if img is None:
        raise ImageSeqError(f"{path} is not a readable image (corrupt or truncated?)")
    if rgb and img.ndim == 3 and img.shape[2] == 3:
        img = img[..., ::-1]
    elif rgb and img.ndim == 3 and img.shape[2] == 4:
        img = img[..., [2, 1, 0, 3]]
    return np.ascontiguousarray(img)


def list_frames(folder: str | Path) -> dict[int, Path]:
    """Frame number -> file for every numbered image in ``folder``."""
    out: dict[int, Path] = {}
    folder = Path(folder)
    if not folder.is_dir():
        raise ImageSeqError(f"no image sequence at {folder}")
    for p in folder.iterdir():
        m = _FRAME_RE.match(p.name)
        if m and not p.name.startswith("."):
            out[int(m.group("num"))] = p
    return dict(sorted(out.items()))


def read_sequence(folder: str | Path, frames: Iterable[int] | None = None) -> Iterator[tuple[int, np.ndarray]]:
    files = list_frames(folder)
    wanted = list(files) if frames is None else list(frames)
    missing = [f for f in wanted if f not in files]
    if missing:
        raise ImageSeqError(f"{folder} is missing frames {missing[:5]}{'...' if len(missing) > 5 else ''}")
    for f in wanted:
        yield f, read_image(files[f])


def mux_audio(video: str | Path, audio: str | Path) -> None:
    """``video``'s stream copied, ``audio`` added as AAC; the file replaced atomically. Pixels
    are untouched, so a movie's watermark stays: steps call it before signing."""
    import os

    import av

    video = Path(video)
    tmp = video.with_name(f".{video.stem}.mux.mp4")
    with av.open(str(video)) as vin, av.open(str(audio)) as ain, av.open(str(tmp), "w") as dst:
        vs = dst.add_stream_from_template(vin.streams.video[0])
        ast = dst.add_stream("aac", rate=48000)
        res = av.AudioResampler(format="fltp", layout="stereo", rate=48000)
        for pkt in vin.demux(vin.streams.video[0]):
            if pkt.dts is None:
                continue
            pkt.stream = vs
            dst.mux(pkt)
        for frame in ain.decode(audio=0):
            for rf in res.resample(frame):
                for pkt in ast.encode(rf):
                    dst.mux(pkt)
        for pkt in ast.encode(None):
            dst.mux(pkt)
    os.replace(tmp, video)


def write_video(path: str | Path, frames: Iterable[np.ndarray], fps: float | str = 24, *, crf: int = 18, codec: str = "libx264") -> Path:
    """Encode uint8 RGB frames to mp4 (H.264, yuv420p) with PyAV, atomically."""
    import av
    from fractions import Fraction

    from .timecode import parse_rate

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    rate = parse_rate(fps)
    n = 0
    with av.open(str(tmp), mode="w") as container:
        stream = None
        for img in frames:
            img = np.asarray(img)
            if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
                raise ImageSeqError(f"video frames must be HxWx3 uint8, got {img.shape} {img.dtype}")
            if stream is None:
                stream = container.add_stream(codec, rate=Fraction(rate))
                stream.width = img.shape[1] - img.shape[1] % 2
                stream.height = img.shape[0] - img.shape[0] % 2
                stream.pix_fmt = "yuv420p"
                stream.options = {"crf": str(crf)}
            img = img[: stream.height, : stream.width]
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")):
                container.mux(packet)
            n += 1
        if stream is None:
            raise ImageSeqError(f"no frames to write to {path}")
        for packet in stream.encode():
            container.mux(packet)
    os.replace(tmp, path)
    return path


def read_video(path: str | Path) -> Iterator[np.ndarray]:
    """Decode a video file to uint8 RGB frames."""
    import av

    path = Path(path)
    if not path.exists():
        raise ImageSeqError(f"video {path} does not exist")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ImageSeqError(f"{path} has no video stream")
            for frame in container.decode(video=0):
                yield frame.to_ndarray(format="rgb24")
    except av.error.FFmpegError as exc:
        raise ImageSeqError(f"{path} is not a readable video: {exc}") from None


def contact_sheet(images: list[np.ndarray], columns: int = 4, width: int = 1280, labels: list[str] | None = None) -> np.ndarray:
    """Tile frames into one RGB image (thumbnails keep their aspect), with optional labels."""
    cv2 = _cv2()
    if not images:
        raise ImageSeqError("contact sheet needs at least one image")
    cols = max(1, min(columns, len(images)))
    tw = width // cols
    h0, w0 = images[0].shape[:2]
    th = max(1, int(round(tw * h0 / w0)))
    rows = (len(images) + cols - 1) // cols
    sheet = np.zeros((rows * th, cols * tw, 3), np.uint8)
    for i, img in enumerate(images):
        img = np.asarray(img)
        if img.dtype != np.uint8:
            lo, hi = float(np.nanmin(img)), float(np.nanmax(img))
            img = ((img - lo) / (hi - lo + 1e-9) * 255).astype(np.uint8)
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        thumb = cv2.resize(np.ascontiguousarray(img[..., :3]), (tw, th), interpolation=cv2.INTER_AREA)
        if labels and i < len(labels):
            cv2.putText(thumb, labels[i], (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
        r, c = divmod(i, cols)
        sheet[r * th:(r + 1) * th, c * tw:(c + 1) * tw] = thumb
    return sheet

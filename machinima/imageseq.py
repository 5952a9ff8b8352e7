"""Image sequences on disk: QOI/PNG/EXR frames written atomically, read back as numpy, and mp4.

Conventions: frames are numpy HxWxC uint8 RGB (or float32 for depth and linear data);
QOI (the fast lossless intermediate between post steps) or PNG for 8-bit, EXR for float (depth
in metres; linear colour as half). File names are ``<prefix><frame:06d>.<ext>``. OpenCV does
PNG/JPEG/TIFF/EXR (EXR enabled here, before cv2 is imported anywhere), the reference ``qoi``
codec does QOI, OpenImageIO what users bring that OpenCV cannot read (DPX); PyAV writes mp4.
All of these release the GIL while they code, so ``frameio``'s threads overlap them.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from .errors import MachinimaError
from .fsutil import frame_temp_name

os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")

_FRAME_RE = re.compile(r"^(?P<prefix>.*?)(?P<num>\d+)\.(?P<ext>png|exr|jpg|jpeg|tif|tiff|qoi|dpx)$", re.IGNORECASE)


class ImageSeqError(MachinimaError):
    """A frame that cannot be read or written, or a sequence with missing frames."""


def _cv2():
    import cv2  # lazy: the stage (director's laptop) does not need OpenCV

    return cv2


def frame_path(folder: str | Path, frame: int, ext: str = "png", prefix: str = "") -> Path:
    return Path(folder) / f"{prefix}{frame:06d}.{ext}"


EXR_PIZ = 4  # OpenCV's IMWRITE_EXR_COMPRESSION_PIZ: ~50 ms a 1080p half frame, against ~700 ms for ZIP
# OpenCV's IMWRITE_EXR_COMPRESSION values by OpenEXR's names. "none" reads fastest (a 1080p float
# depth frame: ~6-17 ms against ~50-130 ms for PIZ, docs/performance.md): the render passes use it;
# "dwaa"/"dwab" are lossy (never for depth or data).
EXR_COMPRESSION = {"none": 0, "rle": 1, "zips": 2, "zip": 3, "piz": 4, "pxr24": 5, "b44": 6, "b44a": 7, "dwaa": 8, "dwab": 9}


def write_image(path: str | Path, image: np.ndarray, *, half: bool = False, png_level: int | None = None,
                exr_compression: str = "piz") -> Path:
    """Write atomically (per-process temp name + rename) so an interrupted run never leaves half
    a frame, and two processes writing one folder never take each other's temps.

    uint8 RGB(A) -> QOI; uint8/uint16 RGB(A) or grayscale -> PNG/JPEG/TIFF; float -> EXR
    (1 or 3 channels; ``half``: 16-bit float, for colour; ``exr_compression``: one of
    ``EXR_COMPRESSION``, PIZ unless told). ``png_level`` 0-9 (0: stored, the fastest to read).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.asarray(image)
    ext = path.suffix.lower()
    tmp = frame_temp_name(path)
    try:
        if ext == ".qoi":
            _write_file(tmp, encode_qoi(img, path.name))
        else:
            _imwrite_cv2(tmp, img, ext, half=half, png_level=png_level, name=path.name, exr_compression=exr_compression)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def _write_file(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask's mode: teammates read frames
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def encode_qoi(img: np.ndarray, name: str = "frame") -> bytes:
    """QOI bytes of a uint8 RGB/RGBA frame (the reference encoder: ~18 ms a 1080p frame)."""
    a = np.asarray(img)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] not in (3, 4):
        raise ImageSeqError(f"{name}: QOI holds 8-bit RGB(A) frames, not {a.shape} {a.dtype} (masks: PNG, data: EXR)")
    return _qoi().encode(np.ascontiguousarray(a))


def _qoi():
    try:
        import qoi
    except ImportError:
        raise ImageSeqError("QOI frames need the 'qoi' package", hint="pip install 'machinima[video]'") from None
    return qoi


def qoi_available() -> bool:
    try:
        import qoi  # noqa: F401
    except ImportError:
        return False
    return True


def _imwrite_cv2(tmp: Path, img: np.ndarray, ext: str, *, half: bool, png_level: int | None, name: str,
                 exr_compression: str = "piz") -> None:
    cv2 = _cv2()
    params: list[int] = []
    if ext == ".exr":
        if exr_compression not in EXR_COMPRESSION:
            raise ImageSeqError(f"{name}: EXR compression must be one of {sorted(EXR_COMPRESSION)}, not {exr_compression!r}")
        img = img.astype(np.float32, copy=False)
        params = [cv2.IMWRITE_EXR_TYPE, cv2.IMWRITE_EXR_TYPE_HALF if half else cv2.IMWRITE_EXR_TYPE_FLOAT,
                  cv2.IMWRITE_EXR_COMPRESSION, EXR_COMPRESSION[exr_compression]]
    elif img.dtype not in (np.uint8, np.uint16):
        raise ImageSeqError(f"{name}: {img.dtype} image must be written as .exr (or converted to uint8)")
    elif ext == ".png" and png_level is not None:
        params = [cv2.IMWRITE_PNG_COMPRESSION, int(png_level)]
    if img.ndim == 3 and img.shape[2] == 3:
        img = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2BGR)
    elif img.ndim == 3 and img.shape[2] == 4:
        img = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGBA2BGRA)
    if not cv2.imwrite(str(tmp), np.ascontiguousarray(img), params):
        raise ImageSeqError(f"could not encode {name}")


def read_image(path: str | Path, *, rgb: bool = True) -> np.ndarray:
    """Read a frame: uint8 RGB for QOI/PNG/JPEG, float32 for EXR, what the file holds for
    TIFF/DPX; a clear error for a missing or bad file."""
    path = Path(path)
    if not path.exists():
        raise ImageSeqError(f"frame {path} does not exist")
    ext = path.suffix.lower()
    if ext == ".qoi":
        try:
            img = _qoi().read(str(path))
        except (ValueError, RuntimeError, OSError) as exc:
            raise ImageSeqError(f"{path} is not a readable QOI frame (corrupt or truncated?): {exc}") from None
        return np.ascontiguousarray(img if rgb else img[..., ::-1] if img.shape[2] == 3 else img[..., [2, 1, 0, 3]])
    if ext == ".dpx":
        return read_oiio(path, rgb=rgb)
    cv2 = _cv2()
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        if ext in (".tif", ".tiff", ".exr"):
            return read_oiio(path, rgb=rgb)
        raise ImageSeqError(f"{path} is not a readable image (corrupt or truncated?)")
    if rgb and img.ndim == 3 and img.shape[2] == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    elif rgb and img.ndim == 3 and img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA)
    return np.ascontiguousarray(img)


def read_oiio(path: str | Path, *, rgb: bool = True) -> np.ndarray:
    """A frame through OpenImageIO (DPX, and TIFF/EXR variants OpenCV refuses): uint8/uint16 as
    stored, float32 for float files, RGB order."""
    try:
        import OpenImageIO as oiio
    except ImportError:
        raise ImageSeqError(f"{Path(path).name}: reading {Path(path).suffix} needs OpenImageIO",
                            hint="pip install 'machinima[video]'") from None
    inp = oiio.ImageInput.open(str(path))
    if inp is None:
        raise ImageSeqError(f"{path} is not a readable image: {oiio.geterror()}")
    try:
        fmt = inp.spec().format
        want = "uint8" if fmt == oiio.UINT8 else "uint16" if fmt in (oiio.UINT16, oiio.UINT10, oiio.UINT12) else "float"
        img = inp.read_image(want)
    finally:
        inp.close()
    if img is None:
        raise ImageSeqError(f"{path} is not a readable image: {oiio.geterror()}")
    img = np.asarray(img)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    if not rgb and img.ndim == 3 and img.shape[2] >= 3:
        img = img[..., [2, 1, 0, *range(3, img.shape[2])]]
    return np.ascontiguousarray(img.astype(np.float32) if img.dtype.kind == "f" else img)


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


def find_frame(folder: str | Path, frame: int) -> Path:
    """The file of ``frame`` in a sequence, whatever its format (QOI, PNG, EXR...): readers of a
    step's frames should not care which intermediate the step wrote."""
    folder = Path(folder)
    for ext in ("qoi", "png", "exr", "jpg", "tif", "dpx"):
        p = frame_path(folder, frame, ext)
        if p.exists():
            return p
    files = list_frames(folder)
    if frame not in files:
        raise ImageSeqError(f"{folder} has no frame {frame}")
    return files[frame]


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


def write_video(path: str | Path, frames: Iterable[np.ndarray], fps: float | str = 24, *, crf: int = 18, codec: str = "libx264",
                pix_fmt: str = "yuv420p", options: dict[str, str] | None = None, timecode: str | None = None,
                bt709: bool = False) -> Path:
    """Encode uint8 RGB frames with PyAV, atomically: H.264 yuv420p by default (``options``
    default: the CRF). ``timecode``: the start timecode (a tmcd track in .mov/.mp4);
    ``bt709``: converted with the BT.709 matrix and tagged so (deliveries; swscale's default is
    BT.601, untagged)."""
    import av
    from av.video.reformatter import ColorRange, Colorspace

    from .timecode import parse_rate

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = frame_temp_name(path)
    rate = parse_rate(fps)
    try:
        with av.open(str(tmp), mode="w") as container:
            if timecode:
                container.metadata["timecode"] = timecode
            stream = None
            for img in frames:
                img = np.asarray(img)
                if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
                    raise ImageSeqError(f"video frames must be HxWx3 uint8, got {img.shape} {img.dtype}")
                if stream is None:
                    stream = container.add_stream(codec, rate=rate)
                    stream.width = img.shape[1] - img.shape[1] % 2
                    stream.height = img.shape[0] - img.shape[0] % 2
                    stream.pix_fmt = pix_fmt
                    stream.options = dict(options) if options is not None else {"crf": str(crf)}
                    if bt709:
                        cc = stream.codec_context
                        cc.color_primaries, cc.color_trc, cc.colorspace, cc.color_range = 1, 1, 1, 1
                    if timecode:
                        stream.metadata["timecode"] = timecode
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img[: stream.height, : stream.width]), format="rgb24")
                if bt709:
                    frame = frame.reformat(format=pix_fmt, dst_colorspace=Colorspace.ITU709, dst_color_range=ColorRange.MPEG)
                for packet in stream.encode(frame):
                    container.mux(packet)
            if stream is None:
                raise ImageSeqError(f"no frames to write to {path}")
            for packet in stream.encode():
                container.mux(packet)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
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

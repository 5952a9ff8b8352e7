"""Picture delivery: a post step's frames as a movie or a frame sequence for the next tool.

``machinima takes export TAKE --step STEP --format mp4|prores|dnxhr|exr|png`` (one ``--format``
with the motion formats: ``--step`` picks pictures). Movies go through PyAV with the pixel
formats editors expect and the take's start timecode (a ``tmcd`` track in .mov, ``timecode``
metadata in .mp4):

    mp4      H.264, yuv420p, CRF 18                 (review, web)
    prores   ProRes 422 HQ (prores_ks), yuv422p10le  .mov (finishing)
    dnxhr    DNxHR HQ (dnxhd), yuv422p               .mov (Avid)
    exr      OpenEXR half, PIZ, linear Rec.709 (the sRGB curve removed), frame rate, timecode and
             colour space in the header (OpenImageIO; OpenCV without the metadata)
    png      8-bit sRGB PNG, one C2PA manifest per frame

Colour: post-step frames are display-referred sRGB (Rec.709 primaries, sRGB curve); movies keep
them so (tagged BT.709); EXR delivers scene-linear Rec.709 (not ACES: no ACES transform is
applied; a grader brings one). Disclosure applies to what is delivered: each movie frame is
marked with the movie's manifest id and the file signed; PNG frames each carry a manifest; EXR
frames (which hold no C2PA manifest and no 8-bit watermark) are listed by SHA-256 in a signed
``disclosure.png`` beside them.
"""

from __future__ import annotations

import hashlib
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from .errors import MachinimaError
from .imageseq import list_frames, read_image, write_image
from .timecode import Timecode

PICTURE_FORMATS = ("mp4", "prores", "dnxhr", "exr", "png")
# format -> (container suffix, codec, pix_fmt, codec options)
MOVIES: dict[str, tuple[str, str, str, dict[str, str]]] = {
    "mp4": (".mp4", "libx264", "yuv420p", {"crf": "18"}),
    "prores": (".mov", "prores_ks", "yuv422p10le", {"profile": "3"}),  # 3: 422 HQ
    "dnxhr": (".mov", "dnxhd", "yuv422p", {"profile": "dnxhr_hq"}),
}


class DeliveryError(MachinimaError):
    """A step that cannot be delivered as asked (no frames, unknown format)."""


def step_frames(step_dir: Path, output: str | None = None) -> tuple[str, dict[int, Path]]:
    """The picture output of a step (``output``, else rgb / frames / the first folder of frames)."""
    if not step_dir.is_dir():
        raise DeliveryError(f"no post step at {step_dir}", hint="list a take's steps with: ls TAKE/post")
    names = [output] if output else ["rgb", "frames", *sorted(p.name for p in step_dir.iterdir() if p.is_dir() and not p.name.startswith("."))]
    for name in names:
        d = step_dir / name
        if d.is_dir():
            files = list_frames(d)
            if files:
                return name, files
    raise DeliveryError(f"{step_dir} has no frames{f' in {output}' if output else ''}")


def _pictures(files: dict[int, Path]) -> Iterator[np.ndarray]:
    from .frameio import ReadAhead

    for _, img in ReadAhead(list(files.values()), read_image, depth=4):
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] < 3:
            raise DeliveryError(f"delivery takes 8-bit RGB frames, not {img.shape} {img.dtype}")
        yield np.ascontiguousarray(img[..., :3])


def encode_movie(path: Path, frames: Iterable[np.ndarray], fps: Fraction, fmt: str, timecode: str | None) -> Path:
    """Encode with PyAV: the codec and pixel format of ``fmt``, BT.709, start timecode."""
    from .imageseq import ImageSeqError, write_video

    _, codec, pix_fmt, options = MOVIES[fmt]
    try:
        return write_video(path, frames, fps, codec=codec, pix_fmt=pix_fmt, options=options, timecode=timecode, bt709=True)
    except ImageSeqError as exc:
        raise DeliveryError(str(exc)) from None


def srgb_to_linear(img: np.ndarray) -> np.ndarray:
    """8-bit sRGB to linear Rec.709 floats (the IEC 61966-2-1 curve)."""
    x = img.astype(np.float32) / 255.0
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4).astype(np.float32)


def write_exr_frame(path: Path, img: np.ndarray, fps: Fraction, timecode: Timecode) -> Path:
    """Linear half EXR (PIZ) with colour space, frame rate and SMPTE timecode in the header."""
    lin = srgb_to_linear(img)
    try:
        import OpenImageIO as oiio
    except ImportError:
        return write_image(path, lin, half=True)  # OpenCV: the pixels, without the metadata
    from .fsutil import frame_temp_name

    spec = oiio.ImageSpec(lin.shape[1], lin.shape[0], 3, oiio.HALF)
    spec.attribute("compression", "piz")
    spec.attribute("oiio:ColorSpace", "lin_rec709")
    spec.attribute("FramesPerSecond", oiio.TypeDesc("rational"), [fps.numerator, fps.denominator])
    spec.attribute("smpte:TimeCode", oiio.TypeDesc("timecode"), _smpte_bcd(timecode))
    spec.attribute("machinima:timecode", str(timecode))
    tmp = frame_temp_name(path)
    out = oiio.ImageOutput.create(str(tmp))
    if out is None or not out.open(str(tmp), spec):
        raise DeliveryError(f"could not write {path.name}: {oiio.geterror()}")
    try:
        out.write_image(lin)
    finally:
        out.close()
    tmp.replace(path)
    return path


def _smpte_bcd(tc: Timecode) -> list[int]:
    """SMPTE 12M time and user words (BCD hh:mm:ss:ff, drop-frame flag) as EXR stores them."""
    h, m, s, f = (int(x) for x in str(tc).replace(";", ":").split(":"))

    def bcd(v: int) -> int:
        return ((v // 10) << 4) | (v % 10)

    word = bcd(f) | (bcd(s) << 8) | (bcd(m) << 16) | (bcd(h) << 24)
    if getattr(tc, "drop_frame", False):
        word |= 1 << 6
    return [word, 0]


def _disclosure(step_dir: Path) -> Any:
    from .poststep import _disclosure_of

    return _disclosure_of(step_dir)


def export_step(take_dir: str | Path, step: str, fmt: str, out: str | Path, *, output: str | None = None) -> list[Path]:
    """Deliver one post step of a take in ``fmt``; returns the files written."""
    from .take import Take

    fmt = fmt.lower()
    if fmt not in PICTURE_FORMATS:
        raise DeliveryError(f"--step delivers pictures as {' | '.join(PICTURE_FORMATS)}, not {fmt!r}")
    take = Take.open(take_dir)
    step_dir = take.post_dir(step)
    name, files = step_frames(step_dir, output)
    fps = take.fps
    start = Timecode.parse(take.manifest.timecode_in, fps) + min(files)
    out = Path(out)
    disclosure = _disclosure(step_dir)
    if fmt in MOVIES:
        suffix = MOVIES[fmt][0]
        path = out if out.suffix.lower() == suffix else out / f"{take.id}-{step}{suffix}"
        path.parent.mkdir(parents=True, exist_ok=True)
        frames: Iterable[np.ndarray] = _pictures(files)
        if disclosure is None:  # a recorded "off" decision
            return [encode_movie(path, frames, fps, fmt, str(start))]
        from .provenance.manifest import mime_of, new_manifest_id, sign_file

        mid = new_manifest_id()
        encode_movie(path, (disclosure.mark(f, mid, label=False) for f in frames), fps, fmt, str(start))
        return [sign_file(path, disclosure.manifest(path.name, mime_of(path) or "", manifest_id=mid), disclosure.identity)]
    folder = out
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    hashes: dict[str, str] = {}
    for (f, _), img in zip(files.items(), _pictures(files)):
        if fmt == "png":
            p = folder / f"{f:06d}.png"
            if disclosure is None:
                written.append(write_image(p, img))
            else:
                from .stepfiles import write_frame_bytes as _write_bytes

                _write_bytes(p, disclosure.encode(img, f"{step}/{p.name}", frame=f))
                written.append(p)
        else:
            p = write_exr_frame(folder / f"{f:06d}.exr", img, fps, start + (f - min(files)))
            hashes[p.name] = hashlib.sha256(p.read_bytes()).hexdigest()
            written.append(p)
    if hashes and disclosure is not None:
        from .provenance.sequence import SIDECAR, write_sidecar

        mid = disclosure.frame_manifest_id(f"{step}/delivery/{folder.name}")
        written.append(write_sidecar(folder / SIDECAR, disclosure, mid, hashes, folder))
    return written

"""The archive look: fictional found footage from any frame sequence, deterministic by seed.

A preset (TOML, ``stylize/archive_presets/``) is a format frame (size, fps) and a chain of
effects. Each effect is a pure function of (frame index, seed, its input), so any frame can be
rendered alone, in any order, on any machine, and gives the same pixels: that is what makes the
step resumable and distributable. Two effects look at more than one frame:

- ``interlace`` weaves the odd field of the previous frame into the current one;
- ``codec`` re-encodes aligned windows of ``gop`` frames with a real encoder (PyAV: MPEG-2,
  H.264, DV...) at a starved bitrate and decodes them back, so the blocking is the codec's own.

Effects: ``resample`` (lose detail), ``color`` (saturation, contrast, lift, tint), ``vhs``
(chroma bleed and delay, tracking noise, head-switching band, dropouts), ``grain``, ``stamp``
(date/time burn-in with a running clock), ``interlace``, ``codec``, ``jpeg`` (generational loss),
``shake`` (handheld), ``weave`` (film gate), ``vignette``, ``flicker``, ``letterbox``.
"""

from __future__ import annotations

import datetime as _dt
import io
import tomllib
from dataclasses import dataclass, field
from fractions import Fraction
from importlib import resources
from pathlib import Path
from typing import Any, Callable

import numpy as np

from machinima.sparse import describe as describe_frames
from machinima.sparse import held

from .errors import StylizeError

PRESET_DIR = "archive_presets"


class ArchiveError(StylizeError):
    """A preset that cannot be used (names the effect and field), or frames that cannot be aged."""


# effect kind -> allowed params with defaults
EFFECTS: dict[str, dict[str, Any]] = {
    "resample": {"scale": 0.5},
    "color": {"saturation": 1.0, "contrast": 1.0, "lift": 0.0, "tint": [1.0, 1.0, 1.0]},
    "vhs": {"chroma_blur": 9, "chroma_delay": 4, "tracking_noise": 0.3, "head_switch_rows": 8, "dropouts": 2.0},
    "grain": {"amount": 0.03, "size": 1.0, "chroma": False},
    "stamp": {"text": "", "clock_from": "", "color": [255, 255, 255], "position": "bottom-left"},
    "interlace": {},
    "codec": {"codec": "mpeg2video", "bitrate": 1_000_000, "gop": 12},
    "jpeg": {"quality": 40, "generations": 2},
    "shake": {"amount": 5.0, "rotation": 0.5, "frequency": 1.0},
    "weave": {"amount": 2.0},
    "vignette": {"strength": 0.5},
    "flicker": {"amount": 0.05},
    "letterbox": {"aspect": 2.39},
}


SIGNED_FIELDS = {"lift"}  # may be negative (crushed blacks)


@dataclass
class Effect:
    kind: str
    params: dict[str, Any]


@dataclass
class ArchivePreset:
    name: str
    description: str
    size: tuple[int, int]
    fps: Fraction | None
    effects: list[Effect] = field(default_factory=list)


def list_presets() -> list[str]:
    folder = resources.files(__package__).joinpath(PRESET_DIR)
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def load_preset(name_or_path: str | Path) -> ArchivePreset:
    """A shipped preset by name (``vhs-1994``) or a TOML file of one's own."""
    p = Path(name_or_path)
    if p.suffix == ".toml" or p.exists():
        if not p.exists():
            raise ArchiveError(f"no archive preset file at {p}")
        text, where = p.read_text(encoding="utf-8"), str(p)
    else:
        res = resources.files(__package__).joinpath(PRESET_DIR, f"{name_or_path}.toml")
        if not res.is_file():
            raise ArchiveError(f"no archive preset {name_or_path!r}", hint=f"presets: {', '.join(list_presets())}, or a .toml file")
        text, where = res.read_text(encoding="utf-8"), f"preset {name_or_path}"
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ArchiveError(f"{where}: {exc}") from None
    return parse_preset(doc, where)


def parse_preset(doc: dict[str, Any], where: str = "preset") -> ArchivePreset:
    from machinima.timecode import parse_rate

    size = doc.get("size", [640, 480])
    if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and 16 <= v <= 8192 for v in size)):
        raise ArchiveError(f"{where}: 'size' must be [width, height] in pixels")
    fps = None
    if "fps" in doc:
        try:
            fps = parse_rate(doc["fps"])
        except Exception:
            raise ArchiveError(f"{where}: 'fps' is not a frame rate: {doc['fps']!r}") from None
    effects = []
    for i, e in enumerate(doc.get("effects", [])):
        kind = e.get("kind")
        if kind not in EFFECTS:
            raise ArchiveError(f"{where}: effects[{i}] has unknown kind {kind!r}; kinds: {', '.join(EFFECTS)}")
        unknown = set(e) - {"kind"} - set(EFFECTS[kind])
        if unknown:
            raise ArchiveError(f"{where}: effects[{i}] ({kind}) has unknown field(s) {', '.join(sorted(unknown))}; fields: {', '.join(EFFECTS[kind]) or 'none'}")
        params = {**EFFECTS[kind], **{k: v for k, v in e.items() if k != "kind"}}
        for k, default in EFFECTS[kind].items():
            v = params[k]
            if isinstance(default, (int, float)) and not isinstance(default, bool):
                if not isinstance(v, (int, float)) or isinstance(v, bool) or not np.isfinite(v):
                    raise ArchiveError(f"{where}: effects[{i}] ({kind}) field '{k}' must be a number")
                if v < 0 and k not in SIGNED_FIELDS:
                    raise ArchiveError(f"{where}: effects[{i}] ({kind}) field '{k}' must not be negative")
        effects.append(Effect(kind, params))
    return ArchivePreset(str(doc.get("name", "custom")), str(doc.get("description", "")), (size[0], size[1]), fps, effects)


# --- single-frame effects: (img float32 0..1 HxWx3, rng, frame, params) -> img ----------------
def _cv2():
    import cv2

    return cv2


def fit(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Fit a frame into the format's frame, keeping its aspect (black bars), as uint8."""
    cv2 = _cv2()
    w, h = size
    ih, iw = img.shape[:2]
    s = min(w / iw, h / ih)
    nw, nh = max(1, round(iw * s)), max(1, round(ih * s))
    small = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    out = np.zeros((h, w, 3), np.uint8)
    y0, x0 = (h - nh) // 2, (w - nw) // 2
    out[y0:y0 + nh, x0:x0 + nw] = small[..., :3]
    return out


def _resample(img, rng, frame, p, ctx):
    cv2 = _cv2()
    h, w = img.shape[:2]
    s = max(0.05, min(1.0, float(p["scale"])))
    small = cv2.resize(img, (max(1, int(w * s)), max(1, int(h * s))), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def _color(img, rng, frame, p, ctx):
    luma = img @ np.array([0.299, 0.587, 0.114], np.float32)
    out = luma[..., None] + (img - luma[..., None]) * float(p["saturation"])
    out = (out - 0.5) * float(p["contrast"]) + 0.5
    out = out * (1 - float(p["lift"])) + float(p["lift"]) if p["lift"] >= 0 else out * (1 + float(p["lift"]))
    return out * np.asarray(p["tint"], np.float32)


def _vhs(img, rng, frame, p, ctx):
    cv2 = _cv2()
    h, w = img.shape[:2]
    ycc = cv2.cvtColor(np.clip(img, 0, 1), cv2.COLOR_RGB2YCrCb)
    k = max(1, int(p["chroma_blur"]))
    ycc[..., 1:] = cv2.blur(ycc[..., 1:], (k, 1))
    d = int(p["chroma_delay"])
    if d:
        ycc[:, d:, 1:] = ycc[:, :-d, 1:].copy()
    out = cv2.cvtColor(ycc, cv2.COLOR_YCrCb2RGB)
    # tracking noise: a band that rolls slowly down the picture
    strength = float(p["tracking_noise"])
    if strength > 0:
        band_h = max(4, h // 12)
        y0 = int((frame * 3 + rng.integers(0, 5)) % (h + band_h)) - band_h
        ys = np.arange(max(0, y0), min(h, y0 + band_h))
        if ys.size:
            shift = (rng.normal(0, 6 * strength, ys.size)).astype(int)
            for y, s in zip(ys, shift):
                out[y] = np.roll(out[y], s, axis=0)
            out[ys] += rng.normal(0, 0.25 * strength, (ys.size, w, 1)).astype(np.float32)
    rows = int(p["head_switch_rows"])
    if rows:
        out[h - rows:] = np.roll(out[h - rows:], int(rng.integers(8, 20)), axis=1)
        out[h - rows:] += rng.normal(0, 0.08, (rows, w, 1)).astype(np.float32)
    for _ in range(rng.poisson(float(p["dropouts"]))):
        y, x = int(rng.integers(0, h)), int(rng.integers(0, w))
        out[y, x:x + int(rng.integers(5, max(6, w // 6)))] = 1.0
    return out


def _grain(img, rng, frame, p, ctx):
    cv2 = _cv2()
    h, w = img.shape[:2]
    size = max(1.0, float(p["size"]))
    gh, gw = max(1, int(h / size)), max(1, int(w / size))
    ch = 3 if p["chroma"] else 1
    noise = rng.normal(0, 1, (gh, gw, ch)).astype(np.float32)
    if (gh, gw) != (h, w):
        noise = cv2.resize(noise, (w, h), interpolation=cv2.INTER_LINEAR)
        noise = noise.reshape(h, w, ch)
    luma = img.mean(axis=2, keepdims=True)
    weight = 0.5 + 2.0 * luma * (1 - luma)  # grain shows most in the mid-tones
    return img + noise * weight * float(p["amount"])


def _stamp(img, rng, frame, p, ctx):
    cv2 = _cv2()
    h, w = img.shape[:2]
    text = str(p["text"])
    clock = ""
    if p["clock_from"]:
        try:
            start = _dt.datetime.fromisoformat(str(p["clock_from"]))
        except ValueError:
            raise ArchiveError(f"stamp: clock_from {p['clock_from']!r} is not an ISO date-time") from None
        t = start + _dt.timedelta(seconds=frame / float(ctx["fps"]))
        clock = t.strftime("%I:%M:%S %p")
    scale = h / 480 * 0.9
    thick = max(1, int(round(scale * 2)))
    lines = [s for s in (text, clock) if s]
    color = tuple(float(c) / 255 for c in p["color"])
    line_h = int(32 * scale)
    for i, line in enumerate(lines):
        (tw, _), _ = cv2.getTextSize(line, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
        x = int(0.06 * w) if "left" in p["position"] else w - tw - int(0.06 * w)
        y = int(0.1 * h) + i * line_h if "top" in p["position"] else h - int(0.08 * h) - (len(lines) - 1 - i) * line_h
        cv2.putText(img, line, (x + 2, y + 2), cv2.FONT_HERSHEY_SIMPLEX, scale, (0.0, 0.0, 0.0), thick + 1, cv2.LINE_AA)
        cv2.putText(img, line, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, color, thick, cv2.LINE_AA)
    return img


def _jpeg(img, rng, frame, p, ctx):
    cv2 = _cv2()
    u8 = (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)
    for g in range(int(p["generations"])):
        ok, buf = cv2.imencode(".jpg", u8, [cv2.IMWRITE_JPEG_QUALITY, int(p["quality"])])
        u8 = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
        if g % 2 == 0:  # a re-save after a small crop/shift, as phones and uploads did
            u8 = np.roll(u8, 1, axis=1)
    return u8.astype(np.float32) / 255


def _smooth_noise(seed: int, t: float, freq: float, n: int = 3) -> float:
    r = np.random.default_rng(seed)
    fs = r.uniform(0.5, 1.5, n) * freq
    ph = r.uniform(0, 2 * np.pi, n)
    return float(np.sum(np.sin(2 * np.pi * fs * t + ph)) / np.sqrt(n))


def _warp(img, dx, dy, angle, zoom):
    cv2 = _cv2()
    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, zoom)
    m[:, 2] += (dx, dy)
    return cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def _shake(img, rng, frame, p, ctx):
    t = frame / float(ctx["fps"])
    s, f = int(ctx["seed"]), float(p["frequency"])
    a = float(p["amount"])
    dx, dy = a * _smooth_noise(s * 7 + 1, t, f), a * _smooth_noise(s * 7 + 2, t, f)
    ang = float(p["rotation"]) * _smooth_noise(s * 7 + 3, t, f * 0.7)
    zoom = 1 + 2.5 * a / img.shape[1]
    return _warp(img, dx, dy, ang, zoom)


def _weave(img, rng, frame, p, ctx):
    a = float(p["amount"])
    return _warp(img, rng.normal(0, a * 0.3), rng.normal(0, a), 0.0, 1 + 2 * a / img.shape[0])


def _vignette(img, rng, frame, p, ctx):
    h, w = img.shape[:2]
    key = ("vignette", h, w, float(p["strength"]))
    mask = ctx["cache"].get(key)
    if mask is None:
        y, x = np.mgrid[0:h, 0:w].astype(np.float32)
        r = np.sqrt(((x - w / 2) / (w / 2)) ** 2 + ((y - h / 2) / (h / 2)) ** 2) / np.sqrt(2)
        mask = (1 - float(p["strength"]) * r**2.2)[..., None].astype(np.float32)
        ctx["cache"][key] = mask
    return img * mask


def _flicker(img, rng, frame, p, ctx):
    return img * (1 + rng.normal(0, float(p["amount"])))


def _letterbox(img, rng, frame, p, ctx):
    h, w = img.shape[:2]
    bar = max(0, int((h - w / float(p["aspect"])) / 2))
    if bar:
        img[:bar] = 0
        img[h - bar:] = 0
    return img


FRAME_EFFECTS: dict[str, Callable] = {
    "resample": _resample, "color": _color, "vhs": _vhs, "grain": _grain, "stamp": _stamp, "jpeg": _jpeg,
    "shake": _shake, "weave": _weave, "vignette": _vignette, "flicker": _flicker, "letterbox": _letterbox,
}


def reencode(frames: list[np.ndarray], codec: str, bitrate: int, fps: Fraction, gop: int) -> list[np.ndarray]:
    """Encode frames with a real codec at ``bitrate`` and decode them back (in memory)."""
    import av

    h, w = frames[0].shape[:2]
    w2, h2 = w - w % 2, h - h % 2
    buf = io.BytesIO()
    fmt = "mpegts" if codec in ("mpeg2video", "mpeg1video", "libx264", "h264") else "matroska"
    try:
        with av.open(buf, mode="w", format=fmt) as out:
            st = out.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
            st.width, st.height, st.pix_fmt = w2, h2, "yuv420p"
            st.bit_rate = int(bitrate)
            st.gop_size = int(gop)
            for f in frames:
                for pkt in st.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f[:h2, :w2]), format="rgb24")):
                    out.mux(pkt)
            for pkt in st.encode():
                out.mux(pkt)
        buf.seek(0)
        with av.open(buf, mode="r", format=fmt) as inp:
            decoded = [fr.to_ndarray(format="rgb24") for fr in inp.decode(video=0)]
    except av.error.FFmpegError as exc:
        raise ArchiveError(f"codec {codec!r} failed: {exc}") from None
    if len(decoded) != len(frames):
        raise ArchiveError(f"codec {codec!r} returned {len(decoded)} frames for {len(frames)}")
    out_frames = []
    for src, dec in zip(frames, decoded):
        full = src.copy()
        full[:h2, :w2] = dec
        out_frames.append(full)
    return out_frames


class ArchiveLook:
    """Renders frames of a source through a preset. ``source(frame) -> uint8 HxWx3``.

    ``frames``: the source frames that exist (default: every frame up to ``last_frame``). A take
    rendered every Nth frame ages those frames as a sequence: "the previous frame" (interlace) is
    the previous one that exists, a codec's group of pictures is ``gop`` consecutive existing
    frames, and a slower format holds the latest existing frame (``machinima.sparse``).
    """

    def __init__(self, preset: ArchivePreset, source: Callable[[int], np.ndarray], *, seed: int = 0,
                 source_fps: Fraction | float = 24, last_frame: int | None = None, frames: list[int] | None = None) -> None:
        self.preset = preset
        self.source = source
        self.seed = int(seed)
        self.source_fps = Fraction(source_fps).limit_denominator(1001)
        self.frames = sorted(frames) if frames is not None else None
        self.last_frame = self.frames[-1] if self.frames else last_frame
        self._pos = {f: i for i, f in enumerate(self.frames)} if self.frames is not None else None
        self._ctx = {"fps": self.source_fps, "seed": self.seed, "cache": {}}
        self._memo: dict[tuple[int, int], np.ndarray] = {}

    def held_frame(self, frame: int) -> int:
        """The source frame shown at ``frame`` when the format runs slower than the source
        (Super 8 at 18 fps in a 24 fps film holds frames in a 3:4 pattern); always one that exists."""
        fps = self.preset.fps
        if fps is not None and fps < self.source_fps:
            t = Fraction(frame) / self.source_fps
            frame = int(int(t * fps) / fps * self.source_fps)
        return frame if self.frames is None else held(self.frames, frame, frame)[0]

    def _index(self, frame: int) -> int:
        if self._pos is None:
            return frame
        if frame not in self._pos:
            have = describe_frames(self.frames) or f"frames {self.frames[0]}..{self.frames[-1]}"
            raise ArchiveError(f"frame {frame} is not in the source (it has {have})")
        return self._pos[frame]

    def _at(self, index: int) -> int:
        return index if self.frames is None else self.frames[index]

    def _count(self) -> int | None:
        if self.frames is not None:
            return len(self.frames)
        return None if self.last_frame is None else self.last_frame + 1

    def _rng(self, frame: int, i: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, frame, i])

    def _upto(self, frame: int, k: int) -> np.ndarray:
        """Frame ``frame`` after the first ``k`` effects, uint8."""
        key = (frame, k)
        if key in self._memo:
            return self._memo[key]
        if k == 0:
            src = np.asarray(self.source(self.held_frame(frame)))
            if src.ndim != 3 or src.shape[2] < 3:
                raise ArchiveError(f"frame {frame}: expected an RGB image, got shape {src.shape}")
            out = fit(src[..., :3].astype(np.uint8), self.preset.size)
        else:
            eff = self.preset.effects[k - 1]
            if eff.kind == "codec":
                gop = max(1, int(eff.params["gop"]))
                i = self._index(frame)
                w0 = (i // gop) * gop
                n = self._count()
                w1 = w0 + gop if n is None else min(w0 + gop, n)
                window = [self._at(j) for j in range(w0, max(w1, i + 1))]
                coded = reencode([self._upto(f, k - 1) for f in window], eff.params["codec"], int(eff.params["bitrate"]),
                                 self.preset.fps or self.source_fps, gop)
                for f, img in zip(window, coded):
                    self._memo[(f, k)] = img
                return self._memo[key]
            if eff.kind == "interlace":
                cur = self._upto(frame, k - 1)
                i = self._index(frame)
                prev = self._upto(self._at(i - 1), k - 1) if i > 0 else cur
                out = cur.copy()
                out[1::2] = prev[1::2]
            else:
                img = self._upto(frame, k - 1).astype(np.float32) / 255
                img = FRAME_EFFECTS[eff.kind](img, self._rng(frame, k), frame, eff.params, self._ctx)
                out = (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)
        self._memo[key] = out
        return out

    def render(self, frame: int) -> np.ndarray:
        out = self._upto(frame, len(self.preset.effects))
        keep = 2 * max([int(e.params.get("gop", 1)) for e in self.preset.effects if e.kind == "codec"] + [1])
        i = self._index(frame)
        self._forget_before(self._at(i - keep) if i - keep >= 0 else -1)
        return out

    def _forget_before(self, frame: int) -> None:
        for key in [k for k in self._memo if k[0] < frame]:
            del self._memo[key]

    def process(self, batch: list[int]) -> list[dict[str, np.ndarray]]:
        """For ``PostStep.run``: one output image ('frames') per frame."""
        return [{"frames": self.render(f)} for f in batch]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255.0**2 / mse)

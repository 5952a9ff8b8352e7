"""Editorial hand-off through OpenTimelineIO: the circled takes of a scene as a timeline for the
editor (.otio, CMX 3600 .edl and FCP 7 .xml through OTIO's own adapters), and an edited timeline
read back to mark which takes and frames the cut uses.

Time is timecode-true: a clip's source range is in the take's own timecode (frame counts since
midnight at the take's rate, drop frame where the take is), so an editor sees the slate's
timecode and a cut comes back to exactly the take frames it used. Every clip is named after its
take id (EDL ``* FROM CLIP NAME``, FCP ``<name>``) and carries the id and version in OTIO
metadata (``metadata["machinima"]``): EDL and FCP XML keep the name, OTIO keeps both.

Versions: ``render`` (``passes/rgb``) or a post step, by kind (``composite``, ``stylize``,
``archive``, ``dream`` ... the newest such step of the take) or by step id (``post/<id>``). Media:
the step's mp4 when it has one (``--media auto``), else its numbered frames; QOI frames (which
editors cannot read) are delivered as an mp4 or PNG frames first (``deliver_for_edit``).
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from .errors import EditorialError, TakeError
from .fsutil import atomic_write_text
from .imageseq import list_frames
from .take import Manifest, Take, _now, iter_take_folders
from .timecode import Timecode, is_drop_frame_rate

META = "machinima"
ADAPTERS = {".otio": "otio_json", ".edl": "cmx_3600", ".xml": "fcp_xml"}
MEDIA = ("auto", "mp4", "frames")
FRAME_FOLDERS = ("frames", "rgb")  # where post steps keep their numbered pictures


def _otio() -> Any:
    try:
        import opentimelineio as otio
    except ModuleNotFoundError:
        raise EditorialError("cuts need OpenTimelineIO", hint="pip install 'machinima[editorial]'") from None
    return otio


# --- takes, versions, media ------------------------------------------------------------------------
@dataclass(frozen=True)
class Media:
    """The pictures of one version of a take: an mp4 or a folder of numbered frames."""

    version: str  # "render" or a post step id
    kind: str  # "mp4" | "frames"
    path: Path
    first: int  # take frame of the first picture (0 = timecode in)
    count: int
    ext: str = "png"
    gaps: int = 0  # frames missing between first and last


def drop_frame(take: Take) -> bool:
    return Timecode.parse(take.manifest.timecode_in, take.fps).drop_frame


def origin(take: Take) -> int:
    """The absolute frame count (since 00:00:00:00) of take frame 0."""
    return Timecode.parse(take.manifest.timecode_in, take.fps).frames


def _steps(take: Take) -> list[tuple[str, str, float]]:
    """(step id, kind, updated) of every post step folder with a params.json."""
    out = []
    for d in sorted(take.post_dir().glob("*/params.json")):
        try:
            doc = json.loads(d.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        out.append((d.parent.name, str(doc.get("step", "")), d.stat().st_mtime))
    return out


def _frames_in(folder: Path) -> dict[int, Path]:
    """The numbered pictures of a folder; none when the folder does not exist (not rendered yet,
    a step that keeps its frames in rgb/ rather than frames/)."""
    return list_frames(folder) if folder.is_dir() else {}


def versions_of(take: Take) -> list[str]:
    """What a take can be cut with: ``render`` if rendered, then each post step id."""
    have = ["render"] if _frames_in(take.passes_dir("rgb")) else []
    return have + [sid for sid, _, _ in _steps(take)]


def find_media(take: Take, version: str = "render", media: str = "auto", *, deliver: bool = True) -> Media:
    """The pictures of ``version`` (render, a step kind, or a step id) of the take.

    A step whose frames are QOI (the post steps' intermediate, which no editor reads) is
    delivered first (``deliver_for_edit``: an mp4 for ``auto``/``mp4``, PNG frames for
    ``frames`` or a step with gaps) and the clip points at that; ``deliver=False`` refuses
    with a one-line hint instead."""
    if media not in MEDIA:
        raise EditorialError(f"unknown media {media!r}; one of {', '.join(MEDIA)}")
    if version == "render":
        folder, step_id = take.passes_dir("rgb"), "render"
        if not folder.is_dir():  # a captured or imported take before its render
            raise EditorialError(f"take {take.id} is not rendered yet (no {folder})",
                                 hint=f"`machinima blender render {take.id} --set SET`, or cut a post step with --version")
    else:
        steps = _steps(take)
        by_id = [s for s in steps if s[0] == version]
        by_kind = sorted((s for s in steps if s[1] == version), key=lambda s: s[2])
        if not (by_id or by_kind):
            raise EditorialError(f"take {take.id} has no {version!r} version; it has: {', '.join(versions_of(take)) or 'nothing rendered yet'}")
        step_id = (by_id or by_kind)[-1][0]
        folder = next((take.post_dir(step_id) / f for f in FRAME_FOLDERS if _frames_in(take.post_dir(step_id) / f)), take.post_dir(step_id))
    frames = _frames_in(folder)
    if not frames:
        raise EditorialError(f"take {take.id}: version {step_id!r} has no frames in {folder}")
    first, last = min(frames), max(frames)
    count, gaps = last - first + 1, last - first + 1 - len(frames)
    mp4s = sorted(folder.parent.glob("*.mp4")) if step_id != "render" else []
    if media == "mp4" and gaps:  # the movie holds only the frames that exist: its clock would slip at each gap
        raise EditorialError(f"take {take.id}: version {step_id!r} skips {gaps} frames, so its mp4 is not on the take's clock; use --media frames")
    unreadable = sorted({p.suffix.lower().lstrip(".") for p in frames.values()} & EDITOR_UNREADABLE)
    if media == "mp4" and not mp4s and not unreadable:
        raise EditorialError(f"take {take.id}: version {step_id!r} has no mp4; use --media frames")
    if mp4s and media != "frames" and not gaps:
        return Media(step_id, "mp4", mp4s[0], first, count, "mp4", gaps)
    if unreadable:  # a post step's intermediate (QOI): the timeline points at a delivered movie or PNGs instead
        if not deliver:
            raise EditorialError(f"take {take.id}: version {step_id!r} has {'/'.join(unreadable).upper()} frames, which editors cannot read",
                                 hint=f"deliver them first: `machinima takes export {take.id} --step {step_id} --format png` (or mp4), or drop --no-deliver")
        fmt = "mp4" if media != "frames" and not gaps else "png"
        path = deliver_for_edit(take, step_id, fmt)
        return Media(step_id, "mp4", path, first, count, "mp4", gaps) if fmt == "mp4" else \
            Media(step_id, "frames", path, first, count, "png", gaps)
    return Media(step_id, "frames", folder, first, count, frames[first].suffix.lstrip("."), gaps)


EDITOR_UNREADABLE = {"qoi"}  # frame formats no editor imports (post steps' fast intermediate)


def deliver_for_edit(take: Take, step_id: str, fmt: str) -> Path:
    """The step's pictures delivered for an editor (``<step>/delivery/edit.mp4`` or
    ``<step>/delivery/png/``) through ``machinima.delivery``, disclosure included; reused while
    it is newer than the step's ledger (a step that wrote frames since is delivered again)."""
    from .delivery import export_step

    step_dir = take.post_dir(step_id)
    out = step_dir / "delivery" / ("edit.mp4" if fmt == "mp4" else "png")
    ledger = step_dir / "ledger.jsonl"
    stamp = out if fmt == "mp4" else out / ".delivered"
    if stamp.exists() and (not ledger.exists() or stamp.stat().st_mtime >= ledger.stat().st_mtime):
        return out
    written = export_step(take.path, step_id, fmt, out)
    if fmt == "mp4":
        return written[0]
    atomic_write_text(stamp, "\n".join(p.name for p in written) + "\n")
    return out


def set_circle(take_path: Path, version: str | None = "render", note: str = "") -> dict[str, Any] | None:
    """Circle a take (the director's pick) with the version to cut with; ``None`` uncircles."""
    take = Take.open(take_path, writable=True)
    try:
        if version is not None:
            if version != "render" or versions_of(take):
                find_media(take, version)  # a version that does not exist is refused now, not at the cut
            take.manifest.circle = {"version": version, "at": _now(), **({"note": note} if note else {})}
        else:
            take.manifest.circle = None
        take.save()
        return take.manifest.circle
    finally:
        take.close()


def scene_takes(root: Path, scene: str, *, production: str | None = None, shots: list[str] | None = None,
                circled_only: bool = True) -> list[Take]:
    """The finished takes of a scene in slate order (shot, take number), circled ones unless told."""
    takes = []
    for folder in iter_take_folders(root):
        t = Take.open(folder)
        s = t.manifest.slate
        if s.scene != scene or (production and s.production != production) or (shots and s.shot not in shots):
            continue
        if t.manifest.status in ("complete", "recovered") and (t.manifest.circle or not circled_only):
            takes.append(t)
    return sorted(takes, key=lambda t: (t.manifest.slate.production, t.manifest.slate.shot, t.manifest.slate.take))


# --- timelines -----------------------------------------------------------------------------------
def _rate(take: Take) -> float:
    return float(take.fps)


def clip_for(take: Take, media: Media) -> Any:
    """An OTIO clip named after the take, its source range in the take's timecode."""
    otio = _otio()
    r = _rate(take)
    available = otio.opentime.TimeRange(otio.opentime.RationalTime(origin(take) + media.first, r),
                                        otio.opentime.RationalTime(media.count, r))
    if media.kind == "mp4":
        ref = otio.schema.ExternalReference(target_url=media.path.resolve().as_uri(), available_range=available)
    else:
        ref = otio.schema.ImageSequenceReference(target_url_base=media.path.resolve().as_uri() + "/", name_prefix="",
                                                 name_suffix=f".{media.ext}", start_frame=media.first, frame_step=1, rate=r,
                                                 frame_zero_padding=6, available_range=available)
    clip = otio.schema.Clip(name=take.id, media_reference=ref, source_range=available)
    m = take.manifest
    clip.metadata[META] = {"take_id": take.id, "version": media.version, "media": media.kind, "fps": m.fps,
                           "timecode_in": m.timecode_in, "drop_frame": drop_frame(take), "first_frame": media.first,
                           "frames": media.count, "production": m.slate.production, "scene": m.slate.scene,
                           "shot": m.slate.shot, "take": m.slate.take}
    return clip


def build_timeline(picks: list[tuple[Take, Media]], name: str, *, record_start: str = "01:00:00:00") -> Any:
    """One video track, the picks in order, record time from ``record_start``."""
    otio = _otio()
    if not picks:
        raise EditorialError("no takes to cut", hint="circle takes first (`machinima takes circle TAKE`) or pass --all / --take")
    rates = {p[0].manifest.fps for p in picks}
    if len(rates) > 1:
        raise EditorialError(f"the takes have different frame rates ({', '.join(sorted(rates))}); cut them separately")
    take0 = picks[0][0]
    sep = ";" if drop_frame(take0) else ":"
    start = Timecode.parse(record_start[:-3] + sep + record_start[-2:], take0.fps).frames  # in the takes' counting
    timeline = otio.schema.Timeline(name=name, global_start_time=otio.opentime.RationalTime(start, _rate(take0)))
    timeline.metadata[META] = {"schema": "machinima.cut", "version": 1, "fps": take0.manifest.fps, "drop_frame": drop_frame(take0)}
    track = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    for take, media in picks:
        track.append(clip_for(take, media))
    timeline.tracks.append(track)
    return timeline


def _for_fcp(timeline: Any) -> Any:
    """FCP 7 XML has movie files, not image sequences (a sequence becomes its first frame, which
    Premiere and Resolve import as a sequence), and needs each file's timecode counting spelt out."""
    otio = _otio()
    tl = copy.deepcopy(timeline)
    df = bool(tl.metadata.get(META, {}).get("drop_frame"))
    for clip in tl.find_clips():
        ref = clip.media_reference
        if isinstance(ref, otio.schema.ImageSequenceReference):
            first = ref.target_url_for_image_number(0)
            ref = otio.schema.ExternalReference(target_url=first, available_range=ref.available_range, metadata=dict(ref.metadata))
            clip.media_reference = ref
        ref.metadata["fcp_xml"] = {"timecode": {"displayformat": "DF" if df else "NDF"}}  # the adapter's own key
    return tl


def _smpte_rate(otio: Any, rate: float) -> bool:
    """Whether SMPTE timecode (what EDL and FCP XML count in) exists at ``rate``: not at the
    72-1000 fps a BVH import can bring (OTIO's adapters fail there with a bare ValueError)."""
    check = getattr(otio.opentime.RationalTime, "is_smpte_timecode_rate", None) or otio.opentime.RationalTime.is_valid_timecode_rate
    return bool(check(rate))


def write_cut(timeline: Any, out: Path) -> Path:
    """Write ``timeline`` as .otio, .edl (CMX 3600) or .xml (FCP 7) through OTIO's adapters."""
    text = cut_text(timeline, out)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, text)
    return out


def cut_text(timeline: Any, out: Path) -> str:
    """The text ``write_cut`` writes to ``out`` (its suffix picks the adapter), so a command
    with several outputs can check them all before it writes any."""
    otio = _otio()
    out = Path(out)
    adapter = ADAPTERS.get(out.suffix.lower())
    if adapter is None:
        raise EditorialError(f"cannot write a cut to {out.name}: use .otio, .edl or .xml")
    rate = timeline.global_start_time.rate if timeline.global_start_time else 24.0
    if adapter != "otio_json" and not _smpte_rate(otio, rate):
        raise EditorialError(f"cannot write {out.name}: {'CMX 3600' if adapter == 'cmx_3600' else 'FCP 7 XML'} timecode "
                             f"does not exist at {rate:g} fps (SMPTE rates: 23.976 to 60)",
                             hint="write a .otio cut, which keeps the take's rate, or shoot and render the scene at 24-60 fps")
    try:
        if adapter == "cmx_3600":
            text = otio.adapters.write_to_string(timeline, adapter)
            rate = timeline.global_start_time.rate if timeline.global_start_time else 24
            fcm = "FCM: DROP FRAME" if is_drop_frame_rate(Fraction(rate).limit_denominator(1001)) else "FCM: NON-DROP FRAME"
            text = re.sub(r"^(TITLE: .*\n)", rf"\1{fcm}\n", text, count=1) if text.startswith("TITLE:") else f"{fcm}\n{text}"
        else:
            text = otio.adapters.write_to_string(_for_fcp(timeline) if adapter == "fcp_xml" else timeline, adapter)
    except (otio.exceptions.OTIOError, ValueError) as exc:  # ValueError: a rate or time an adapter cannot spell
        raise EditorialError(f"cannot write {out.name}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    return text


# --- reading a cut back --------------------------------------------------------------------------
@dataclass
class Use:
    """The frames of one take that a cut uses (inclusive take-frame ranges, merged)."""

    take_id: str
    path: Path
    ranges: list[tuple[int, int]]
    timecodes: list[tuple[str, str]]


_CLIP_NAME = re.compile(r"^\*\s*FROM CLIP NAME:\s*(\S+)", re.M)


def _edl_rate(text: str, root: Path) -> float:
    """EDLs carry no frame rate: take it from the takes the EDL names (they must agree)."""
    rates = {Take.open(root / n).fps for n in _CLIP_NAME.findall(text) if (root / n / "take.json").exists()}
    if len(rates) != 1:
        found = ", ".join(sorted(f"{float(r):g}" for r in rates)) or "none of its clip names is a take here"
        raise EditorialError(f"cannot tell the EDL's frame rate ({found})", hint="pass --fps")
    return float(rates.pop())


def read_cut(path: Path, root: Path, *, fps: str | None = None) -> Any:
    """A .otio, .edl or .xml cut as an OTIO timeline (errors in one line, naming the file)."""
    otio = _otio()
    path = Path(path)
    adapter = ADAPTERS.get(path.suffix.lower())
    if adapter is None:
        raise EditorialError(f"cannot read a cut from {path.name}: use .otio, .edl or .xml")
    if not path.is_file():
        raise EditorialError(f"no cut at {path}")
    try:
        text = path.read_text(encoding="utf-8")
        kw: dict[str, Any] = {}
        if adapter == "cmx_3600":
            from .timecode import parse_rate

            kw["rate"] = float(parse_rate(fps)) if fps else _edl_rate(text, root)
        return otio.adapters.read_from_string(text, adapter, **kw)
    except (otio.exceptions.OTIOError, ValueError, SyntaxError, KeyError, AttributeError) as exc:  # SyntaxError: XML ParseError
        raise EditorialError(f"cannot read {path.name}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None


def _take_of(clip: Any, root: Path) -> Path | None:
    """The take folder a clip comes from: OTIO metadata, else the clip name, else the media path."""
    names = [clip.metadata.get(META, {}).get("take_id"), (clip.name or "").strip()]
    ref = clip.media_reference
    url = getattr(ref, "target_url", None) or getattr(ref, "target_url_base", None) or ""
    names += [part for part in url.replace("\\", "/").split("/") if part]
    for n in names:
        if n and re.fullmatch(r"[A-Za-z0-9._-]+", n) and (root / n / "take.json").exists():
            return root / n
    return None


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for a, b in sorted(ranges):
        if out and a <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def cut_uses(timeline: Any, root: Path) -> tuple[list[Use], list[str]]:
    """Per take, the take frames the cut's clips use; and the names of clips that are no take."""
    found: dict[Path, list[tuple[int, int]]] = {}
    unknown: list[str] = []
    for clip in timeline.find_clips():
        folder = _take_of(clip, root)
        if folder is None:
            unknown.append(clip.name or "(unnamed clip)")
            continue
        take = Take.open(folder)
        sr = clip.source_range or clip.trimmed_range()
        start = round(sr.start_time.value_rescaled_to(_rate(take)))
        n = round(sr.duration.value_rescaled_to(_rate(take)))
        if n <= 0:
            continue
        first = start - origin(take)
        found.setdefault(folder, []).append((first, first + n - 1))
    uses = []
    for folder, ranges in sorted(found.items()):
        take = Take.open(folder)
        merged = _merge(ranges)
        df, o = drop_frame(take), origin(take)
        tcs = [(str(Timecode.at(take.fps, o + a, drop_frame=df)), str(Timecode.at(take.fps, o + b, drop_frame=df))) for a, b in merged]
        uses.append(Use(take.id, folder, merged, tcs))
    return uses, unknown


def mark_used(root: Path, cut: str, file: Path, uses: list[Use]) -> list[str]:
    """Record in each take.json which ranges the cut ``cut`` uses; takes the cut no longer uses
    lose that cut's record. Returns the ids of takes whose manifest changed."""
    by_id = {u.take_id: u for u in uses}
    changed = []
    for folder in iter_take_folders(root):
        take = Take.open(folder)
        old = [u for u in take.manifest.used_in if u.get("cut") == cut]
        use = by_id.get(take.id)
        if not old and use is None:
            continue
        try:
            take = Take.open(folder, writable=True)
        except TakeError as exc:
            raise EditorialError(f"cannot mark take {take.id}: {exc}") from None
        try:
            keep = [u for u in take.manifest.used_in if u.get("cut") != cut]
            if use is not None:
                keep.append({"cut": cut, "file": str(Path(file).resolve()), "ranges": [list(r) for r in use.ranges],
                             "timecodes": [list(t) for t in use.timecodes], "at": _now()})
            take.manifest.used_in = keep
            take.save()
            changed.append(take.id)
        finally:
            take.close()
    return changed


def used_ranges(manifest: Manifest, cut: str) -> list[tuple[int, int]]:
    """The take frames that cut ``cut`` (a name or a cut file) uses, per take.json; [] when none."""
    name = Path(cut).stem if Path(cut).suffix.lower() in ADAPTERS else cut
    return [(int(r[0]), int(r[1])) for u in manifest.used_in if u.get("cut") == name for r in u.get("ranges", [])]

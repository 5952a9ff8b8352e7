"""The composite pipeline: a filmed actor into a rendered take, occluded and lit by the set.

    machinima composite TAKE --plate clip.mp4 --key green --place X,Y,Z

``CompositePipeline.run`` reads like a compositor's script, one numbered step at a time:

    1. check inputs      passes (rgb, depth, camera, light), plate, frames, time map: fail early
    2. matte source      alpha channel, green/blue keyer (screen colour measured) or a model
    3. reference frame   the actor's feet and height in the first frame -> plate placement;
                         the feet tracked over the whole plate, outliers voted out (--smooth-feet)
    4. look              colour statistics and grain of set and plate on a few sample frames
    5. frame loop        per frame: plate frame(s) -> matte -> geometry (depth) -> light -> chain
                         (PostStep: resumable, Ctrl-C safe, progress, provenance in params.json)
    6. movie             <take>/post/<step-id>/composite.mp4 from the finished frames

Outputs in ``<take>/post/<step-id>/``: ``rgb/NNNNNN.png`` (or ``.exr``), ``alpha/NNNNNN.png`` (the
actor's final coverage), ``composite.mp4``, ``params.json``, ``ledger.jsonl``.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from machinima.frameio import Prefetch, blas_threads
from machinima.imageseq import read_image
from machinima.passes import PassError, PassSet
from machinima.poststep import PostStep, StepReport, write_video  # write_video: the step movie, disclosed like its frames
from machinima.sparse import describe, held, movie_note
from machinima.take import Take

from . import colormatch, feettrack, grain, lighting
from .chain import ChainSettings, FrameInputs
from .errors import PassMismatchError, PlateError, SettingsError
from .keyer import Keyer, KeySettings, alpha_rect, estimate_screen
from .look import measure_look
from .mattecache import Kept, MatteCache
from .placement import Placer, PlacementSettings, contact_point, matte_height
from .plate import Plate, blend_frames, open_plate
from .timing import TimeMap

MATTES = ("auto", "green", "blue", "alpha", "segment")
LIGHTS = ("auto", "pass", "contact", "estimate", "none")  # pass: per pixel; contact: the pass's factor at the feet
LIGHT_PASS_NAMES = ("light", "shadow")


@dataclass
class CompositeSettings:
    plate: Path
    matte: str = "auto"  # auto = the plate's alpha channel if it has one, else a green key
    key: KeySettings = field(default_factory=KeySettings)
    seg_model: Path | None = None
    seg_label: str = "person"
    placement: PlacementSettings = field(default_factory=PlacementSettings)
    depth_model: Path | None = None
    depth_kind: str = "auto"
    body_depth: float = 0.5
    plate_fps: str | None = None  # default: the video's rate, or the take's for a folder
    offset: float = 0.0  # plate frames at take frame 0
    plate_timecode: str | None = None  # align by timecode instead (default: the video's own if --timecode-align)
    align_timecode: bool = False
    resample: str = "nearest"
    light: str = "auto"
    light_pass: str | None = None
    color_match: str = "lab"
    color_strength: float = 0.5
    grain: str = "auto"
    grain_size: float = 1.0
    chain: ChainSettings = field(default_factory=ChainSettings)
    frames: tuple[int, int] | None = None  # [start, end) take frames
    output_format: str = "png"
    video: bool = True
    device: str = "cpu"
    dtype: str = "float32"
    step_id: str = "composite"
    seed: int = 0
    workers: int = 2  # frames composited side by side (threads; 1 with a model)
    smooth_feet: int = 5  # window (frames) for voting out stray feet; 0 or 1 = per frame

    def check(self) -> None:
        if self.matte not in MATTES:
            raise SettingsError(f"--key must be one of {MATTES}, not {self.matte!r}")
        if self.matte == "segment" and self.seg_model is None:
            raise SettingsError("--key segment needs --seg-model DIR")
        if self.light not in LIGHTS:
            raise SettingsError(f"--light must be one of {LIGHTS}, not {self.light!r}")
        if self.grain not in grain.MODES:
            raise SettingsError(f"--grain must be one of {grain.MODES}, not {self.grain!r}")
        if self.color_match not in colormatch.MODES:
            raise SettingsError(f"--color-match must be one of {colormatch.MODES}, not {self.color_match!r}")
        if self.output_format not in ("png", "exr"):
            raise SettingsError(f"--format must be png or exr, not {self.output_format!r}")
        if self.frames is not None and not 0 <= self.frames[0] < self.frames[1]:
            raise SettingsError(f"--frames needs START:END with 0 <= START < END, got {self.frames}")

    def to_doc(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("workers")  # does not change the pixels
        for k in ("plate", "seg_model", "depth_model"):
            d[k] = str(d[k]) if d[k] is not None else None
        return d


@dataclass
class CompositeResult:
    out_dir: Path
    report: StepReport
    video: Path | None
    info: dict[str, Any]
    frames_note: str | None = None  # what was done with frames the passes do not have
    setup: dict[str, float] = field(default_factory=dict)  # seconds before the loop: inputs, feet tracking, look, step folder


@dataclass
class Prepared:
    """The composite's frame loop, ready to run: ``process(frames)`` and the frames' key inputs."""

    step: PostStep
    frames: list[int]
    take: Take
    params: dict[str, Any]
    process: Any
    frame_inputs: Any
    batch_size: int
    close: Any
    setup: dict[str, float] = field(default_factory=dict)  # seconds of each part of steps 1-4


class CompositePipeline:
    def __init__(self, take: str | Path, settings: CompositeSettings) -> None:
        self.take_path = Path(take)
        self.s = settings

    # ------------------------------------------------------------------------------------
    def run(self, *, progress: bool = True, ray: str | None = None, chunk_size: int | None = None) -> CompositeResult:
        """Steps 1-6; with ``ray`` (an address, ``auto`` or ``local``) the frame loop runs as
        chunks on that cluster (``CompositeJob``), with the same pixels and keys. BLAS on one
        thread meanwhile: the frames already run side by side (``frameio.blas_threads``)."""
        with blas_threads(1):
            return self._run(progress=progress, ray=ray, chunk_size=chunk_size)

    def _run(self, *, progress: bool, ray: str | None, chunk_size: int | None) -> CompositeResult:
        s = self.s
        p = self.prepare(progress=progress, early_reads=not ray)
        step, frames, take, params = p.step, p.frames, p.take, p.params
        try:
            if ray:
                from machinima.distributed import StepSpec, run_job

                from .distributed import CompositeJob

                job = CompositeJob(StepSpec.of(step), str(self.take_path), s)
                report = run_job(job, frames, address=ray, chunk_size=chunk_size, frame_inputs=p.frame_inputs, progress=progress,
                                 description=f"composite {take.id} on Ray")
                step = report.step  # the workers' frames, for the movie
            else:
                report = step.run(frames, p.process, frame_inputs=p.frame_inputs, progress=progress,
                                  description=f"composite {take.id}", batch_size=p.batch_size)
        finally:
            p.close()
        res = self._finish(step, frames, take, params, report)
        res.setup = p.setup
        return res

    def prepare(self, *, progress: bool = True, early_reads: bool = False) -> "Prepared":
        """Steps 1-4 and the step folder: everything the frame loop needs, once per process
        (a Ray worker prepares once and runs many chunks). ``early_reads``: a local run whose
        frames run in order: the first frames' passes are read while the look is measured (one
        core is idle then); a Ray worker's chunks start anywhere, so it reads when asked."""
        s = self.s
        clock = _Clock()
        # 1. check inputs: settings, take, passes, cameras, plate, time map
        s.check()
        take = Take.open(self.take_path)
        passes = self._open_passes(take)
        frames = self._frames(passes)
        cams = self._cameras(passes, frames)
        light_mode, light_name = self._light_source(passes)
        light_linear = bool(light_name and passes.meta.get("passes", {}).get(light_name, {}).get("linear"))
        plate = open_plate(s.plate, fps=s.plate_fps or (None if Path(s.plate).is_file() else str(take.fps)))
        tmap = TimeMap.build(take.fps, plate.fps, offset=s.offset, take_timecode=take.manifest.timecode_in,
                             plate_timecode=(s.plate_timecode or plate.timecode) if (s.align_timecode or s.plate_timecode) else None,
                             resample=s.resample)
        if s.align_timecode and not (s.plate_timecode or plate.timecode):
            raise PlateError(f"{plate.path} carries no timecode", hint="pass --plate-timecode HH:MM:SS:FF or align with --offset")
        tmap.check(frames, plate.length)
        w, h = passes.size
        first_rgb = _read(passes, "rgb", frames[0])
        _read(passes, "depth", frames[0])

        clock.lap("inputs")
        # 2. matte source
        _first: list[np.ndarray] = []

        def first_plate() -> np.ndarray:  # decoded once for the screen colour and the reference frame
            if not _first:
                _first.append(self._plate_frame(plate, tmap, frames[0]))
            return _first[0]

        matte_kind = s.matte if s.matte != "auto" else ("alpha" if plate.has_alpha else "green")
        if matte_kind == "alpha" and not plate.has_alpha:
            raise PlateError(f"{plate.path} has no alpha channel", hint="use --key green|blue or --key segment --seg-model DIR")
        keyer = seg = None
        if matte_kind in ("green", "blue"):
            key_s = KeySettings(**{**asdict(s.key), "screen": matte_kind})
            screen = key_s.screen_rgb or estimate_screen(first_plate()[..., :3], matte_kind)
            keyer = Keyer(key_s, screen)
        elif matte_kind == "segment":
            from .models import SegmentationMatte

            seg = SegmentationMatte(s.seg_model, label=s.seg_label, device=s.device, dtype=s.dtype)
        depth_model = None
        if s.depth_model is not None:
            from .models import DepthModel

            depth_model = DepthModel(s.depth_model, device=s.device, dtype=s.dtype, kind=s.depth_kind)

        def matte(img: np.ndarray):
            if keyer is not None:
                return keyer.key_roi(img)
            a = img[..., 3] if matte_kind == "alpha" else seg.matte(img)
            rect = alpha_rect(a, margin=2)
            if rect is None:
                return None
            x0, y0, x1, y1 = rect
            return rect, np.ascontiguousarray(a[y0:y1, x0:x1]), np.ascontiguousarray(img[y0:y1, x0:x1, :3])

        # 3. reference frame: the actor's feet and height give the plate's placement
        ref = matte(first_plate())
        _first.clear()
        if ref is None and s.placement.position is not None and s.placement.contact is None:
            raise PlateError(f"no actor found in the plate at take frame {frames[0]} (plate frame {tmap.frames_for(frames[0])[0][0]})",
                             hint="check --key / the screen colour (--screen-rgb), or pass --ground-contact U,V")
        ref_contact = contact_point(ref[1], ref[0]) if ref else None
        placer = Placer(s.placement, plate.size, (w, h), ref_contact, matte_height(ref[1]) if ref else 0)
        workers = 1 if (depth_model is not None or seg is not None) else max(1, s.workers)
        mattes = MatteCache()  # the tracking's mattes, kept for the frame loop: each plate frame is decoded and keyed once
        probe = None  # the whole matte: kept for the loop while the cache has room; beyond it only the feet (the loop keys those frames)
        if keyer is not None:
            probe = lambda img: feettrack.full_probe(matte, img) if mattes.room() else feettrack.band_probe(keyer, img)  # noqa: E731
        feet = self._track_feet_cached(take, plate, tmap, frames, matte, keyer, keep=mattes, workers=workers, probe=probe) \
            if s.smooth_feet > 1 and s.placement.track else {}
        clock.lap("reference_and_feet")
        # the set's passes, read ahead on a few threads; a fresh local run starts reading its first
        # frames now, beside the look's single-threaded measurement (a resumed run would read done frames)
        light_file = passes.frame_files(light_name) if light_mode in ("pass", "contact") else {}

        def load_passes(f: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
            return _read(passes, "rgb", f), _read(passes, "depth", f), read_image(light_file[f]) if f in light_file else None

        early = None
        if early_reads and not (take.post_dir(s.step_id) / "ledger.jsonl").exists():
            early = Prefetch(frames, load_passes, depth=4)
            early.warm()
        try:  # the early reads are closed if the set-up fails from here on
            look, chain = measure_look(s, frames, first_rgb, lambda f: _read(passes, "rgb", f), mattes, matte,
                                       lambda f: self._plate_frame(plate, tmap, f), keyer, (w, h))
            clock.lap("look")
            params, step, todo = self._step_folder(take, passes, frames, plate, tmap, look, matte_kind, light_mode, light_name, depth_model)
        except BaseException:
            if early is not None:
                early.close()
            raise
        mattes.retain(todo)

        # 5. frame loop: read ahead the set's passes (rgb, depth, light) on a few threads, the plate on
        # one (its decoder reads in order) and only for frames whose matte the feet tracking did not keep
        pass_reads = early if early is not None else Prefetch(todo, load_passes, depth=4)
        plate_reads = Prefetch([f for f in todo if f not in mattes], lambda f: self._plate_frame(plate, tmap, f), depth=4, workers=1)
        clock.lap("step")  # the step folder, its disclosure, the frames' resume keys

        def one(f: int, plate_img: Any) -> dict[str, np.ndarray]:
            rgb_pass, depth_pass, light_img = pass_reads.get(f)
            # the read-ahead hands each frame over once: a fresh, writable RGB frame is composited in place
            # (no 6 MB copy a frame); an RGBA or shared (read-only) one is copied
            own = rgb_pass.ndim == 3 and rgb_pass.shape[2] == 3 and rgb_pass.flags.writeable and rgb_pass.flags.c_contiguous
            set_rgb = rgb_pass if own else rgb_pass[..., :3].copy()
            set_depth = depth_pass.astype(np.float32, copy=False)
            m = plate_img.matte if isinstance(plate_img, Kept) else matte(plate_img)
            geo = None
            plate_depth = None
            light, light_map = np.ones(3), None
            if m is not None:
                rect, alpha, fg = m
                geo = placer.geometry(cams[f], f, feet.get(f) or contact_point(alpha, rect))
                if depth_model is not None:
                    from .models import scale_to_metres

                    plate_depth = scale_to_metres(depth_model.predict(fg), alpha, geo.depth, kind=depth_model.kind, body_depth=s.body_depth)
                radius = max(2, int(0.1 * (rect[2] - rect[0]) * geo.transform.scale))  # a tenth of the actor's width
                light, light_map = self._light(passes, light_mode, light_name, f, set_rgb, geo.contact_xy, radius, light_img)
            res = chain(FrameInputs(set_rgb, set_depth, m[0] if m else None, m[1] if m else None, m[2] if m else None,
                                    geo, cams[f], light, light_map, light_linear, plate_depth, frame=f))
            rgb = res.rgb if s.output_format == "png" else res.rgb.astype(np.float32) / 255.0
            return {"rgb": rgb, "alpha": res.alpha}

        pool = ThreadPoolExecutor(workers) if workers > 1 else None

        def process(batch: list[int]) -> list[dict[str, np.ndarray]]:
            plate_imgs = [mattes.take(f) or plate_reads.get(f) for f in batch]  # the decoder reads in order
            if pool is None:
                return [one(f, p) for f, p in zip(batch, plate_imgs)]
            return list(pool.map(one, batch, plate_imgs))  # OpenCV releases the GIL: frames run side by side

        def close() -> None:
            pass_reads.close()
            plate_reads.close()
            plate.close()
            if pool is not None:
                pool.shutdown()

        return Prepared(step, frames, take, params, process, lambda f: self._frame_inputs(passes, plate, tmap, f), 2 * workers, close,
                        clock.laps)

    def _step_folder(self, take: Take, passes: PassSet, frames: list[int], plate: Plate, tmap: TimeMap, look: dict[str, Any],
                     matte_kind: str, light_mode: str, light_name: str | None, depth_model: Any) -> tuple[dict[str, Any], PostStep, list[int]]:
        """Step 5's folder: (params, the PostStep, the frames still to do: a frame is redone only
        when its params or inputs change)."""
        s = self.s
        params = {"settings": s.to_doc(), "look": look, "matte": matte_kind, "light": [light_mode, light_name], "time": tmap.to_doc()}
        st = os.stat(plate.path)
        step = PostStep(take.post_dir(s.step_id), "composite", params, float_ext="exr",
                        inputs={"take": take.id, "passes": str(passes.root), "plate": {**plate.describe(), "bytes": st.st_size, "mtime": int(st.st_mtime)},
                                "depth_model": str(s.depth_model) if s.depth_model else None},
                        notes=[f"matte: {matte_kind}", f"light: {light_mode}", f"depth: {'model' if depth_model else 'billboard'}"])
        todo = [f for f in frames if not step.is_done(f, step.frame_key(f, self._frame_inputs(passes, plate, tmap, f)))]
        return params, step, todo

    def _finish(self, step: PostStep, frames: list[int], take: Take, params: dict[str, Any], report: StepReport) -> CompositeResult:
        # 6. movie from the finished frames
        s = self.s
        video = None
        done = step.outputs_of("rgb")
        movie = step.out_dir / "composite.mp4"
        if s.video and movie.exists() and not report.done:
            video = movie  # nothing changed since it was written
        elif s.video and all(f in done for f in frames):
            def frames_u8():
                for f in held(frames):  # passes every Nth frame: each held until the next, the take's timing kept
                    img = read_image(done[f])
                    yield img if img.dtype == np.uint8 else (np.clip(img[..., :3], 0, 1) * 255 + 0.5).astype(np.uint8)

            video = write_video(movie, frames_u8(), take.fps)
        return CompositeResult(step.out_dir, report, video, params, movie_note(frames) if s.video else describe(frames))

    # ------------------------------------------------------------------------------------
    def _open_passes(self, take: Take) -> PassSet:
        try:
            passes = PassSet.open(take.passes_dir())
        except PassError as exc:
            raise PassMismatchError(str(exc)) from None
        missing = [p for p in ("rgb", "depth") if not passes.has(p)]
        if missing:
            raise PassMismatchError(f"take {take.id} has no {' or '.join(missing)} pass; passes: {sorted(passes.meta.get('passes', {}))}",
                                    hint="render them: `machinima blender render TAKE --passes rgb,depth`")
        return passes

    def _frames(self, passes: PassSet) -> list[int]:
        frames = passes.frames
        if self.s.frames is not None:
            a, b = self.s.frames
            frames = [f for f in frames if a <= f < b]
        if not frames:
            raise PassMismatchError(f"no rendered frames to composite{f' in {self.s.frames}' if self.s.frames else ''}")
        for name in ("rgb", "depth"):
            have = passes.frame_files(name)
            lacking = [f for f in frames if f not in have]
            if lacking:
                raise PassMismatchError(f"the {name} pass is missing frames {lacking[:5]}{'...' if len(lacking) > 5 else ''}",
                                        hint="re-render the passes, or composite fewer frames with --frames")
        return frames

    def _cameras(self, passes: PassSet, frames: list[int]):
        try:
            cams = passes.cameras()
        except PassError as exc:
            raise PassMismatchError(str(exc), hint="the Blender render writes camera.json beside the passes") from None
        lacking = [f for f in frames if f not in cams]
        if lacking:
            raise PassMismatchError(f"camera.json has no camera for frames {lacking[:5]}")
        w, h = passes.size
        bad = [f for f in frames if (cams[f].width, cams[f].height) != (w, h)]
        if bad:
            c = cams[bad[0]]
            raise PassMismatchError(f"camera for frame {bad[0]} is {c.width}x{c.height}, the passes are {w}x{h}")
        return cams

    def _light_source(self, passes: PassSet) -> tuple[str, str | None]:
        mode, name = self.s.light, self.s.light_pass
        if mode in ("auto", "pass", "contact"):
            names = [name] if name else list(LIGHT_PASS_NAMES)
            found = next((n for n in names if passes.has(n) or (passes.root / n).is_dir()), None)
            if found:
                return ("contact" if mode == "contact" else "pass"), found
            if mode != "auto":
                raise PassMismatchError(f"no {' or '.join(names)} pass in the take", hint="render a light/shadow pass, or use --light estimate")
            return "estimate", None
        return mode, None

    def _light(self, passes: PassSet, mode: str, name: str | None, frame: int, set_rgb: np.ndarray, xy,
               radius: int, img: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """(factor at the feet, the light pass for per-pixel light or None); ``img``: the light pass
        frame when the read-ahead already has it."""
        if mode in ("pass", "contact"):
            if img is None:
                files = passes.frame_files(name)
                if frame not in files:
                    raise PassMismatchError(f"the {name} pass has no frame {frame}")
                img = read_image(files[frame])
            if img.shape[:2] != set_rgb.shape[:2]:
                raise PassMismatchError(f"the {name} pass is {img.shape[1]}x{img.shape[0]}, the rgb pass {set_rgb.shape[1]}x{set_rgb.shape[0]}")
            at_feet = lighting.factor_from_pass(img, xy, radius=radius)
            return at_feet, (img if mode == "pass" else None)  # the chain converts the actor's box to factors
        if mode == "estimate":
            return lighting.factor_from_rgb(set_rgb, xy, radius=radius), None
        return np.ones(3), None

    def _track_feet_cached(self, take: Take, plate: Plate, tmap: TimeMap, frames: list[int], matte, keyer, *,
                           keep: "MatteCache | None" = None, workers: int = 1, probe=None) -> dict[int, tuple[float, float]]:
        """``_track_feet`` kept in ``<step>/feet.json`` under a key of everything it reads (the
        plate file, the time map, the frames, the matte settings, the probe): a rerun, and every
        Ray worker of the same composite, reads the feet the first run tracked."""
        from machinima.poststep import stable_hash

        st = os.stat(plate.path)
        doc = self.s.to_doc()
        key = stable_hash({"plate": plate.describe(), "bytes": st.st_size, "mtime_ns": st.st_mtime_ns, "time": tmap.to_doc(), "frames": frames,
                           "key": doc["key"], "matte": doc["matte"], "seg": [doc["seg_model"], doc["seg_label"]], "smooth": self.s.smooth_feet,
                           "screen": list(keyer.screen_rgb) if keyer is not None else None,
                           "probe": [feettrack.BAND, feettrack.GUARD] if probe is not None else "matte"})
        return feettrack.cached(take.post_dir(self.s.step_id) / "feet.json", key,
                                lambda: self._track_feet(plate, tmap, frames, matte, keep=keep, workers=workers, probe=probe))

    def _track_feet(self, plate: Plate, tmap: TimeMap, frames: list[int], matte, *, keep: "MatteCache | None" = None,
                    workers: int = 1, probe=None) -> dict[int, tuple[float, float]]:
        """The feet in every frame, voted over ``smooth_feet`` frames (``feettrack.track``);
        ``probe`` default: the feet of the whole ``matte``."""
        return feettrack.track(lambda f: self._plate_frame(plate, tmap, f), frames, probe or (lambda img: feettrack.full_probe(matte, img)),
                               smooth=self.s.smooth_feet, plate_h=plate.size[1], keep=keep, workers=workers,
                               decoders=max(1, workers) if getattr(plate, "files", None) else 1)  # files decode side by side; a video in order

    @staticmethod
    def _frame_inputs(passes: PassSet, plate: Plate, tmap: TimeMap, frame: int) -> dict[str, Any]:
        """What a frame is made of, for its resume key: a re-rendered pass or a new plate redoes it."""
        def stamp(p: Path) -> list[int]:
            st = os.stat(p)
            return [st.st_size, st.st_mtime_ns]

        used = tmap.frames_for(frame)
        files = getattr(plate, "files", None)
        plate_stamp = [stamp(files[i]) for i, _ in used if 0 <= i < len(files)] if files else stamp(plate.path)
        return {"plate": used, "plate_files": plate_stamp, "rgb": stamp(passes.path("rgb", frame)), "depth": stamp(passes.path("depth", frame))}

    @staticmethod
    def _plate_frame(plate: Plate, tmap: TimeMap, take_frame: int) -> np.ndarray:
        parts = [(plate.frame(i), wgt) for i, wgt in tmap.frames_for(take_frame) if wgt > 0]
        return blend_frames(parts) if len(parts) > 1 else parts[0][0]


class _Clock:
    """Seconds of each part of the set-up (bench/post_io.py reports them beside the loop's)."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._t = time.perf_counter()

    def lap(self, name: str) -> None:
        t = time.perf_counter()
        self.laps[name] = round(t - self._t, 3)
        self._t = t


def _read(passes: PassSet, name: str, frame: int) -> np.ndarray:
    try:
        return passes.read(name, frame)
    except PassError as exc:
        raise PassMismatchError(str(exc), hint="re-render the passes so every pass has every frame at the size in passes.json") from None


def run_composite(take: str | Path, settings: CompositeSettings, *, progress: bool = True, ray: str | None = None,
                  chunk_size: int | None = None) -> CompositeResult:
    """Composite ``settings.plate`` into the take; see :class:`CompositePipeline`. ``ray``: run
    the frames on that Ray cluster (``auto``, ``host:6379``, ``local``)."""
    return CompositePipeline(take, settings).run(progress=progress, ray=ray, chunk_size=chunk_size)

"""Merge: put the trained face into every frame of a take, a video or an image folder.

One readable pipeline (``merge``), numbered steps:

    1. check inputs: options, the model folder (or ``engine="none"``: the pipeline without the network)
    2. production (the take's slate, else machinima.toml)
    3. open the source and the output step (``<take>/post/<step-id>/`` for a take, else ``--out``):
       a ``machinima.poststep.PostStep`` (params.json, ledger, resume, Ctrl-C)
    4. track: faces per frame (detect once, then landmarks around each tracked face; full
       detection again every ``redetect_every`` frames or when a face is lost); unreadable
       frames are listed and left out; gaps interpolated; cached in ``tracks.npz``
    5. smooth each track's landmarks over time (zero-lag robust local-linear by default; One-Euro
       or Savitzky-Golay on request) -- the jitter fix that must not paste the face behind the actor;
       rights: every tracked face, and the identities the model was trained on, must match a
       valid ``face_replacement`` record (``machinima.rights.require_cleared``, embedded per
       track, not per frame), or an explicit override is recorded in the provenance
    6. swap, in batches (PostStep.run): align every face at the model's resolution, run the
       network on the whole batch (torch or onnxruntime), mask = network mask x landmark hull
       (x the occlusion segmenter's face probability with ``--occlusion-model``), erode/blur, colour transfer in face space, warp back onto the face's region only
       (never the whole frame), blend (feathered alpha or seamless clone), sharpen, grain
    7. encode ``<step-id>.mp4`` from the finished frames

A frame without a face is written unchanged and listed in the report; a corrupt frame is
listed and skipped; the rest of the run goes on.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from machinima.imageseq import ImageSeqError

from .align import face_transform, invert_affine, transform_points
from .color import MODES as COLOR_MODES
from .color import transfer
from .errors import FaceswapError, NoFaceError
from .masks import erode_blur, hull_mask
from .smoothing import LIVE_BETA, LIVE_D_CUTOFF, LIVE_MIN_CUTOFF, jitter, smooth_sequence
from .smoothing import METHODS as SMOOTH_METHODS

BLENDS = ("seamless", "alpha")
ENGINES = ("torch", "onnx", "none")


@dataclass
class MergeOptions:
    color: str = "rct"
    smooth: str = "zero-lag"
    min_cutoff: float = LIVE_MIN_CUTOFF  # One-Euro: smoothing when still (Hz)
    beta: float = LIVE_BETA  # One-Euro: extra cutoff (Hz) per pixel/second of face speed
    d_cutoff: float = LIVE_D_CUTOFF  # One-Euro: low-pass of the speed estimate (Hz)
    window: int = 9  # zero-lag / Savitzky-Golay window (frames)
    blend: str = "seamless"
    erode: int = 0  # mask erode (+) / dilate (-) in face pixels
    blur: int = 8  # mask feather in face pixels
    sharpen: float = 0.0  # unsharp-mask amount on the new face
    grain: float = 0.0  # 1.0 = match the target's grain
    engine: str = "torch"
    device: str = "auto"
    batch: int = 8
    workers: int = 2  # threads compositing the frames of a batch
    backend: str = "mediapipe"
    redetect_every: int = 30
    max_gap: int = 12
    tracks: list[int] | None = None  # track ids to swap (None: every face)
    occlusion_model: str | None = None  # ONNX segmenter (train-mask output): cuts hands, mics, hair out of the mask
    res: int = 128  # only for engine "none" without a model
    face_type: str = "whole"  # idem

    def check(self) -> "MergeOptions":
        def one_of(name: str, value: str, allowed: tuple[str, ...]) -> None:
            if value not in allowed:
                raise FaceswapError(f"--{name} {value!r} is not one of {', '.join(allowed)}")

        one_of("color", self.color, COLOR_MODES)
        one_of("smooth", self.smooth, SMOOTH_METHODS)
        one_of("blend", self.blend, BLENDS)
        one_of("engine", self.engine, ENGINES)
        if self.batch < 1:
            raise FaceswapError("--batch must be at least 1")
        if self.occlusion_model and not Path(self.occlusion_model).exists():
            raise FaceswapError(f"occlusion model not found at {self.occlusion_model}",
                                hint="train one with `machinima faceswap train-mask` or give your segmenter's .onnx path")
        return self


@dataclass
class MergeReport:
    out_dir: Path
    frames: int = 0
    done: int = 0
    skipped: int = 0
    no_face: list[int] = field(default_factory=list)
    unreadable: dict[int, str] = field(default_factory=dict)
    failed: dict[int, str] = field(default_factory=dict)
    video: Path | None = None
    jitter_raw: float = 0.0
    jitter_used: float = 0.0
    detections: int = 0
    seconds_track: float = 0.0
    seconds_swap: float = 0.0
    rights: dict[str, Any] | None = None
    smooth: str = "zero-lag"
    workers: list[dict[str, Any]] = field(default_factory=list)  # with --ray: where the time went, per worker

    def jitter_message(self) -> str:
        """The landmark noise before and after smoothing, saying so when smoothing raised it."""
        raw, used = self.jitter_raw, self.jitter_used
        if used > raw * 1.05 + 1e-3:
            return (f"landmark jitter {raw:.3f} px -> {used:.3f} px: {self.smooth} smoothing made it WORSE "
                    "(try --smooth zero-lag, or --smooth none)")
        return f"landmark jitter {raw:.3f} px -> {used:.3f} px after {self.smooth} smoothing"

    def messages(self) -> list[str]:
        out = []
        if self.no_face:
            out.append(f"no face in {len(self.no_face)} frame(s) (written unchanged): {self.no_face[:10]}{'...' if len(self.no_face) > 10 else ''}")
        for f, m in list(self.unreadable.items())[:10]:
            out.append(f"frame {f} skipped: {m}")
        for f, m in list(self.failed.items())[:10]:
            out.append(f"frame {f} failed: {m}")
        return out


# --- step 4 and 5: track and smooth ---------------------------------------------------------------
def track_faces(source, frames: list[int], backend, *, redetect_every: int = 30, max_gap: int = 12,
                progress: bool = False) -> tuple[dict[int, dict[int, np.ndarray]], dict[int, str], int]:
    """frame -> {track id: (68, 2) landmarks}, unreadable frames, number of full detections."""
    from .tracker import FaceFinder, interpolate

    finder = FaceFinder(backend, redetect_every=redetect_every, max_gap=max_gap)
    bad: dict[int, str] = {}
    bar = _bar(progress, "track faces", len(frames))
    try:
        for f in frames:
            try:
                img = source.read(f)
            except ImageSeqError as exc:
                bad[f] = str(exc)
                bar()
                continue
            finder(f, img)
            bar()
    finally:
        bar.close()
    per_frame: dict[int, dict[int, np.ndarray]] = {f: {} for f in frames if f not in bad}
    for t in finder.tracker.tracks.values():
        interpolate(t, max_gap)
        for f, lm in t.frames.items():
            if f in per_frame:
                per_frame[f][t.id] = lm
    return per_frame, bad, finder.detections


def smooth_tracks(per_frame: dict[int, dict[int, np.ndarray]], opts: MergeOptions, fps: float) -> dict[int, dict[int, np.ndarray]]:
    """Smooth each track over each run of consecutive frames (a cut or a gap restarts the filter)."""
    out: dict[int, dict[int, np.ndarray]] = {f: {} for f in per_frame}
    ids = sorted({tid for faces in per_frame.values() for tid in faces})
    for tid in ids:
        fr = sorted(f for f, faces in per_frame.items() if tid in faces)
        runs, cur = [], [fr[0]]
        for a, b in zip(fr, fr[1:]):
            if b == a + 1:
                cur.append(b)
            else:
                runs.append(cur)
                cur = [b]
        runs.append(cur)
        for run in runs:
            seq = np.stack([per_frame[f][tid] for f in run])
            sm = smooth_sequence(seq, opts.smooth, fps=fps, min_cutoff=opts.min_cutoff, beta=opts.beta, d_cutoff=opts.d_cutoff,
                                 window=opts.window)
            for f, lm in zip(run, sm):
                out[f][tid] = lm
    return out


# --- step 6: swap one batch -------------------------------------------------------------------------
class Compositor:
    """Align, swap (batched), recolour, mask and blend faces into frames, touching only each face's region."""

    def __init__(self, swapper: Callable[[np.ndarray], np.ndarray] | None, res: int, face_type: str, opts: MergeOptions) -> None:
        self.swapper = swapper
        self.res = res
        self.face_type = face_type
        self.opts = opts
        self.segmenter = None
        if opts.occlusion_model:
            from .masks import OnnxSegmenter

            self.segmenter = OnnxSegmenter(opts.occlusion_model)

    def swap_faces(self, faces: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
        """uint8 aligned faces -> [(float rgb, float mask)] (the network on the whole batch)."""
        if not faces:
            return []
        if self.swapper is None:  # engine "none": the pipeline without the network
            return [(f.astype(np.float32) / 255.0, np.ones(f.shape[:2], np.float32)) for f in faces]
        x = np.stack(faces).astype(np.float32).transpose(0, 3, 1, 2) / 255.0
        outs = []
        for i in range(0, len(x), max(1, self.opts.batch)):
            outs.append(self.swapper(x[i:i + self.opts.batch]))
        y = np.concatenate(outs)
        return [(np.ascontiguousarray(o[:3].transpose(1, 2, 0)), o[3]) for o in y]

    def frames(self, images: list[np.ndarray], landmarks: list[dict[int, np.ndarray]], *, inplace: bool = False) -> list[np.ndarray]:
        """Composite every face of every image; ``inplace`` paints into ``images`` (no copy)."""
        import cv2

        res = self.res
        jobs = []  # (frame index, matrix, aligned dst, aligned landmarks)
        for i, (img, faces) in enumerate(zip(images, landmarks)):
            for tid, lm in sorted(faces.items()):
                if self.opts.tracks is not None and tid not in self.opts.tracks:
                    continue
                m = face_transform(lm, self.face_type, res)
                aligned = cv2.warpAffine(img, m, (res, res), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
                jobs.append((i, m, aligned, transform_points(lm, m)))
        swapped = self.swap_faces([j[2] for j in jobs])
        out = list(images) if inplace else [img.copy() for img in images]
        by_frame: dict[int, list] = {}
        for job, sw in zip(jobs, swapped):
            by_frame.setdefault(job[0], []).append((job, sw))

        def paste_all(i: int) -> None:  # faces of one frame in order; frames in parallel
            for (_, m, aligned, alm), (rgb, nmask) in by_frame[i]:
                out[i] = self._paste(out[i], m, aligned, alm, rgb, nmask)

        if self.opts.workers > 1 and len(by_frame) > 1:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(self.opts.workers) as ex:  # OpenCV releases the GIL
                list(ex.map(paste_all, sorted(by_frame)))
        else:
            for i in sorted(by_frame):
                paste_all(i)
        return out

    def _paste(self, frame: np.ndarray, m: np.ndarray, aligned: np.ndarray, alm: np.ndarray, rgb: np.ndarray, nmask: np.ndarray) -> np.ndarray:
        import cv2

        o, res = self.opts, self.res
        # mask: network mask x landmark hull, eroded and feathered (in face space: cheap)
        mask = np.minimum(np.clip(nmask, 0, 1), hull_mask(alm, (res, res), self.face_type))
        if self.segmenter is not None:  # what covers the face stays in front of it
            mask = np.minimum(mask, self.segmenter(aligned))
        mask = erode_blur(mask, o.erode, o.blur)
        dst = aligned.astype(np.float32) / 255.0
        face = transfer(rgb, dst, o.color, src_mask=mask, ref_mask=mask) if o.color != "none" else rgb
        if o.sharpen > 0:
            blur = cv2.GaussianBlur(face, (0, 0), 1.0)
            face = np.clip(face + o.sharpen * (face - blur), 0, 1)
        if o.grain > 0:
            face = _match_grain(face, dst, mask, o.grain)
        # the face's region in the frame: the mask's bounding box mapped back, clipped
        ys, xs = np.nonzero(mask > 1.0 / 255)
        if len(xs) == 0:
            return frame
        inv = invert_affine(m)
        bx0, by0, bx1, by1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
        corners = transform_points(np.array([[bx0, by0], [bx1, by0], [bx1, by1], [bx0, by1]], float), inv)
        h, w = frame.shape[:2]
        x0, y0 = np.floor(corners.min(0)).astype(int) - 1
        x1, y1 = np.ceil(corners.max(0)).astype(int) + 1
        x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
        if x1 - x0 < 2 or y1 - y0 < 2:
            return frame
        inv_roi = inv.copy()
        inv_roi[:, 2] -= (x0, y0)
        size = (int(x1 - x0), int(y1 - y0))
        face_u8 = np.clip(face * 255 + 0.5, 0, 255).astype(np.uint8)
        face_roi = cv2.warpAffine(face_u8, inv_roi, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        mask_roi = cv2.warpAffine(mask, inv_roi, size, flags=cv2.INTER_LINEAR, borderValue=0)
        roi = np.ascontiguousarray(frame[y0:y1, x0:x1])
        if o.blend == "seamless" and mask_roi.max() > 0.5:
            hard = (mask_roi > 0.5).astype(np.uint8) * 255
            yy, xx = np.nonzero(hard)
            center = (int((xx.min() + xx.max() + 1) // 2), int((yy.min() + yy.max() + 1) // 2))
            try:
                face_roi = cv2.seamlessClone(face_roi, roi, hard, center, cv2.NORMAL_CLONE)
            except cv2.error:
                pass  # a mask touching the border: fall back to the feathered alpha below
        frame[y0:y1, x0:x1] = cv2.blendLinear(face_roi, roi, mask_roi, 1.0 - mask_roi)
        return frame


def _match_grain(face: np.ndarray, dst: np.ndarray, mask: np.ndarray, amount: float) -> np.ndarray:
    import cv2

    sel = mask > 0.5
    if sel.sum() < 16:
        return face
    hp = lambda x: x - cv2.GaussianBlur(x, (0, 0), 1.0)  # noqa: E731
    need = float(hp(dst)[sel].std()) - float(hp(face)[sel].std())
    if need <= 0:
        return face
    rng = np.random.default_rng(int(dst.sum() * 1000) % (2**32))
    return np.clip(face + rng.normal(0, need * amount, face.shape).astype(np.float32), 0, 1)


def make_swapper(model_dir: str | Path | None, engine: str, device: str = "auto"):
    """(swapper or None, res, face type, model doc)."""
    if engine == "none" and model_dir is None:
        return None, None, None, {}
    from .train import read_model_doc

    doc = read_model_doc(model_dir)
    res, ft = int(doc["model"]["res"]), doc["model"]["face_type"]
    if engine == "none":
        return None, res, ft, doc
    if engine == "onnx":
        from .onnx_export import ONNX_NAME, OrtSwapper, export_onnx

        p = Path(model_dir) / ONNX_NAME
        if not p.exists():
            export_onnx(model_dir)
        return OrtSwapper(p), res, ft, doc
    from .onnx_export import TorchSwapper

    return TorchSwapper(model_dir, device=device), res, ft, doc


# --- the pipeline -------------------------------------------------------------------------------------
def merge(target: str | Path, model_dir: str | Path | None, *, out: str | Path | None = None, step_id: str | None = None,
          options: MergeOptions | None = None, production: str | None = None, subjects: list[str] | None = None,
          override: str | None = None, rights_store: str | Path | None = None, backend: Any = None,
          swapper: Callable[[np.ndarray], np.ndarray] | None = None, video: bool = True, progress: bool = True,
          ray: str | None = None, chunk_size: int = 16) -> MergeReport:
    """Merge the model into ``target``. ``backend`` and ``swapper`` replace the face backend and
    the network ((N, 3, res, res) -> (N, 4, res, res) at ``options.res``/``face_type``): tests and
    benches put in a known face to check placement on its own.

    ``ray`` (``auto``, ``host:6379``, ``local``): tracking, smoothing and the rights check run
    here; the swap runs as chunks on that cluster (``faceswap.distributed.MergeJob``), each
    worker loading the network once."""
    from machinima import rights
    from machinima.poststep import PostStep, file_hash

    from .backends import get_backend
    from .sources import open_source

    # 1. check inputs (cheap checks first; the network loads after the rights check)
    opts = (options or MergeOptions()).check()
    source = open_source(target)
    if model_dir is None and opts.engine != "none" and swapper is None:
        raise FaceswapError("merge needs a model folder", hint="pass --model DIR, or --engine none to check tracking and masks")
    from .train import read_model_doc

    doc = read_model_doc(model_dir) if model_dir is not None else {}

    # 2. rights: the faces going in, for this production
    if production is None:
        if source.take is not None:
            production = source.take.manifest.slate.production
        else:
            from machinima.config import load_config

            production = load_config().production
    network = None if swapper is None else type(swapper).__name__  # recorded: the frames did not come from the model
    if ray and swapper is not None:
        raise FaceswapError("--ray runs the model's own network on the workers; a swapper passed in code cannot go with it")
    if ray:  # the network loads on the workers, once each
        res = int(doc["model"]["res"]) if doc else None
        face_type = doc["model"]["face_type"] if doc else None
    elif swapper is None:
        swapper, res, face_type, _ = make_swapper(model_dir, opts.engine, opts.device)
    else:
        res = face_type = None
    res, face_type = res or opts.res, face_type or opts.face_type

    # 3. the output step
    sid = step_id or f"faceswap-{Path(str(model_dir)).name if model_dir else 'none'}"
    if source.take is not None and out is None:
        out_dir = source.take.post_dir(sid)
    else:
        out_dir = Path(out) if out else Path(str(source.path)).with_name(f"{Path(str(source.path)).stem}_{sid}")
    ck = Path(str(model_dir)) / "checkpoint.pt" if model_dir else None
    params = {
        "model": str(model_dir) if model_dir else None, "model_sha256": file_hash(ck) if ck and ck.exists() else None,
        "iteration": doc.get("iteration"), "res": res, "face_type": face_type, **asdict(opts),
        **({"network": network} if network else {}),
    }
    step = PostStep(out_dir, "faceswap-merge", params, inputs={"source": str(source.path), "kind": source.kind},
                    notes=["face replacement: synthetic media"])
    report = MergeReport(out_dir, frames=len(source.frames), smooth=opts.smooth)

    # 4. track (cached)
    t0 = time.perf_counter()
    be = backend or get_backend(opts.backend)
    per_frame, bad, report.detections = _tracks_cached(step, source, opts, be, progress)
    report.unreadable = bad
    report.seconds_track = time.perf_counter() - t0

    report.no_face = [f for f in sorted(per_frame) if not per_frame[f]]
    _check_faces_found(per_frame, opts, target)

    # 5. smooth
    used = smooth_tracks(per_frame, opts, source.fps)
    report.jitter_raw, report.jitter_used = _track_jitter(per_frame), _track_jitter(used)
    np.savez_compressed(out_dir / "landmarks_used.npz", **{f"{f}_{t}": lm for f, faces in used.items() for t, lm in faces.items()})
    clearance = rights.require_cleared(production, "face_replacement", rights.faces_in_tracks(source.read, used), override=override,
                                       store=rights_store, model_rights=doc.get("rights") if model_dir else None, what=str(target))
    step.set_rights(clearance)  # --subject names only label: the faces themselves were matched
    report.rights = clearance.to_provenance()

    # 6. swap, in batches, resumable
    comp = Compositor(swapper, res, face_type, opts)
    todo = [f for f in source.frames if f not in bad]

    process, frame_inputs = swap_functions(source, comp, used, order=None if ray else todo)

    t1 = time.perf_counter()
    if ray:
        from machinima.distributed import StepSpec, run_job

        from .distributed import MergeJob

        job = MergeJob(StepSpec.of(step), str(Path(str(source.path)).resolve()), str(Path(str(model_dir)).resolve()) if model_dir else None,
                       opts, str((out_dir / "landmarks_used.npz").resolve()), res, face_type, batch_size=opts.batch)
        srep = run_job(job, todo, address=ray, chunk_size=chunk_size, frame_inputs=frame_inputs, progress=progress,
                       description=f"faceswap {Path(str(target)).name} on Ray")
        report.workers = srep.workers
        step = srep.step  # the workers' frames, for the movie
    else:
        try:
            srep = step.run(todo, process, frame_inputs=frame_inputs, batch_size=opts.batch, progress=progress,
                            description=f"faceswap {Path(str(target)).name}", on_error="skip")
        finally:
            process.close()
    report.seconds_swap = time.perf_counter() - t1
    report.done, report.skipped, report.failed = len(srep.done), len(srep.skipped), dict(srep.failed)

    # 7. the mp4
    if video:
        outs = step.outputs_of("rgb")
        if outs:
            from machinima.imageseq import read_image
            from machinima.poststep import write_video  # disclosed like the frames

            report.video = write_video(out_dir / f"{sid}.mp4", (read_image(p) for _, p in sorted(outs.items())), fps=source.fps or 24)
    close = getattr(be, "close", None)
    if close and backend is None:
        close()
    return report


def swap_functions(source: Any, comp: Compositor, used: dict[int, dict[int, np.ndarray]], order: list[int] | None = None):
    """(process, frame_inputs) of the swap loop: a local merge's and every Ray worker's. The key
    of a frame is its smoothed landmarks: new tracking redoes exactly the frames that moved.

    ``order``: the frames the loop will ask for, in order: they are decoded ahead on a thread
    while the frames before them are composited (a video on one thread, its decoder reads in
    order); ``process.close()`` stops the read-ahead."""
    from machinima.frameio import Prefetch

    reads = Prefetch(order, source.read, depth=4, workers=1 if source.kind == "video" else None) if order else None

    def process(batch: list[int]) -> list[dict[str, np.ndarray]]:
        imgs = [reads.get(f) if reads is not None else source.read(f) for f in batch]
        return [{"rgb": o} for o in comp.frames(imgs, [used.get(f, {}) for f in batch], inplace=True)]

    process.close = reads.close if reads is not None else (lambda: None)  # type: ignore[attr-defined]

    def frame_inputs(f: int) -> dict[str, Any]:
        faces = used.get(f, {})
        return {"lm": {str(t): np.round(lm, 2).tolist() for t, lm in faces.items()}}

    return process, frame_inputs


def _tracks_cached(step, source, opts: MergeOptions, backend, progress: bool):
    """Step 4 with a cache: the tracks of this source under these tracking params are reused."""
    import json

    from machinima.poststep import stable_hash

    key = stable_hash({"source": str(source.path), "frames": source.frames, "backend": opts.backend,
                       "redetect": opts.redetect_every, "gap": opts.max_gap, "mtime": _mtime(source)})
    path = step.out_dir / "tracks.npz"
    if path.exists() and getattr(backend, "cacheable", True):
        try:
            z = np.load(path, allow_pickle=False)
            if str(z["key"]) == key:
                meta = json.loads(str(z["meta"]))
                per_frame = {int(f): {} for f in meta["frames"]}
                for name in z.files:
                    if name.startswith("lm_"):
                        _, f, t = name.split("_")
                        per_frame[int(f)][int(t)] = z[name]
                return per_frame, {int(k): v for k, v in meta["bad"].items()}, int(meta["detections"])
        except (OSError, KeyError, ValueError):
            pass
    per_frame, bad, det = track_faces(source, source.frames, backend, redetect_every=opts.redetect_every, max_gap=opts.max_gap, progress=progress)
    arrays = {f"lm_{f}_{t}": lm for f, faces in per_frame.items() for t, lm in faces.items()}
    meta = json.dumps({"frames": sorted(per_frame), "bad": {str(k): v for k, v in bad.items()}, "detections": det})
    tmp = step.out_dir / ".tracks.tmp.npz"
    np.savez_compressed(tmp, key=np.array(key), meta=np.array(meta), **arrays)
    tmp.replace(path)
    return per_frame, bad, det


def _check_faces_found(per_frame: dict[int, dict[int, np.ndarray]], opts: MergeOptions, target: Any) -> None:
    """A merge asked to swap faces fails when there is none to swap (it never reports a run that
    changed nothing as done), and when ``--track`` names ids that do not exist."""
    ids = sorted({t for faces in per_frame.values() for t in faces})
    if per_frame and not ids:
        raise NoFaceError(f"no face found in any of the {len(per_frame)} frame(s) of {target}",
                          hint="check the frames hold a face at least ~24 px wide; `machinima faceswap extract` lists frames without one")
    if opts.tracks is not None and not set(opts.tracks) & set(ids):
        raise NoFaceError(f"--track {', '.join(map(str, opts.tracks))}: no such face track in {target}",
                          hint=f"tracks found: {', '.join(map(str, ids))}")


def _mtime(source) -> float:
    try:
        if source.kind in ("video", "image"):
            return Path(source.path).stat().st_mtime
        return max((p.stat().st_mtime for p in source.files.values()), default=0.0)
    except OSError:
        return 0.0


def _track_jitter(per_frame: dict[int, dict[int, np.ndarray]]) -> float:
    """Mean jitter over tracks (consecutive frames only)."""
    ids = sorted({t for faces in per_frame.values() for t in faces})
    vals = []
    for t in ids:
        fr = sorted(f for f in per_frame if t in per_frame[f])
        run = [fr[0]] if fr else []
        for a, b in zip(fr, fr[1:]):
            if b != a + 1:
                if len(run) >= 3:
                    vals.append(jitter(np.stack([per_frame[f][t] for f in run])))
                run = []
            run.append(b)
        if len(run) >= 3:
            vals.append(jitter(np.stack([per_frame[f][t] for f in run])))
    return float(np.mean(vals)) if vals else 0.0


class _bar:
    def __init__(self, enabled: bool, desc: str, total: int) -> None:
        self.p = None
        if enabled and total:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            self.p = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn())
            self.p.start()
            self.t = self.p.add_task(desc, total=total)

    def __call__(self) -> None:
        if self.p:
            self.p.advance(self.t)

    def close(self) -> None:
        if self.p:
            self.p.stop()

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

The steps live in modules of one job each: ``merge_options`` (settings, report), ``merge_tracks``
(steps 4-5), ``compositor`` (step 6); every name stays importable from here.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .compositor import Compositor, make_swapper, swap_functions
from .errors import FaceswapError
from .merge_options import BLENDS, ENGINES, MergeOptions, MergeReport
from .merge_tracks import check_faces_found as _check_faces_found
from .merge_tracks import smooth_tracks, track_faces
from .merge_tracks import track_jitter as _track_jitter
from .merge_tracks import tracks_cached as _tracks_cached

__all__ = ["BLENDS", "ENGINES", "Compositor", "MergeOptions", "MergeReport", "make_swapper", "merge", "smooth_tracks",
           "swap_functions", "track_faces"]


# --- the pipeline -------------------------------------------------------------------------------------
def merge(target: str | Path, model_dir: str | Path | None, *, out: str | Path | None = None, step_id: str | None = None,
          options: MergeOptions | None = None, production: str | None = None, subjects: list[str] | None = None,
          override: str | None = None, rights_store: str | Path | None = None, backend: Any = None,
          swapper: Callable[[np.ndarray], np.ndarray] | None = None, video: bool = True, progress: bool = True,
          ray: str | None = None, chunk_size: int | None = None) -> MergeReport:
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
    from .modeldoc import read_model_doc

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
    clearance.swap = rights.swap_block(clearance, doc.get("rights") if model_dir else None, used, opts.tracks, sid)  # later steps inherit it
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

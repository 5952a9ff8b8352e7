"""Steps 4 and 5 of a merge: track the faces of every frame (cached in the step's ``tracks.npz``),
smooth each track over time, and measure the landmark jitter before and after. Kept apart from
the pipeline so the benchmarks and the live preview reuse exactly what a merge does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from machinima.imageseq import ImageSeqError
from machinima.steploop import progress_bar

from .errors import NoFaceError
from .merge_options import MergeOptions
from .smoothing import jitter, smooth_sequence


def track_faces(source, frames: list[int], backend, *, redetect_every: int = 30, max_gap: int = 12,
                progress: bool = False) -> tuple[dict[int, dict[int, np.ndarray]], dict[int, str], int]:
    """frame -> {track id: (68, 2) landmarks}, unreadable frames, number of full detections."""
    from .tracker import FaceFinder, interpolate

    finder = FaceFinder(backend, redetect_every=redetect_every, max_gap=max_gap)
    bad: dict[int, str] = {}
    bar = progress_bar(progress, "track faces", len(frames), 0)
    try:
        for f in frames:
            try:
                img = source.read(f)
            except ImageSeqError as exc:
                bad[f] = str(exc)
                bar.advance(1)
                continue
            finder(f, img)
            bar.advance(1)
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



def tracks_cached(step, source, opts: MergeOptions, backend, progress: bool):
    """Step 4 with a cache: the tracks of this source under these tracking params are reused."""
    import json

    from machinima.poststep import stable_hash

    key = stable_hash({"source": str(source.path), "frames": source.frames, "backend": opts.backend,
                       "redetect": opts.redetect_every, "gap": opts.max_gap, "mtime": source_mtime(source)})
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


def check_faces_found(per_frame: dict[int, dict[int, np.ndarray]], opts: MergeOptions, target: Any) -> None:
    """A merge asked to swap faces fails when there is none to swap (it never reports a run that
    changed nothing as done), and when ``--track`` names ids that do not exist."""
    ids = sorted({t for faces in per_frame.values() for t in faces})
    if per_frame and not ids:
        raise NoFaceError(f"no face found in any of the {len(per_frame)} frame(s) of {target}",
                          hint="check the frames hold a face at least ~24 px wide; `machinima faceswap extract` lists frames without one")
    if opts.tracks is not None and not set(opts.tracks) & set(ids):
        raise NoFaceError(f"--track {', '.join(map(str, opts.tracks))}: no such face track in {target}",
                          hint=f"tracks found: {', '.join(map(str, ids))}")


def source_mtime(source) -> float:
    try:
        if source.kind in ("video", "image"):
            return Path(source.path).stat().st_mtime
        return max((p.stat().st_mtime for p in source.files.values()), default=0.0)
    except OSError:
        return 0.0


def track_jitter(per_frame: dict[int, dict[int, np.ndarray]]) -> float:
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

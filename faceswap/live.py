"""Live face swap on a stream: a camera index, a video file or a stream URL OpenCV can open.

Causal end to end (One-Euro smoothing with its speed in pixels per second, no look-ahead), one frame in, one frame out, with its
latency measured; the result goes to an mp4 (``--out``). The same tracker, compositor and
swappers (onnxruntime by default: the real-time path) as ``merge``.

    machinima faceswap live 0 --model models/alice-on-bob --out live.mp4        # camera 0
    machinima faceswap live rtsp://host/stream --model ... --out rec.mp4 --max-frames 600
"""

from __future__ import annotations

import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError
from .compositor import Compositor, make_swapper
from .merge_options import MergeOptions
from .smoothing import OneEuro


@dataclass
class LiveReport:
    frames: int = 0
    faces: int = 0
    latency_ms: list[float] = field(default_factory=list)
    out: Path | None = None
    stopped: bool = False

    @property
    def fps(self) -> float:
        return 1000.0 / float(np.mean(self.latency_ms)) if self.latency_ms else 0.0

    @property
    def p95_ms(self) -> float:
        return float(np.percentile(self.latency_ms, 95)) if self.latency_ms else 0.0


def live(source: str | int, model_dir: str | Path | None, *, out: str | Path | None = None, options: MergeOptions | None = None,
         max_frames: int | None = None, fps: float = 25.0, production: str | None = None, subjects: list[str] | None = None,
         override: str | None = None, rights_store: Any = None, backend: Any = None) -> LiveReport:
    """Swap faces on a camera, file or stream as frames arrive (causal smoothing), optionally
    recording the disclosed result to ``out``. Each face track is matched against the rights
    records when it first appears, before any of its frames is swapped; ``subjects`` are labels
    only (kept for callers that pass them)."""
    import cv2

    from machinima import rights

    from .backends import get_backend
    from .tracker import FaceFinder

    # 1. check inputs, model, rights
    opts = (options or MergeOptions(engine="onnx", blend="alpha")).check()
    swapper, res, face_type, doc = make_swapper(model_dir, opts.engine, opts.device)
    res, face_type = res or opts.res, face_type or opts.face_type
    if production is None:
        from machinima.config import load_config

        production = load_config().production
    model_rights = doc.get("rights") if model_dir else None
    cleared: set[int] = set()  # face tracks matched to a valid record (typed names clear nothing)

    def clear(i: int, img: np.ndarray, track: int, landmarks: np.ndarray) -> None:
        """A new face track is embedded and must match a valid face_replacement record before
        its first frame is swapped (the model's identities are checked with the first face)."""
        from machinima.identity import box_of

        sample = rights.FaceSample(f"frame {i}, face track {track}", f"track {track}", lambda: img, box_of(landmarks, 0.05), frame=i)
        rights.require_cleared(production, "face_replacement", [sample], override=override, store=rights_store,
                               model_rights=None if cleared else model_rights, what=f"live stream {source}")
        cleared.add(track)

    src = int(source) if isinstance(source, int) or str(source).isdigit() else str(source)
    cap = cv2.VideoCapture(src)
    if not cap.isOpened():
        raise InputError(f"cannot open stream {source!r}", hint="give a camera index (0), a video file or a stream URL OpenCV can read")
    # 2. the loop: read, find (tracked), smooth (causal), swap, write
    be = backend or get_backend(opts.backend)
    finder = FaceFinder(be, redetect_every=opts.redetect_every, max_gap=opts.max_gap)
    filters: dict[int, OneEuro] = {}
    comp = Compositor(swapper, res, face_type, opts)
    report = LiveReport(out=Path(out) if out else None)
    stop = {"flag": False}
    old = None
    if threading.current_thread() is threading.main_thread():
        def _h(signum, frame):  # noqa: ARG001
            stop["flag"] = True
        old = signal.signal(signal.SIGINT, _h)

    def frames():
        i = 0
        while not stop["flag"] and (max_frames is None or i < max_frames):
            ok, bgr = cap.read()
            if not ok:
                break
            t0 = time.perf_counter()
            img = np.ascontiguousarray(bgr[..., ::-1])
            faces = finder(i, img)
            lms = {}
            for f in faces:
                if f.track not in cleared:
                    clear(i, img, f.track, f.landmarks)
                flt = filters.setdefault(f.track, OneEuro(fps, opts.min_cutoff, opts.beta, opts.d_cutoff))
                lms[f.track] = flt(f.landmarks)
            comp.frames([img], [lms], inplace=True)
            report.latency_ms.append(1000 * (time.perf_counter() - t0))
            report.faces += len(faces)
            report.frames += 1
            i += 1
            yield img

    try:
        if report.out is not None:
            from machinima.poststep import write_video  # the recording is synthetic media: marked and signed

            write_video(report.out, frames(), fps=fps)
        else:
            for _ in frames():
                pass
    finally:
        cap.release()
        if old is not None:
            signal.signal(signal.SIGINT, old)
        report.stopped = stop["flag"]
        if backend is None and hasattr(be, "close"):
            be.close()
    return report

"""Extract: frames -> aligned faces in a faceset. One readable pipeline, numbered steps.

    1. check inputs (face type, size, backend)
    2. open the source (take / video / image folder) and the faceset (created if new)
    3. skip frames already extracted from this source (rerun = resume)
    4. for each frame: read (a corrupt frame is reported, the run goes on), find faces
       (detect at every shot size, then track: landmarks around last frame's faces), align, score blur and pose,
       add to the faceset (each add is its own transaction: Ctrl-C never leaves half an item)
    5. report: faces added, frames without a face, unreadable frames; no face in any frame is an
       error (the step was asked for faces and found none)
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from machinima.imageseq import ImageSeqError
from machinima.steploop import progress_bar

from .align import align, check_face_type, check_size, estimate_yaw_pitch, transform_points
from .backends import get_backend
from .errors import NoFaceError
from .faceset import blur_score, create_faceset, dhash
from .sources import open_source
from .tracker import FaceFinder


@dataclass
class ExtractReport:
    faceset: Path
    frames: int = 0
    added: int = 0
    skipped_frames: int = 0
    no_face: list[int] = field(default_factory=list)
    unreadable: dict[int, str] = field(default_factory=dict)
    interrupted: bool = False
    seconds: float = 0.0

    @property
    def fps(self) -> float:
        return (self.frames - self.skipped_frames) / self.seconds if self.seconds > 0 else 0.0

    def messages(self) -> list[str]:
        out = []
        if self.no_face:
            out.append(f"no face found in {len(self.no_face)} frame(s): {self.no_face[:10]}{'...' if len(self.no_face) > 10 else ''}")
        for f, msg in list(self.unreadable.items())[:10]:
            out.append(f"frame {f} skipped: {msg}")
        if self.interrupted:
            out.append("stopped by Ctrl-C; run the same command again to continue")
        return out


def extract(src: str | Path, out: str | Path, *, face_type: str = "whole", size: int = 256, backend: str = "mediapipe",
            backend_options: dict[str, Any] | None = None, every: int = 1, tags: tuple[str, ...] = (), max_faces: int = 8,
            redetect_every: int = 30, progress: bool = True) -> ExtractReport:
    # 1. check inputs
    check_face_type(face_type)
    check_size(size)
    every = max(1, int(every))
    be = get_backend(backend, **(backend_options or {}))

    # 2. open source and faceset
    source = open_source(src)
    col = create_faceset(out, face_type=face_type, size=size)
    report = ExtractReport(Path(out))

    # 3. resume: frames of this source already in the faceset; file names carry the source
    #    (name + a short hash of its path) so several clips can go into one faceset
    import hashlib

    src_tag = f"{Path(str(source.path)).stem[:40]}-{hashlib.sha1(str(Path(str(source.path)).resolve()).encode()).hexdigest()[:6]}"
    done = {(it.source.path, it.source.frame) for it in col.items()}
    frames = source.frames[::every]
    report.frames = len(frames)
    finder = FaceFinder(be, redetect_every=redetect_every)
    t0 = time.perf_counter()
    bar = progress_bar(progress, f"extract {Path(src).name}", len(frames), 0)
    try:
        for f in frames:
            sdoc = source.source_of(f)
            if (sdoc.path, f) in done:
                report.skipped_frames += 1
                bar.advance(1)
                continue
            # 4. read, find, align, score, add
            try:
                img = source.read(f)
            except ImageSeqError as exc:
                report.unreadable[f] = str(exc)
                bar.advance(1)
                continue
            faces = finder(f, img)[:max_faces]
            if not faces:
                report.no_face.append(f)
            for face in faces:
                aligned, mat = align(img, face.landmarks, face_type, size)
                yaw, pitch = estimate_yaw_pitch(face.landmarks)
                meta = {
                    "landmarks": face.landmarks.round(3), "aligned_landmarks": transform_points(face.landmarks, mat).round(3),
                    "transform": mat.round(6), "face_type": face_type, "size": size, "yaw": round(yaw, 4), "pitch": round(pitch, 4),
                    "blur": round(blur_score(aligned), 3), "dhash": str(dhash(aligned)), "track": face.track, "score": round(face.score, 4),
                }
                col.add(aligned, name=f"{src_tag}_{f:06d}_{face.track}.png", source=sdoc, box=face.box.round(2), tags=list(tags), meta=meta)
                report.added += 1
            bar.advance(1)
    except KeyboardInterrupt:
        report.interrupted = True
    finally:
        bar.close()
        col.close()
        close = getattr(be, "close", None)
        if close:
            close()
        report.seconds = time.perf_counter() - t0
    if report.no_face and not report.added and not report.skipped_frames and not report.interrupted:
        raise NoFaceError(f"no face found in any of the {len(report.no_face)} frame(s) of {src}",
                          hint="faces narrower than ~24 px are not searched for; check the source shows a face")
    return report

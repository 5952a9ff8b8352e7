"""Takes <-> BVH files: export performers resampled to the take's fps, import a BVH as a take
(``bvhimport.import_bvh``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .bvhimport import import_bvh, import_bvh_take, performer_rest_offsets
from .bvhwrite import export_bvh
from .errors import TakeError
from .take import Take
from .tracks import frame_times, resample_poses

__all__ = ["export_take_bvh", "import_bvh", "import_bvh_take", "performer_frames"]


def performer_frames(take: Take, performer: str) -> tuple[np.ndarray, np.ndarray]:
    """(frame stamps, poses (N, 55, 7)) of a performer at the take's fps, from its first to its
    last sample (slerp between samples)."""
    track = take.store.read_mocap(performer)
    if len(track) == 0:
        raise TakeError(f"performer {performer!r} has no frames in take {take.id}")
    at = frame_times(int(track.t_ns[0]), int(track.t_ns[-1]), take.fps)
    return at, resample_poses(track.t_ns, track.values, at)


def export_take_bvh(take_path: Path, out: Path, performer: str | None = None, *, order: str = "ZXY") -> list[Path]:
    """One BVH per performer (centimetres, canonical names); offsets are the performer's own
    proportions when the take has a source record (a BVH import), else the first frame's."""
    take = Take.open(take_path)
    names = [performer] if performer else take.store.performers()
    if performer and performer not in take.store.performers():
        raise TakeError(f"take {take.id} has no performer {performer!r}; it has {take.store.performers()}")
    if not names:
        raise TakeError(f"take {take.id} has no performers to export")
    written = []
    for name in names:
        _, poses = performer_frames(take, name)
        target = out if (performer and out.suffix.lower() == ".bvh") else Path(out) / f"{take.id}_{name}.bvh"
        written.append(export_bvh(target, poses, take.fps, order=order, offsets=performer_rest_offsets(take_path, name)))
    return written

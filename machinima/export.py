"""Takes <-> BVH files: export performers resampled to the take's fps, import a BVH as a take."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .bvh import export_bvh, read_bvh, to_canonical
from .errors import TakeError
from .take import Take
from .timecode import NS_PER_S
from .tracks import frame_times, resample_poses


def performer_frames(take: Take, performer: str) -> tuple[np.ndarray, np.ndarray]:
    """(frame stamps, poses (N, 55, 7)) of a performer at the take's fps, from its first to its
    last sample (slerp between samples)."""
    track = take.store.read_mocap(performer)
    if len(track) == 0:
        raise TakeError(f"performer {performer!r} has no frames in take {take.id}")
    at = frame_times(int(track.t_ns[0]), int(track.t_ns[-1]), take.fps)
    return at, resample_poses(track.t_ns, track.values, at)


def export_take_bvh(take_path: Path, out: Path, performer: str | None = None) -> list[Path]:
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
        written.append(export_bvh(target, poses, take.fps))
    return written


def import_bvh_take(bvh_path: Path, takes_root: Path, *, production: str, scene: str, shot: str, performer: str) -> str:
    motion = read_bvh(bvh_path)
    poses = to_canonical(motion)
    fps = round(motion.fps, 3)
    take = Take.create(takes_root, production=production, scene=scene, shot=shot, fps=fps, performers=[performer])
    origin = take.store.origin_ns
    take.add_performer(performer, source=f"bvh:{Path(bvh_path).name}")
    t = origin + (np.arange(poses.shape[0], dtype=np.int64) * NS_PER_S / motion.fps).astype(np.int64)
    take.store.append(f"mocap/{performer}", t, poses)
    take.add_note(f"imported from {Path(bvh_path).name} at {time.strftime('%Y-%m-%d %H:%M')}")
    take.finalize()
    return take.id

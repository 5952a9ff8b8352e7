"""BVH playback as a live source: a file's frames at real-time speed, looping, with a start
offset (rehearsal and tests). ``pose_at(t)`` is the pose ``t`` seconds after the start."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from machinima.bonemap import BoneMapSpec
from machinima.bvh import read_bvh
from machinima.bvhimport import BVHPerformer, retarget_motion

from .errors import MocapError


class BVHPlayback:
    def __init__(self, path: str | Path, *, loop: bool = True, start_s: float = 0.0,
                 bone_map: BoneMapSpec | dict[str, str] | str | Path | None = None, units: str = "auto") -> None:
        motion = read_bvh(path)
        if motion.data.shape[0] == 0 or motion.frame_time <= 0:
            raise MocapError(f"{path}: the BVH has no frames to play")
        if start_s < 0:
            raise MocapError("the start offset must be >= 0 seconds")
        self.path = Path(path)
        self.performer: BVHPerformer = retarget_motion(motion, bone_map, units)  # map, units and fps as `takes import` reads them
        self.poses = self.performer.poses
        self.fps = float(self.performer.fps)
        self.frame_time = 1.0 / self.fps
        self.loop = loop
        self.start_s = start_s
        self.duration_s = self.poses.shape[0] * self.frame_time

    def frame_index(self, t: float) -> int | None:
        """Index of the file frame shown at playback time ``t`` (None once a non-looping
        playback is over)."""
        k = int(math.floor((t + self.start_s) / self.frame_time + 1e-3))  # file frame times are rounded
        n = self.poses.shape[0]
        if self.loop:
            return k % n
        return k if k < n else None

    def pose_at(self, t: float) -> np.ndarray | None:
        k = self.frame_index(t)
        return None if k is None else self.poses[k]

"""The synthetic performer: procedural idle / walk / wave, deterministic by seed.

``synthetic_poses(times_s, motion=..., seed=...)`` gives canonical poses (N, 55, 7) for any
times, vectorised; the same (motion, seed, time) always gives the same pose, so a test can
compare what a listener received with what was sent. ``machinima mocap send --synthetic N``
sends N of them over real VMC UDP (performer k uses seed + k and motion k mod 3 with ``mix``).
"""

from __future__ import annotations

import numpy as np

from machinima import quat
from machinima.skeleton import BONE_INDEX, BONES, rest_pose

from .errors import MocapError

MOTIONS = ("idle", "walk", "wave")
_X = np.array([1.0, 0.0, 0.0])
_Y = np.array([0.0, 1.0, 0.0])
_Z = np.array([0.0, 0.0, 1.0])


def motion_for(index: int, motion: str) -> str:
    if motion == "mix":
        return MOTIONS[index % len(MOTIONS)]
    if motion not in MOTIONS:
        raise MocapError(f"unknown synthetic motion {motion!r}", hint=f"one of {', '.join(MOTIONS + ('mix',))}")
    return motion


def synthetic_poses(t: np.ndarray | float, *, motion: str = "idle", seed: int = 0, index: int = 0) -> np.ndarray:
    """Canonical poses (N, 55, 7) float32 of one synthetic performer at times ``t`` (seconds)."""
    motion = motion_for(index, motion)
    t = np.atleast_1d(np.asarray(t, dtype=np.float64))
    rng = np.random.default_rng(seed)
    ph = rng.uniform(0, 2 * np.pi, size=8)
    amp = rng.uniform(0.8, 1.2, size=8)
    speed = rng.uniform(0.9, 1.1)
    n = t.shape[0]
    pose = np.broadcast_to(rest_pose(), (n, len(BONES), 7)).astype(np.float64).copy()

    def rot(bone: str, axis: np.ndarray, angle_deg: np.ndarray | float) -> None:
        i = BONE_INDEX[bone]
        q = quat.from_axis_angle(axis, np.radians(np.broadcast_to(angle_deg, (n,))))
        pose[:, i, 3:7] = quat.multiply(pose[:, i, 3:7], q)

    base_x = 1.5 * index + rng.uniform(-0.2, 0.2)
    breath = np.sin(2 * np.pi * 0.25 * t + ph[0])
    rot("Spine", _X, 2.0 * amp[0] * breath)
    rot("Chest", _X, 1.5 * amp[0] * breath)
    rot("Head", _Y, 8.0 * amp[1] * np.sin(2 * np.pi * 0.1 * t + ph[1]))
    rot("Neck", _X, 3.0 * np.sin(2 * np.pi * 0.13 * t + ph[2]))
    arm_down = 72.0 + 3.0 * breath
    rot("LeftUpperArm", _Z, -arm_down)
    rot("RightUpperArm", _Z, arm_down)
    rot("LeftLowerArm", _Y, 10.0)
    rot("RightLowerArm", _Y, -10.0)
    hips = pose[:, BONE_INDEX["Hips"]]
    hips[:, 0] = base_x + 0.02 * np.sin(2 * np.pi * 0.2 * t + ph[3])
    hips[:, 2] = 0.02 * np.sin(2 * np.pi * 0.17 * t + ph[4])
    if motion == "walk":
        radius = 2.0 * amp[5]
        omega = 1.2 * speed / radius  # 1.2 m/s on a circle
        ang = omega * t + ph[5]
        hips[:, 0] = base_x + radius * np.cos(ang)
        hips[:, 2] = radius * np.sin(ang)
        yaw = -np.degrees(ang)  # face along the tangent
        hips[:, 3:7] = quat.from_axis_angle(_Y, np.radians(yaw))
        step = 2 * np.pi * 1.8 * speed * t + ph[6]
        hips[:, 1] = 0.95 + 0.02 * np.cos(2 * step)
        swing = 25.0 * amp[6] * np.sin(step)
        rot("LeftUpperLeg", _X, -swing)
        rot("RightUpperLeg", _X, swing)
        rot("LeftLowerLeg", _X, 35.0 * np.clip(np.sin(step + 0.6), 0, None))
        rot("RightLowerLeg", _X, 35.0 * np.clip(-np.sin(step + 0.6), 0, None))
        rot("LeftUpperArm", _X, 18.0 * np.sin(step))
        rot("RightUpperArm", _X, -18.0 * np.sin(step))
    elif motion == "wave":
        i = BONE_INDEX["RightUpperArm"]
        pose[:, i, 3:7] = quat.from_axis_angle(_Z, np.radians(np.full(n, -55.0)))
        wave = 35.0 * amp[7] * np.sin(2 * np.pi * 1.6 * speed * t + ph[7])
        rot("RightLowerArm", _Z, -50.0 + wave)
        rot("RightHand", _Z, 0.3 * wave)
    return pose.astype(np.float32)


def synthetic_blendshapes(t: float, seed: int = 0) -> dict[str, float]:
    """A blink every few seconds and a little mouth movement (VRM preset names)."""
    rng = np.random.default_rng(seed)
    period = float(rng.uniform(3.0, 5.0))
    phase = (t + float(rng.uniform(0, period))) % period
    blink = float(max(0.0, 1.0 - abs(phase - 0.1) / 0.1)) if phase < 0.2 else 0.0
    return {"Blink": round(blink, 4), "A": round(0.2 + 0.2 * float(np.sin(t * 7.0 + seed)), 4)}


class SyntheticPerformer:
    """``pose_at(t)`` for a sender: poses are computed a second at a time (one vectorised call
    per second of motion) on the sender's frame grid, so sending stays cheap at 120 Hz."""

    def __init__(self, *, motion: str = "idle", seed: int = 0, index: int = 0, fps: float = 120.0, chunk_s: float = 0.5, seconds: float | None = None) -> None:
        self.motion = motion_for(index, motion)
        self.seed = seed
        self.index = index
        self.fps = fps
        # A known duration is computed in one go up front; otherwise chunks, staggered per
        # performer so that ten performers do not all compute on the same tick.
        self.chunk = int(round(seconds * fps)) + 1 if seconds else max(1, int(round(chunk_s * fps)))
        self._phase = 0 if seconds else (index * 7) % self.chunk
        self._k0 = -1
        self._poses: np.ndarray | None = None
        self._world: tuple[np.ndarray, np.ndarray] | None = None

    def pose_at(self, t: float) -> np.ndarray:
        k = int(round(t * self.fps))
        if abs(k / self.fps - t) > 1e-9:  # off the grid: compute exactly
            return synthetic_poses(t, motion=self.motion, seed=self.seed, index=self.index)[0]
        k0 = ((k + self._phase) // self.chunk) * self.chunk - self._phase
        if k0 != self._k0 or self._poses is None:
            times = (k0 + np.arange(self.chunk)) / self.fps
            self._poses = synthetic_poses(times, motion=self.motion, seed=self.seed, index=self.index)
            self._world = None
            self._k0 = k0
        return self._poses[k - k0]

    def world_at(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """World transforms of ``pose_at(t)`` (computed for the whole chunk at once)."""
        from .retarget import fk

        pose = self.pose_at(t)
        k = int(round(t * self.fps))
        if self._poses is None or abs(k / self.fps - t) > 1e-9:
            return fk(pose)
        if self._world is None:
            self._world = fk(self._poses)
        return self._world[0][k - self._k0], self._world[1][k - self._k0]

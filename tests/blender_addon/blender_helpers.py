"""Fixtures for the Blender add-on tests: a fresh empty scene (real bpy) and takes made in code."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from machinima import quat, skeleton
from machinima.take import Take
from machinima.timecode import ns_from_frames


@pytest.fixture
def scene():
    bpy = pytest.importorskip("bpy")
    bpy.ops.wm.read_factory_settings(use_empty=True)
    return bpy.context.scene


def random_poses(n: int, seed: int = 0, spread: float = 0.6) -> np.ndarray:
    """n canonical poses: random local rotations, rest offsets, Hips walking along -Z."""
    rng = np.random.default_rng(seed)
    poses = np.repeat(skeleton.rest_pose()[None], n, 0)
    axes = rng.normal(size=(n, len(skeleton.BONES), 3))
    axes /= np.linalg.norm(axes, axis=-1, keepdims=True)
    poses[:, :, 3:7] = quat.from_axis_angle(axes, rng.uniform(-spread, spread, (n, len(skeleton.BONES))))
    poses[:, 0, :3] = np.stack([np.linspace(0, 0.5, n), np.full(n, 0.95), np.linspace(0, -1.0, n)], -1)
    return poses.astype(np.float32)


def make_take(root: Path, performers: dict[str, np.ndarray], *, fps: int = 24, cameras: dict[str, np.ndarray] | None = None,
              markers: dict[str, int] | None = None) -> Path:
    """A finalized take: performers' poses one per frame, cameras (n, 12) one per frame, markers at frames."""
    take = Take.create(root, production="test", scene="s1", shot="a", fps=fps)
    origin = take.store.origin_ns
    period = 1_000_000_000 // fps

    def stamps(n: int) -> np.ndarray:
        return origin + np.arange(n, dtype=np.int64) * 1_000_000_000 // fps + period // 2  # mid-frame: no rounding doubt

    for name, poses in performers.items():
        take.add_performer(name)
        take.store.append(f"mocap/{name}", stamps(len(poses)), poses)
    for name, values in (cameras or {}).items():
        take.store.add_camera_stream(name)
        take.store.append(f"camera/{name}", stamps(len(values)), values)
    for name, frame in (markers or {}).items():
        take.add_marker(int(stamps(frame + 1)[frame]), name)
    take.finalize()
    return take.path


MOUTH_CHANNELS = ["A", "I", "U", "E", "O", "rhubarb_A", "rhubarb_X"]


def add_mouth(take_path: Path, performer: str, n: int) -> np.ndarray:
    """A lip-sync blend stream (as lipsync writes it) on a finalized take: A opens over the shot, U half."""
    take = Take.open(take_path, writable=True)
    take.store.add_blend_stream(f"{performer}-mouth", MOUTH_CHANNELS, {"performer": performer})
    vals = np.zeros((n, len(MOUTH_CHANNELS)), np.float32)
    vals[:, 0] = np.linspace(0, 1, n)
    vals[:, 2] = 0.5
    take.store.append(f"blend/{performer}-mouth", take.store.origin_ns + ns_from_frames(np.arange(n), take.fps), vals)
    take.finalize()
    return vals

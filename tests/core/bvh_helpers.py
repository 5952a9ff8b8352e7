"""BVH test helpers: Blender's own importer as the truth, and constructed skeletons written as
BVH text (so every case is a real file that Blender reads too)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).resolve().parents[1] / "data" / "mocap"
REAL_FILES = sorted(DATA.glob("*.bvh"))


def blender_armature(path: Path):
    """Import ``path`` with ``bpy.ops.import_anim.bvh`` into an empty scene, axes and scale as in
    the file (forward Y, up Z is Blender's identity conversion)."""
    bpy = pytest.importorskip("bpy")
    bpy.ops.wm.read_factory_settings(use_empty=True)
    result = bpy.ops.import_anim.bvh(filepath=str(path), axis_forward="Y", axis_up="Z", global_scale=1.0, rotate_mode="NATIVE")
    assert result == {"FINISHED"}, result
    return bpy, next(o for o in bpy.context.scene.objects if o.type == "ARMATURE")


def blender_truth(path: Path, frames: list[int]) -> tuple[dict[int, dict[str, np.ndarray]], dict[str, np.ndarray]]:
    """World head position of every bone at file frames ``frames`` (Blender frame = file frame
    + 1), and every bone's rest head (armature space = file space here)."""
    bpy, ob = blender_armature(path)
    rest = {b.name: np.array(b.head_local, dtype=np.float64) for b in ob.data.bones}
    out = {}
    for f in frames:
        bpy.context.scene.frame_set(f + 1)
        out[f] = {pb.name: np.array(ob.matrix_world @ pb.head, dtype=np.float64) for pb in ob.pose.bones}
    return out, rest


def three_frames(n: int) -> list[int]:
    return [0, n // 2, n - 1]


# --- constructed skeletons ---------------------------------------------------------------------------
@dataclass
class Joint:
    name: str
    parent: str | None
    offset: tuple[float, float, float]


# A small figure in centimetres, HumanIK names (what the humanik map reads), arms out in a T.
HUMANIK_CM: tuple[Joint, ...] = (
    Joint("Hips", None, (0.0, 0.0, 0.0)),
    Joint("Spine", "Hips", (0.0, 10.0, 0.5)),
    Joint("Spine1", "Spine", (0.0, 12.0, 0.0)),
    Joint("Spine2", "Spine1", (0.0, 12.0, -0.5)),
    Joint("Neck", "Spine2", (0.0, 14.0, 0.0)),
    Joint("Head", "Neck", (0.0, 9.0, 1.0)),
    Joint("LeftShoulder", "Spine2", (4.0, 10.0, 0.0)),
    Joint("LeftArm", "LeftShoulder", (12.0, 0.0, 0.0)),
    Joint("LeftForeArm", "LeftArm", (27.0, 0.0, 0.0)),
    Joint("LeftHand", "LeftForeArm", (25.0, 0.0, 0.0)),
    Joint("RightShoulder", "Spine2", (-4.0, 10.0, 0.0)),
    Joint("RightArm", "RightShoulder", (-12.0, 0.0, 0.0)),
    Joint("RightForeArm", "RightArm", (-27.0, 0.0, 0.0)),
    Joint("RightHand", "RightForeArm", (-25.0, 0.0, 0.0)),
    Joint("LeftUpLeg", "Hips", (9.0, -5.0, 0.0)),
    Joint("LeftLeg", "LeftUpLeg", (0.0, -42.0, 0.0)),
    Joint("LeftFoot", "LeftLeg", (0.0, -40.0, 0.0)),
    Joint("LeftToeBase", "LeftFoot", (0.0, -6.0, 12.0)),
    Joint("RightUpLeg", "Hips", (-9.0, -5.0, 0.0)),
    Joint("RightLeg", "RightUpLeg", (0.0, -42.0, 0.0)),
    Joint("RightFoot", "RightLeg", (0.0, -40.0, 0.0)),
    Joint("RightToeBase", "RightFoot", (0.0, -6.0, 12.0)),
)


def without(joints: tuple[Joint, ...], *names: str) -> tuple[Joint, ...]:
    """The skeleton without ``names``: their children hang off their parent at the same rest
    place (offsets summed), as in a file whose skeleton has fewer bones."""
    out = list(joints)
    for name in names:
        gone = next(j for j in out if j.name == name)
        out = [Joint(j.name, gone.parent, tuple(a + b for a, b in zip(gone.offset, j.offset))) if j.parent == name else j
               for j in out if j.name != name]
    return tuple(out)


def renamed(joints: tuple[Joint, ...], names: dict[str, str] | None = None, prefix: str = "") -> tuple[Joint, ...]:
    names = names or {}

    def n(x: str | None) -> str | None:
        return None if x is None else prefix + names.get(x, x)

    return tuple(Joint(n(j.name), n(j.parent), j.offset) for j in joints)


def bvh_text(joints: tuple[Joint, ...], motion: np.ndarray, *, order: str = "ZXY", unit: float = 1.0, frame_time: float = 1 / 30,
             newline: str = "\n") -> str:
    """BVH text of a skeleton (offsets in cm times ``unit``) and motion rows: per frame the root
    position (cm) then 3 angles per joint in file order, in ``order``."""
    rot = " ".join(f"{a}rotation" for a in order)
    kids: dict[str | None, list[Joint]] = {}
    for j in joints:
        kids.setdefault(j.parent, []).append(j)
    lines = ["HIERARCHY"]

    def emit(j: Joint, depth: int) -> None:
        pad = "\t" * depth
        lines.append(f"{pad}{'ROOT' if j.parent is None else 'JOINT'} {j.name}")
        lines.append(pad + "{")
        lines.append(f"{pad}\tOFFSET {' '.join(f'{v * unit:.6f}' for v in j.offset)}")
        lines.append(f"{pad}\tCHANNELS {'6 Xposition Yposition Zposition ' if j.parent is None else '3 '}{rot}")
        for k in kids.get(j.name, []):
            emit(k, depth + 1)
        if j.name not in kids:
            lines.extend([f"{pad}\tEnd Site", pad + "\t{", f"{pad}\t\tOFFSET 0.000000 {5.0 * unit:.6f} 0.000000", pad + "\t}"])
        lines.append(pad + "}")

    emit(kids[None][0], 0)
    m = np.array(motion, dtype=np.float64).copy()
    m[:, :3] *= unit
    lines += ["MOTION", f"Frames: {len(m)}", f"Frame Time: {frame_time:.7f}"]
    lines += [" ".join(f"{v:.6f}" for v in row) for row in m]
    return newline.join(lines) + newline


def random_motion(joints: tuple[Joint, ...], n: int = 12, seed: int = 0, spread: float = 60.0) -> np.ndarray:
    """Root walking forward at hip height 95 cm, every joint turning by up to ``spread`` degrees."""
    rng = np.random.default_rng(seed)
    m = np.zeros((n, 3 + 3 * len(joints)))
    m[:, 0] = np.linspace(0, 20, n)
    m[:, 1] = 95.0 + rng.normal(scale=1.0, size=n)
    m[:, 2] = np.linspace(0, 80, n)
    m[:, 3:] = rng.uniform(-spread, spread, size=(n, 3 * len(joints)))
    return m


def file_order(joints: tuple[Joint, ...]) -> list[str]:
    """Joint names in the order ``bvh_text`` writes them (pre-order), i.e. the motion columns."""
    kids: dict[str | None, list[Joint]] = {}
    for j in joints:
        kids.setdefault(j.parent, []).append(j)
    out: list[str] = []

    def walk(j: Joint) -> None:
        out.append(j.name)
        for k in kids.get(j.name, []):
            walk(k)

    walk(kids[None][0])
    return out


def assert_matches_blender(result, path: Path, frames: list[int] | None = None, tol: float = 1e-4, *, poses: np.ndarray | None = None,
                           truth: dict | None = None) -> float:
    """Every mapped joint's world position (canonical FK of ``poses``, default the import's,
    back in file units) equals Blender's at ``frames``; returns the worst distance."""
    from machinima.skeleton import forward_kinematics

    poses = result.poses if poses is None else poses
    frames = frames or three_frames(poses.shape[0])
    truth = truth or blender_truth(path, frames)[0]
    pos, _ = forward_kinematics(np.asarray(poses, dtype=np.float64))
    worst = 0.0
    for f in frames:
        for c, j in result.resolved.mapping.items():
            err = float(np.abs(pos[f, c] / result.scale - truth[f][result.motion.names[j]]).max())
            worst = max(worst, err)
            assert err < tol, f"{path.name} frame {f}: joint {result.motion.names[j]} is {err:.2e} file units from Blender's"
    return worst

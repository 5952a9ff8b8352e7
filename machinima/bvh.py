"""BVH export and import, so a take opens in any DCC (MotionBuilder, Blender, Maya...).

Written files: centimetres (scale 100), root with 6 channels (Xposition Yposition Zposition
Zrotation Xrotation Yrotation), every other joint 3 rotation channels in ZXY order, offsets from
the performer's own proportions (the first frame's local positions). Read files: any channel
order and any subset of position channels, as common tools write them; the parser is
sans-I/O (``parse_bvh(text)``) and reports the line of anything it cannot read.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from . import quat
from .errors import BVHError
from .fsutil import atomic_write_text
from .skeleton import BONE_INDEX, BONES, PARENTS, BoneMap, check_pose, rest_pose


@dataclass
class BVHMotion:
    names: list[str]
    parents: list[int]
    offsets: np.ndarray  # (J, 3) in file units
    channels: list[list[str]]  # per joint, e.g. ["Xposition", ..., "Zrotation", ...]
    frame_time: float
    data: np.ndarray  # (N, total channels)

    @property
    def fps(self) -> float:
        return 1.0 / self.frame_time if self.frame_time > 0 else 0.0

    def local_poses(self, scale: float = 0.01) -> np.ndarray:
        """(N, J, 7) local position (metres) + quaternion per joint."""
        n = self.data.shape[0]
        out = np.zeros((n, len(self.names), 7), dtype=np.float64)
        col = 0
        for j, chans in enumerate(self.channels):
            pos = np.broadcast_to(self.offsets[j], (n, 3)).copy()
            rot_order = ""
            rot_cols = []
            for c in chans:
                axis = c[0].upper()
                if c.lower().endswith("position"):
                    pos[:, "XYZ".index(axis)] = self.data[:, col]
                else:
                    rot_order += axis
                    rot_cols.append(col)
                col += 1
            out[:, j, :3] = pos * scale
            out[:, j, 3:7] = quat.from_euler(self.data[:, rot_cols], rot_order) if rot_order else quat.IDENTITY
        return out


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {i: [] for i in range(len(BONES))}
    for i, p in enumerate(PARENTS):
        if p >= 0:
            kids[int(p)].append(i)
    return kids


def export_bvh(path: str | Path, poses: np.ndarray, fps: float | Fraction, *, scale: float = 100.0, order: str = "ZXY") -> Path:
    """Write canonical poses (N, 55, 7) to a BVH file."""
    poses = check_pose(poses, frames=True).astype(np.float64)
    if poses.shape[0] == 0:
        raise BVHError("nothing to export: the performer has no frames")
    kids = _children()
    offsets = poses[0, :, :3] * scale
    lines = ["HIERARCHY"]
    walk: list[int] = []
    rot_names = [f"{a}rotation" for a in order]

    def emit(i: int, depth: int) -> None:
        pad = "  " * depth
        head = "ROOT" if PARENTS[i] < 0 else "JOINT"
        lines.append(f"{pad}{head} {BONES[i]}")
        lines.append(f"{pad}{{")
        off = (0.0, 0.0, 0.0) if PARENTS[i] < 0 else offsets[i]
        lines.append(f"{pad}  OFFSET {off[0]:.6f} {off[1]:.6f} {off[2]:.6f}")
        if PARENTS[i] < 0:
            lines.append(f"{pad}  CHANNELS 6 Xposition Yposition Zposition {' '.join(rot_names)}")
        else:
            lines.append(f"{pad}  CHANNELS 3 {' '.join(rot_names)}")
        walk.append(i)
        if kids[i]:
            for k in kids[i]:
                emit(k, depth + 1)
        else:
            lines.append(f"{pad}  End Site")
            lines.append(f"{pad}  {{")
            lines.append(f"{pad}    OFFSET 0.000000 0.000000 0.000000")
            lines.append(f"{pad}  }}")
        lines.append(f"{pad}}}")

    emit(int(np.where(PARENTS < 0)[0][0]), 0)
    n = poses.shape[0]
    cols = []
    for i in walk:
        euler = quat.to_euler(poses[:, i, 3:7], order)
        if PARENTS[i] < 0:
            cols.append(poses[:, i, :3] * scale)
        cols.append(euler)
    motion = np.concatenate(cols, axis=1)
    lines += ["MOTION", f"Frames: {n}", f"Frame Time: {1.0 / float(fps):.8f}"]
    lines += [" ".join(f"{v:.6f}" for v in row) for row in motion]
    atomic_write_text(path, "\n".join(lines) + "\n")
    return Path(path)


def parse_bvh(text: str) -> BVHMotion:
    """Parse BVH text; ``BVHError`` names the line of the first problem."""
    tokens: list[tuple[str, int]] = []
    lines = text.splitlines()
    motion_line = None
    for ln, line in enumerate(lines, 1):
        if line.strip().upper() == "MOTION":
            motion_line = ln
            break
        tokens += [(t, ln) for t in line.replace("{", " { ").replace("}", " } ").split()]
    if motion_line is None:
        raise BVHError("no MOTION section: truncated or not a BVH file")
    pos = 0

    def take(expect: str | None = None) -> tuple[str, int]:
        nonlocal pos
        if pos >= len(tokens):
            raise BVHError(f"line {tokens[-1][1] if tokens else 1}: unexpected end of hierarchy")
        tok = tokens[pos]
        pos += 1
        if expect is not None and tok[0].upper() != expect:
            raise BVHError(f"line {tok[1]}: expected {expect}, found {tok[0]!r}")
        return tok

    names: list[str] = []
    parents: list[int] = []
    offsets: list[list[float]] = []

    def number(tok: tuple[str, int]) -> float:
        try:
            return float(tok[0])
        except ValueError:
            raise BVHError(f"line {tok[1]}: {tok[0]!r} is not a number") from None

    def joint(parent: int) -> None:
        name, _ = take()
        idx = len(names)
        names.append(name)
        parents.append(parent)
        take("{")
        take("OFFSET")
        offsets.append([number(take()) for _ in range(3)])
        chans: list[str] = []
        while pos < len(tokens):
            tok, ln = tokens[pos]
            up = tok.upper()
            if up == "CHANNELS":
                take()
                count_tok = take()
                try:
                    count = int(count_tok[0])
                except ValueError:
                    raise BVHError(f"line {count_tok[1]}: channel count {count_tok[0]!r} is not an integer") from None
                if not 0 <= count <= 6:
                    raise BVHError(f"line {count_tok[1]}: channel count {count} out of range")
                for _ in range(count):
                    c, cl = take()
                    if c[0].upper() not in "XYZ" or c[1:].lower() not in ("position", "rotation"):
                        raise BVHError(f"line {cl}: unknown channel {c!r}")
                    chans.append(c)
            elif up == "JOINT":
                take()
                joint(idx)
            elif up == "END":
                take()
                take("SITE")
                take("{")
                take("OFFSET")
                for _ in range(3):
                    number(take())
                take("}")
            elif up == "}":
                take()
                break
            else:
                raise BVHError(f"line {ln}: unexpected {tok!r}")

    take("HIERARCHY")
    take("ROOT")
    joint(-1)  # validates the hierarchy and collects joints in file (pre-)order
    channels = _channels_in_order(tokens)
    body = lines[motion_line:]
    try:
        n_frames = int(body[0].split(":", 1)[1])
        frame_time = float(body[1].split(":", 1)[1])
    except (IndexError, ValueError):
        raise BVHError(f"line {motion_line + 1}: expected 'Frames: N' and 'Frame Time: T'") from None
    width = sum(len(c) for c in channels)
    rows = [r for r in body[2:] if r.strip()]
    if len(rows) < n_frames:
        raise BVHError(f"BVH declares {n_frames} frames but has {len(rows)}: truncated file")
    try:
        data = np.array([[float(v) for v in r.split()] for r in rows[:n_frames]], dtype=np.float64).reshape(n_frames, -1)
    except ValueError:
        raise BVHError("motion data contains something that is not a number, or rows of different lengths") from None
    if data.shape[1] != width and n_frames:
        raise BVHError(f"motion rows have {data.shape[1]} values, the hierarchy declares {width} channels")
    if not np.isfinite(data).all():
        raise BVHError("motion data contains NaN or infinite values")
    return BVHMotion(names, parents, np.array(offsets, dtype=np.float64), channels, frame_time, data.reshape(n_frames, width))


def _channels_in_order(tokens: list[tuple[str, int]]) -> list[list[str]]:
    out: list[list[str]] = []
    i = 0
    while i < len(tokens):
        up = tokens[i][0].upper()
        if up in ("ROOT", "JOINT"):
            out.append([])
        elif up == "CHANNELS":
            count = int(tokens[i + 1][0])
            out[-1] = [t for t, _ in tokens[i + 2:i + 2 + count]]
            i += 1 + count
        i += 1
    return out


def read_bvh(path: str | Path) -> BVHMotion:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="strict")
    except FileNotFoundError:
        raise BVHError(f"no BVH file at {path}") from None
    except UnicodeDecodeError:
        raise BVHError(f"{path} is not a text BVH file") from None
    return parse_bvh(text)


def to_canonical(motion: BVHMotion, bone_map: BoneMap | None = None, *, scale: float = 0.01) -> np.ndarray:
    """Canonical poses (N, 55, 7) from a BVH: joints named like canonical bones (or mapped by
    ``bone_map``) are copied; canonical bones the file lacks keep the rest pose."""
    local = motion.local_poses(scale)
    n = local.shape[0]
    out = np.broadcast_to(rest_pose(), (n,) + rest_pose().shape).astype(np.float64).copy()
    matched = 0
    for j, name in enumerate(motion.names):
        target = bone_map.target(name) if bone_map else BONE_INDEX.get(name)
        if target is None:
            continue
        out[:, target] = local[:, j]
        matched += 1
    if matched == 0:
        raise BVHError("none of the BVH joints match canonical bone names", hint="pass a bone map (source name -> Unity HumanBodyBones name)")
    return out.astype(np.float32)

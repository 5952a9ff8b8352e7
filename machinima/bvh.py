"""BVH files: a sans-I/O parser (``parse_bvh(text)``) and the file's own skeleton in motion.

The parser reads what Blender's importer (``bpy.ops.import_anim.bvh``) reads, and a little more:
blank lines anywhere (also between ``MOTION`` and ``Frames:``), tabs, CRLF and old-Mac CR line
ends, ``End Site`` in any case with or without a name, ``{`` on the keyword's line, joint names
with spaces (joined with ``_`` as Blender does), channels on end joints, joints with 0 to 6
channels, ``CHANNELS`` inside an ``End Site`` (those columns are read as an extra joint). Every
error names the line: ``line 212: 68 values, the hierarchy declares 69 channels``.

The motion follows Blender's reading, so positions are Blender-exact: a joint's local
translation is its ``OFFSET``, or, when the joint has position channels, the channel values
(components without a channel are 0, as in Blender); its local rotation is the product of its
rotation channels in the order written (``Zrotation Xrotation Yrotation`` is Rz * Rx * Ry).
World positions are ``P_parent + G_parent * t`` and rotations ``G_parent * R``. The rest pose
(every channel 0) is the file's own skeleton: offsets and end sites.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import quat
from .errors import BVHError

_AXES = "XYZ"


@dataclass
class BVHMotion:
    """A parsed BVH file: the hierarchy as written (pre-order, parents first) and the motion."""

    names: list[str]
    parents: list[int]
    offsets: np.ndarray  # (J, 3) in file units
    channels: list[list[str]]  # per joint, as written, e.g. ["Xposition", ..., "Zrotation", ...]
    frame_time: float
    data: np.ndarray  # (N, total channels)
    end_sites: list[tuple[float, float, float] | None] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.end_sites:
            self.end_sites = [None] * len(self.names)

    @property
    def fps(self) -> float:
        return 1.0 / self.frame_time if self.frame_time > 0 else 0.0

    @property
    def frames(self) -> int:
        return int(self.data.shape[0])

    def rotation_order(self, j: int) -> str:
        """The rotation channels' axes in the order written ("ZXY"), "" for none."""
        return "".join(c[0].upper() for c in self.channels[j] if c.lower().endswith("rotation"))

    def columns(self) -> list[range]:
        """The motion data columns of each joint."""
        out, col = [], 0
        for chans in self.channels:
            out.append(range(col, col + len(chans)))
            col += len(chans)
        return out

    def local_transforms(self, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """Per frame and joint: local translation (N, J, 3) times ``scale`` and rotation (N, J, 4)."""
        n, jn = self.frames, len(self.names)
        trans = np.empty((n, jn, 3))
        rots = np.empty((n, jn, 4))
        for j, cols in enumerate(self.columns()):
            chans = self.channels[j]
            has_pos = any(c.lower().endswith("position") for c in chans)
            t = np.zeros((n, 3)) if has_pos else np.broadcast_to(self.offsets[j], (n, 3)).copy()
            rot_cols = []
            for c, col in zip(chans, cols):
                if c.lower().endswith("position"):
                    t[:, _AXES.index(c[0].upper())] = self.data[:, col]
                else:
                    rot_cols.append(col)
            trans[:, j] = t * scale
            order = self.rotation_order(j)
            rots[:, j] = quat.from_euler(self.data[:, rot_cols], order) if order else quat.IDENTITY
        return trans, rots

    def world(self, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """World positions (N, J, 3) times ``scale`` and rotations (N, J, 4) of every joint."""
        trans, rots = self.local_transforms(scale)
        pos = np.empty_like(trans)
        rot = np.empty_like(rots)
        for j, p in enumerate(self.parents):  # pre-order: the parent is always done
            if p < 0:
                pos[:, j], rot[:, j] = trans[:, j], rots[:, j]
            else:
                pos[:, j] = pos[:, p] + quat.rotate(rot[:, p], trans[:, j])
                rot[:, j] = quat.multiply(rot[:, p], rots[:, j])
        return pos, rot

    def rest_positions(self) -> np.ndarray:
        """World positions (J, 3) of the joints in the rest pose (offsets only), file units."""
        out = np.zeros((len(self.names), 3))
        for j, p in enumerate(self.parents):
            out[j] = self.offsets[j] + (out[p] if p >= 0 else 0.0)
        return out

    def rest_extent(self) -> float:
        """The rest pose's largest extent along an axis (file units): the figure's height, or
        its arm span in a T-pose, end sites included."""
        rest = self.rest_positions()
        ends = [rest[j] + np.asarray(e) for j, e in enumerate(self.end_sites) if e is not None]
        pts = np.vstack([rest] + ([np.array(ends)] if ends else []))
        return float((pts.max(axis=0) - pts.min(axis=0)).max())

    def children(self, j: int) -> list[int]:
        return [k for k, p in enumerate(self.parents) if p == j]


# --- the parser -----------------------------------------------------------------------------------
class _Lines:
    """Tokens line by line (blank lines dropped), with the line number of each for errors."""

    def __init__(self, text: str) -> None:
        raw = text.splitlines()
        self.lines: list[tuple[int, list[str]]] = []
        for ln, line in enumerate(raw, 1):
            # "{" and "}" are tokens even when written next to a word ("Hips{")
            words = line.replace("{", " { ").replace("}", " } ").split()
            if words:
                self.lines.append((ln, words))
        self.i = 0

    def peek(self) -> tuple[int, list[str]] | None:
        return self.lines[self.i] if self.i < len(self.lines) else None

    def next(self, what: str) -> tuple[int, list[str]]:
        if self.i >= len(self.lines):
            last = self.lines[-1][0] if self.lines else 1
            raise BVHError(f"line {last}: the file ends where {what} was expected: truncated?")
        self.i += 1
        return self.lines[self.i - 1]


def _number(tok: str, ln: int, what: str) -> float:
    try:
        v = float(tok)
    except ValueError:
        raise BVHError(f"line {ln}: {what} {tok!r} is not a number") from None
    if not np.isfinite(v):
        raise BVHError(f"line {ln}: {what} {tok!r} is NaN or infinite")
    return v


class _HierarchyReader:
    def __init__(self, lines: _Lines) -> None:
        self.lines = lines
        self.names: list[str] = []
        self.parents: list[int] = []
        self.offsets: list[tuple[float, float, float]] = []
        self.channels: list[list[str]] = []
        self.end_sites: list[tuple[float, float, float] | None] = []

    def _open_brace(self, words: list[str], ln: int) -> None:
        """The "{" after a ROOT/JOINT/End Site line: on the same line or the next one."""
        if words and words[-1] == "{":
            return
        ln2, w2 = self.lines.next("'{'")
        if w2 != ["{"]:
            raise BVHError(f"line {ln2}: expected '{{' after line {ln}, found {' '.join(w2)!r}")

    def _offset(self, ln: int, words: list[str]) -> tuple[float, float, float]:
        if len(words) < 4:
            raise BVHError(f"line {ln}: OFFSET needs 3 numbers, found {len(words) - 1}")
        return (_number(words[1], ln, "offset"), _number(words[2], ln, "offset"), _number(words[3], ln, "offset"))

    def _channels(self, ln: int, words: list[str]) -> list[str]:
        if len(words) < 2:
            raise BVHError(f"line {ln}: CHANNELS needs a count")
        try:
            count = int(words[1])
        except ValueError:
            raise BVHError(f"line {ln}: channel count {words[1]!r} is not an integer") from None
        if not 0 <= count <= 6:
            raise BVHError(f"line {ln}: channel count {count} out of range 0..6")
        names = words[2:]
        if len(names) != count:
            raise BVHError(f"line {ln}: CHANNELS {count} lists {len(names)} channel names")
        seen = set()
        for c in names:
            if len(c) < 2 or c[0].upper() not in _AXES or c[1:].lower() not in ("position", "rotation"):
                raise BVHError(f"line {ln}: unknown channel {c!r} (Xposition ... Zrotation)")
            if c.lower() in seen:
                raise BVHError(f"line {ln}: channel {c!r} is listed twice")
            seen.add(c.lower())
        return names

    def joint(self, name: str, parent: int, head_ln: int, head_words: list[str]) -> None:
        idx = len(self.names)
        self.names.append(name)
        self.parents.append(parent)
        self.offsets.append((0.0, 0.0, 0.0))
        self.channels.append([])
        self.end_sites.append(None)
        self._open_brace(head_words, head_ln)
        have_offset = False
        while True:
            ln, words = self.lines.next(f"'}}' closing joint {name!r} (line {head_ln})")
            key = words[0].upper()
            if key == "OFFSET":
                self.offsets[idx] = self._offset(ln, words)
                have_offset = True
            elif key == "CHANNELS":
                self.channels[idx] = self._channels(ln, words)
            elif key == "JOINT":
                self.joint(_joint_name(words, ln), idx, ln, words)
            elif key == "END":
                self.end_site(idx, ln, words)
            elif key == "}":
                break
            else:
                raise BVHError(f"line {ln}: unexpected {words[0]!r} in joint {name!r}")
        if not have_offset:
            raise BVHError(f"line {head_ln}: joint {name!r} has no OFFSET")

    def end_site(self, parent: int, head_ln: int, head_words: list[str]) -> None:
        """``End Site`` (any case, maybe named): its offset is the parent's tip. CHANNELS inside
        it (rare writers) with a count above 0 make it an extra joint, so the columns line up."""
        self._open_brace(head_words, head_ln)
        offset: tuple[float, float, float] | None = None
        chans: list[str] = []
        while True:
            ln, words = self.lines.next(f"'}}' closing the End Site of line {head_ln}")
            key = words[0].upper()
            if key == "OFFSET":
                offset = self._offset(ln, words)
            elif key == "CHANNELS":
                chans = self._channels(ln, words)
            elif key == "}":
                break
            else:
                raise BVHError(f"line {ln}: unexpected {words[0]!r} in an End Site")
        if offset is None:
            raise BVHError(f"line {head_ln}: End Site has no OFFSET")
        if chans:
            self.names.append(f"{self.names[parent]}_end")
            self.parents.append(parent)
            self.offsets.append(offset)
            self.channels.append(chans)
            self.end_sites.append(None)
        else:
            self.end_sites[parent] = offset


def _joint_name(words: list[str], ln: int) -> str:
    parts = [w for w in words[1:] if w != "{"]
    if not parts:
        raise BVHError(f"line {ln}: {words[0]} without a name")
    return "_".join(parts)


def _unique(names: list[str]) -> list[str]:
    """Duplicate joint names get ``.001``, ``.002`` as in Blender."""
    seen: set[str] = set()
    out = []
    for n in names:
        name, k = n, 0
        while name in seen:
            k += 1
            name = f"{n}.{k:03d}"
        seen.add(name)
        out.append(name)
    return out


def parse_bvh(text: str) -> BVHMotion:
    """Parse BVH text; ``BVHError`` names the line of the first problem."""
    lines = _Lines(text)
    first = lines.peek()
    if first is None or first[1][0].upper() != "HIERARCHY":
        if "MOTION" not in text.upper():
            raise BVHError("no MOTION section: truncated or not a BVH file")
        raise BVHError(f"line {first[0] if first else 1}: expected HIERARCHY")
    lines.next("HIERARCHY")
    reader = _HierarchyReader(lines)
    ln, words = lines.next("ROOT")
    if words[0].upper() != "ROOT":
        raise BVHError(f"line {ln}: expected ROOT, found {words[0]!r}")
    reader.joint(_joint_name(words, ln), -1, ln, words)
    ln, words = lines.next("MOTION")
    if words[0].upper() == "ROOT":
        raise BVHError(f"line {ln}: a second ROOT: files with several skeletons are not supported")
    if words[0].upper() != "MOTION":
        raise BVHError(f"line {ln}: expected MOTION after the hierarchy, found {words[0]!r}")
    n_frames, frame_time = _motion_header(lines)
    width = sum(len(c) for c in reader.channels)
    data, warnings = _motion_rows(lines, n_frames, width)
    return BVHMotion(_unique(reader.names), reader.parents, np.array(reader.offsets, dtype=np.float64).reshape(-1, 3),
                     reader.channels, frame_time, data, reader.end_sites, warnings)


def _motion_header(lines: _Lines) -> tuple[int, float]:
    ln, words = lines.next("'Frames: N'")
    text = " ".join(words)
    key, _, value = text.partition(":")
    if key.strip().lower() != "frames":
        raise BVHError(f"line {ln}: expected 'Frames: N', found {text!r}")
    try:
        n_frames = int(value.strip())
    except ValueError:
        raise BVHError(f"line {ln}: frame count {value.strip()!r} is not an integer") from None
    if n_frames < 0:
        raise BVHError(f"line {ln}: negative frame count {n_frames}")
    ln, words = lines.next("'Frame Time: T'")
    text = " ".join(words)
    key, _, value = text.partition(":")
    if " ".join(key.lower().split()) != "frame time":
        raise BVHError(f"line {ln}: expected 'Frame Time: T', found {text!r}")
    frame_time = _number(value.strip(), ln, "frame time")
    if frame_time <= 0 and n_frames > 1:
        raise BVHError(f"line {ln}: frame time {frame_time} must be above 0")
    return n_frames, frame_time


def _motion_rows(lines: _Lines, n_frames: int, width: int) -> tuple[np.ndarray, list[str]]:
    rows = lines.lines[lines.i:]
    warnings = []
    if len(rows) < n_frames:
        last = rows[-1][0] if rows else (lines.lines[-1][0] if lines.lines else 1)
        raise BVHError(f"line {last}: BVH declares {n_frames} frames but has {len(rows)}: truncated file")
    if len(rows) > n_frames:
        warnings.append(f"line {rows[n_frames][0]}: {len(rows) - n_frames} motion row(s) after the {n_frames} declared frames ignored")
        rows = rows[:n_frames]
    flat = [w for _, words in rows for w in words]
    if len(flat) == n_frames * width:
        try:
            data = np.array(flat, dtype=np.float64).reshape(n_frames, width)
        except ValueError:
            data = None
        if data is not None and np.isfinite(data).all():
            return data, warnings
    for ln, words in rows:  # something is wrong: find the first bad row and name its line
        if len(words) != width:
            raise BVHError(f"line {ln}: {len(words)} values, the hierarchy declares {width} channels")
        for w in words:
            _number(w, ln, "motion value")
    raise BVHError("motion data could not be read")  # pragma: no cover - every case is named above


def read_bvh(path: str | Path) -> BVHMotion:
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise BVHError(f"no BVH file at {path}") from None
    except IsADirectoryError:
        raise BVHError(f"{path} is a folder, not a BVH file") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            text = raw.decode("latin-1") if b"\0" not in raw else ""
        except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes any byte
            text = ""
        if not text:
            raise BVHError(f"{path} is not a text BVH file") from None
    try:
        return parse_bvh(text)
    except BVHError as exc:
        raise BVHError(f"{path.name}: {exc}") from None


# The writer lives in bvhwrite.py, retargeting in bvhimport.py; these names stay importable here.
from .bvhwrite import export_bvh  # noqa: E402


def __getattr__(name: str):  # lazy: bvhimport imports this module
    if name == "to_canonical":
        from .bvhimport import to_canonical

        return to_canonical
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["BVHMotion", "export_bvh", "parse_bvh", "read_bvh", "to_canonical"]

"""The kit of procedural set pieces, as plain geometry (no bpy).

Each piece is built in canonical space (Y up, metres) with its origin on the floor at the
piece's centre, so ``position`` in a set file is where it stands. A builder returns
``(vertices (N, 3) float, faces [tuple of vertex indices]``; ``build.py`` makes meshes of them.
Parameters (all optional; lengths are in the set's units):

    box     size [w, h, d] = [1, 1, 1]
    column  radius 0.2, height 3.0, segments 16
    stairs  width 1.0, steps 8, step_height 0.18, step_depth 0.28    (climbs towards -Z)
    arch    width 2.0, height 3.0, thickness 0.3, depth 0.4, segments 12
    table   size [1.6, 0.75, 0.9], top 0.04, leg 0.06
    chair   seat [0.45, 0.45, 0.45] (w, seat height, d), back 0.45, leg 0.04
    screen  size [1.6, 0.9] (w, h), elevation 1.0, thickness 0.05, stand 0.05
    sphere  radius 0.5, segments 16
    plane   size [w, d] = [2, 2]
    wall    (walls are built from [[walls]] entries with ``wall_geometry``)
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

Geometry = tuple[np.ndarray, list[tuple[int, ...]]]

# kind: "len" (scaled), "len2"/"len3" (vectors, scaled), "count" (int >= 1)
_PARAMS: dict[str, dict[str, tuple[Any, str]]] = {
    "box": {"size": ((1.0, 1.0, 1.0), "len3")},
    "column": {"radius": (0.2, "len"), "height": (3.0, "len"), "segments": (16, "count")},
    "stairs": {"width": (1.0, "len"), "steps": (8, "count"), "step_height": (0.18, "len"), "step_depth": (0.28, "len")},
    "arch": {"width": (2.0, "len"), "height": (3.0, "len"), "thickness": (0.3, "len"), "depth": (0.4, "len"), "segments": (12, "count")},
    "table": {"size": ((1.6, 0.75, 0.9), "len3"), "top": (0.04, "len"), "leg": (0.06, "len")},
    "chair": {"seat": ((0.45, 0.45, 0.45), "len3"), "back": (0.45, "len"), "leg": (0.04, "len")},
    "screen": {"size": ((1.6, 0.9), "len2"), "elevation": (1.0, "len"), "thickness": (0.05, "len"), "stand": (0.05, "len")},
    "sphere": {"radius": (0.5, "len"), "segments": (16, "count")},
    "plane": {"size": ((2.0, 2.0), "len2")},
}


def kit_params(kind: str, given: dict[str, Any], scale: float = 1.0) -> dict[str, Any]:
    """Check and complete a piece's parameters; ``ValueError('field: message')`` on a bad one."""
    spec = _PARAMS[kind]
    out: dict[str, Any] = {}
    for name, value in given.items():
        if name not in spec:
            raise ValueError(f"{name}: unknown field for kit piece {kind!r}; its parameters: {', '.join(spec) or '(none)'}")
    for name, (default, typ) in spec.items():
        v = given.get(name)
        if v is None:
            out[name] = default
            continue
        if typ == "count":
            if isinstance(v, bool) or not isinstance(v, int) or v < 1 or v > 10000:
                raise ValueError(f"{name}: expected a whole number from 1 to 10000, got {v!r}")
            out[name] = v
        elif typ == "len":
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise ValueError(f"{name}: expected a length greater than 0, got {v!r}")
            out[name] = float(v) * scale
        else:
            n = int(typ[-1])
            if not isinstance(v, (list, tuple)) or len(v) != n or not all(
                isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x > 0 for x in v
            ):
                raise ValueError(f"{name}: expected {n} lengths greater than 0, got {v!r}")
            out[name] = tuple(float(x) * scale for x in v)
    if kind == "arch" and out["width"] <= 2 * out["thickness"]:
        raise ValueError(f"width: {out['width']} leaves no opening between posts {out['thickness']} thick")
    if kind == "arch" and out["height"] <= out["width"] / 2:
        raise ValueError(f"height: {out['height']} is too low for a round arch {out['width']} wide (needs more than width/2)")
    return out


class _Mesh:
    def __init__(self) -> None:
        self.v: list[np.ndarray] = []
        self.f: list[tuple[int, ...]] = []
        self.n = 0

    def add(self, verts: np.ndarray, faces: list[tuple[int, ...]]) -> None:
        self.v.append(np.asarray(verts, float))
        self.f += [tuple(i + self.n for i in face) for face in faces]
        self.n += len(verts)

    def box(self, x0: float, y0: float, z0: float, x1: float, y1: float, z1: float) -> None:
        v = np.array([[x, y, z] for x in (x0, x1) for y in (y0, y1) for z in (z0, z1)])
        # index = 4*ix + 2*iy + iz; outward-facing (counter-clockwise seen from outside)
        faces = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
        self.add(v, faces)

    def result(self) -> Geometry:
        return (np.concatenate(self.v) if self.v else np.zeros((0, 3))), self.f


def box(size: tuple[float, float, float]) -> Geometry:
    w, h, d = size
    m = _Mesh()
    m.box(-w / 2, 0, -d / 2, w / 2, h, d / 2)
    return m.result()


def column(radius: float, height: float, segments: int) -> Geometry:
    a = np.linspace(0, 2 * np.pi, segments, endpoint=False)
    ring = np.stack([radius * np.cos(a), np.zeros_like(a), -radius * np.sin(a)], axis=-1)
    top = ring + [0, height, 0]
    verts = np.concatenate([ring, top])
    s = segments
    faces = [(i, (i + 1) % s, s + (i + 1) % s, s + i) for i in range(s)]
    faces.append(tuple(range(s - 1, -1, -1)))
    faces.append(tuple(range(s, 2 * s)))
    return verts, faces


def stairs(width: float, steps: int, step_height: float, step_depth: float) -> Geometry:
    m = _Mesh()
    total = steps * step_depth
    for i in range(steps):
        z0 = total / 2 - (i + 1) * step_depth
        m.box(-width / 2, 0, z0, width / 2, (i + 1) * step_height, z0 + step_depth)
    return m.result()


def arch(width: float, height: float, thickness: float, depth: float, segments: int) -> Geometry:
    m = _Mesh()
    r = width / 2 - thickness  # inner radius of the opening
    spring = height - width / 2  # where the round part starts
    m.box(-width / 2, 0, -depth / 2, -r, spring, depth / 2)
    m.box(r, 0, -depth / 2, width / 2, spring, depth / 2)
    # the round part: quads between the inner semicircle and the outer square boundary
    R = width / 2
    for i in range(segments):
        a0, a1 = np.pi * i / segments, np.pi * (i + 1) / segments
        pts = []
        for a in (a0, a1):
            inner = np.array([r * np.cos(a), spring + r * np.sin(a)])
            c, s = np.cos(a), np.sin(a)
            t = R / max(abs(c), abs(s) * R / (height - spring))
            outer = np.array([c * t, spring + s * t])
            outer[0] = np.clip(outer[0], -R, R)
            outer[1] = np.clip(outer[1], spring, height)
            pts.append((inner, outer))
        (i0, o0), (i1, o1) = pts
        prof = [i0, o0, o1, i1]
        v = np.array([[p[0], p[1], z] for z in (depth / 2, -depth / 2) for p in prof])
        faces = [(0, 1, 2, 3), (7, 6, 5, 4), (0, 4, 5, 1), (1, 5, 6, 2), (2, 6, 7, 3), (3, 7, 4, 0)]
        m.add(v, faces)
    return m.result()


def table(size: tuple[float, float, float], top: float, leg: float) -> Geometry:
    w, h, d = size
    m = _Mesh()
    m.box(-w / 2, h - top, -d / 2, w / 2, h, d / 2)
    for sx in (-1, 1):
        for sz in (-1, 1):
            x, z = sx * (w / 2 - leg), sz * (d / 2 - leg)
            m.box(x - leg / 2, 0, z - leg / 2, x + leg / 2, h - top, z + leg / 2)
    return m.result()


def chair(seat: tuple[float, float, float], back: float, leg: float) -> Geometry:
    w, h, d = seat
    m = _Mesh()
    th = 0.04
    m.box(-w / 2, h - th, -d / 2, w / 2, h, d / 2)
    for sx in (-1, 1):
        for sz in (-1, 1):
            x, z = sx * (w / 2 - leg), sz * (d / 2 - leg)
            m.box(x - leg / 2, 0, z - leg / 2, x + leg / 2, h - th, z + leg / 2)
    m.box(-w / 2, h, -d / 2, w / 2, h + back, -d / 2 + th)  # the back rest is at -Z (seat faces +Z)
    return m.result()


def screen(size: tuple[float, float], elevation: float, thickness: float, stand: float) -> Geometry:
    w, h = size
    m = _Mesh()
    m.box(-w / 2, elevation, -thickness / 2, w / 2, elevation + h, thickness / 2)
    m.box(-stand / 2, 0, -stand / 2, stand / 2, elevation, stand / 2)
    m.box(-w / 6, 0, -w / 8, w / 6, 0.02, w / 8)
    return m.result()


def sphere(radius: float, segments: int) -> Geometry:
    rings = max(segments // 2, 3)
    verts = [[0.0, 2 * radius, 0.0]]
    for i in range(1, rings):
        phi = np.pi * i / rings
        for j in range(segments):
            th = 2 * np.pi * j / segments
            verts.append([radius * np.sin(phi) * np.cos(th), radius + radius * np.cos(phi), -radius * np.sin(phi) * np.sin(th)])
    verts.append([0.0, 0.0, 0.0])
    faces: list[tuple[int, ...]] = []
    s = segments
    for j in range(s):
        faces.append((0, 1 + j, 1 + (j + 1) % s))
    for i in range(rings - 2):
        a, b = 1 + i * s, 1 + (i + 1) * s
        for j in range(s):
            faces.append((a + j, b + j, b + (j + 1) % s, a + (j + 1) % s))
    last, bottom = 1 + (rings - 2) * s, len(verts) - 1
    for j in range(s):
        faces.append((last + (j + 1) % s, last + j, bottom))
    return np.array(verts), faces


def plane(size: tuple[float, float]) -> Geometry:
    w, d = size
    v = np.array([[-w / 2, 0, -d / 2], [-w / 2, 0, d / 2], [w / 2, 0, d / 2], [w / 2, 0, -d / 2]])
    return v, [(0, 1, 2, 3)]


def wall_geometry(length: float, height: float, thickness: float, openings: list[Any]) -> Geometry:
    """A wall along +X from 0 to ``length``, centred on its thickness, with rectangular holes
    (door/window openings: ``at``, ``width``, ``height``, ``sill``)."""
    m = _Mesh()
    cuts = sorted(openings, key=lambda o: o.at)
    x = 0.0
    t = thickness / 2
    for op in cuts:
        if op.at > x + 1e-9:
            m.box(x, 0, -t, op.at, height, t)
        if op.sill > 1e-9:
            m.box(op.at, 0, -t, op.at + op.width, op.sill, t)
        if op.sill + op.height < height - 1e-9:
            m.box(op.at, op.sill + op.height, -t, op.at + op.width, height, t)
        x = op.at + op.width
    if x < length - 1e-9:
        m.box(x, 0, -t, length, height, t)
    return m.result()


KIT: dict[str, Callable[..., Geometry]] = {
    "box": box, "column": column, "stairs": stairs, "arch": arch, "table": table, "chair": chair,
    "screen": screen, "sphere": sphere, "plane": plane,
}


def kit_geometry(kind: str, params: dict[str, Any]) -> Geometry:
    return KIT[kind](**params)

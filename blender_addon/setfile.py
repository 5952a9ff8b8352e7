"""Set files: a declarative description of a virtual set (TOML or JSON), parsed and checked
without bpy. ``build.py`` turns a checked ``SetSpec`` into Blender objects.

Space is the project's canonical space: right-handed, **Y up**, lengths in the set's ``units``
(converted to metres here), angles in degrees. See ``docs/blender.md`` for the reference and
``examples/diner.toml`` for a complete set. Every error names the entry and the field::

    set file diner.toml: props[3] (id 'table2'): field 'kit': unknown kit piece 'tabel' ...
"""

from __future__ import annotations

import hashlib
import json
import math
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import SetFileError
from .kit import KIT, kit_params

SET_SCHEMA = "machinima.set"
SET_VERSION = 1
UNITS = {"m": 1.0, "cm": 0.01, "mm": 0.001, "ft": 0.3048, "in": 0.0254}
LIGHT_TYPES = ("sun", "area", "point", "spot")
OPENING_KINDS = ("door", "window")
ASSET_SUFFIXES = (".glb", ".gltf", ".fbx", ".blend")
EXAMPLE_SET = Path(__file__).parent / "examples" / "diner.toml"


@dataclass
class MaterialSpec:
    id: str
    color: tuple[float, float, float, float] = (0.8, 0.8, 0.8, 1.0)
    roughness: float = 0.5
    metallic: float = 0.0
    texture: str | None = None  # absolute path once parsed
    emission: float = 0.0


@dataclass
class OpeningSpec:
    kind: str
    at: float  # distance from the wall's start to the opening's left edge (m)
    width: float
    height: float
    sill: float = 0.0


@dataclass
class WallSpec:
    id: str
    start: tuple[float, float]  # (x, z) on the floor
    end: tuple[float, float]
    height: float = 3.0
    thickness: float = 0.2
    material: str | None = None
    group: str | None = None
    openings: list[OpeningSpec] = field(default_factory=list)

    @property
    def length(self) -> float:
        return math.hypot(self.end[0] - self.start[0], self.end[1] - self.start[1])


@dataclass
class FloorSpec:
    size: tuple[float, float] = (10.0, 10.0)  # (x, z) extent
    position: tuple[float, float, float] = (0.0, 0.0, 0.0)
    material: str | None = None


@dataclass
class PropSpec:
    id: str
    kit: str | None = None
    asset: str | None = None  # absolute path once parsed
    object: str | None = None  # for .blend assets: the object to append (default: all)
    position: tuple[float, float, float] = (0.0, 0.0, 0.0)
    rotation: tuple[float, float, float] = (0.0, 0.0, 0.0)
    scale: tuple[float, float, float] = (1.0, 1.0, 1.0)
    material: str | None = None
    group: str | None = None
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class LightSpec:
    id: str
    type: str
    position: tuple[float, float, float] = (0.0, 3.0, 0.0)
    target: tuple[float, float, float] | None = None
    energy: float = 100.0  # W for point/spot/area, W/m^2 (strength) for sun
    color: tuple[float, float, float] = (1.0, 1.0, 1.0)
    size: float = 0.25
    spot_size: float = 45.0


@dataclass
class WorldSpec:
    color: tuple[float, float, float] = (0.05, 0.05, 0.06)
    strength: float = 1.0
    hdri: str | None = None


@dataclass
class CameraSpec:
    id: str
    position: tuple[float, float, float] = (0.0, 1.6, 5.0)
    target: tuple[float, float, float] = (0.0, 1.2, 0.0)
    lens: float = 35.0
    sensor: float = 36.0
    clip: tuple[float, float] = (0.1, 1000.0)


@dataclass
class SetSpec:
    name: str
    path: Path | None = None
    units: str = "m"
    materials: dict[str, MaterialSpec] = field(default_factory=dict)
    floor: FloorSpec | None = None
    walls: list[WallSpec] = field(default_factory=list)
    props: list[PropSpec] = field(default_factory=list)
    lights: list[LightSpec] = field(default_factory=list)
    world: WorldSpec = field(default_factory=WorldSpec)
    cameras: list[CameraSpec] = field(default_factory=list)

    def entries(self) -> list[tuple[str, Any]]:
        """(set id, spec) of every object the set makes, in build order."""
        out: list[tuple[str, Any]] = []
        if self.floor:
            out.append(("floor", self.floor))
        out += [(f"walls/{w.id}", w) for w in self.walls]
        out += [(f"props/{p.id}", p) for p in self.props]
        out += [(f"lights/{l.id}", l) for l in self.lights]
        out += [(f"cameras/{c.id}", c) for c in self.cameras]
        return out

    def groups(self) -> list[str]:
        return sorted({x.group for x in [*self.walls, *self.props] if x.group})


def spec_hash(spec: Any) -> str:
    """Stable hash of one entry (what a rebuild compares to skip unchanged objects)."""
    return hashlib.sha1(json.dumps(asdict(spec), sort_keys=True, default=str).encode()).hexdigest()[:16]


# --- parsing ----------------------------------------------------------------------------------
class _Entry:
    """Field access for one entry that turns every problem into a SetFileError naming it."""

    def __init__(self, where: str, doc: Any, file: str, scale: float) -> None:
        self.where = where
        self.file = file
        self.scale = scale
        if not isinstance(doc, dict):
            self.fail(None, f"must be a table, got {type(doc).__name__}")
        self.doc = doc
        self.used: set[str] = set()

    def fail(self, name: str | None, msg: str) -> None:
        fld = f": field {name!r}" if name else ""
        raise SetFileError(f"set file {self.file}: {self.where}{fld}: {msg}")

    def has(self, name: str) -> bool:
        return name in self.doc

    def raw(self, name: str, default: Any = None) -> Any:
        self.used.add(name)
        return self.doc.get(name, default)

    def str(self, name: str, default: str | None = None, *, required: bool = False, choices: tuple[str, ...] | None = None) -> str | None:
        v = self.raw(name, default)
        if v is None:
            if required:
                self.fail(name, "is required")
            return None
        if not isinstance(v, str) or not v.strip():
            self.fail(name, f"expected a non-empty string, got {v!r}")
        if choices and v not in choices:
            self.fail(name, f"{v!r} is not one of {', '.join(choices)}")
        return v

    def num(self, name: str, default: float | None = None, *, length: bool = False, min: float | None = None,
            positive: bool = False, required: bool = False) -> float:
        v = self.raw(name, default)
        if v is None:
            self.fail(name, "is required")
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            self.fail(name, f"expected a number, got {v!r}")
        if positive and v <= 0:
            self.fail(name, f"must be greater than 0, got {v}")
        if min is not None and v < min:
            self.fail(name, f"must be at least {min}, got {v}")
        return float(v) * (self.scale if length and name in self.doc else 1.0)

    def vec(self, name: str, n: int, default: tuple | None = None, *, length: bool = False, positive: bool = False,
            required: bool = False, allow_scalar: bool = False) -> tuple | None:
        v = self.raw(name, None)
        if v is None:
            if required:
                self.fail(name, f"is required ({n} numbers)")
            return default
        if allow_scalar and isinstance(v, (int, float)) and not isinstance(v, bool):
            v = [v] * n
        if not isinstance(v, (list, tuple)) or len(v) != n or not all(
            isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in v
        ):
            self.fail(name, f"expected {n} numbers, got {v!r}")
        if positive and any(x <= 0 for x in v):
            self.fail(name, f"every value must be greater than 0, got {v!r}")
        s = self.scale if length else 1.0
        return tuple(float(x) * s for x in v)

    def color(self, name: str, default: tuple) -> tuple:
        v = self.raw(name, None)
        if v is None:
            return default
        if isinstance(v, str):
            h = v.lstrip("#")
            if len(h) not in (6, 8) or any(c not in "0123456789abcdefABCDEF" for c in h):
                self.fail(name, f"expected '#rrggbb' or 3-4 numbers in 0..1, got {v!r}")
            vals = [int(h[i:i + 2], 16) / 255.0 for i in range(0, len(h), 2)]
            vals = [_srgb_to_linear(c) for c in vals[:3]] + vals[3:]
        elif isinstance(v, (list, tuple)) and len(v) in (3, 4) and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v):
            vals = [float(x) for x in v]
            if any(x < 0 for x in vals):
                self.fail(name, f"colour values must be >= 0, got {v!r}")
        else:
            self.fail(name, f"expected '#rrggbb' or 3-4 numbers in 0..1, got {v!r}")
        if len(default) == 4 and len(vals) == 3:
            vals.append(1.0)
        return tuple(vals[: len(default)])

    def path(self, name: str, base: Path | None, suffixes: tuple[str, ...] | None = None) -> str | None:
        v = self.str(name)
        if v is None:
            return None
        p = Path(v).expanduser()
        if not p.is_absolute() and base is not None:
            p = base / p
        if suffixes and p.suffix.lower() not in suffixes:
            self.fail(name, f"{v!r}: expected a {'/'.join(suffixes)} file")
        if not p.exists():
            self.fail(name, f"file {p} does not exist (paths are relative to the set file)")
        return str(p.resolve())

    def done(self, allowed_extra: tuple[str, ...] = ()) -> None:
        extra = set(self.doc) - self.used - set(allowed_extra)
        if extra:
            self.fail(sorted(extra)[0], "unknown field" + (f"s {sorted(extra)}" if len(extra) > 1 else ""))


def _srgb_to_linear(c: float) -> float:
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


def _entry_id(e: _Entry, seen: set[str], kind: str) -> str:
    ident = e.str("id", required=True)
    assert ident is not None
    if "/" in ident:
        e.fail("id", f"{ident!r} must not contain '/'")
    if ident in seen:
        e.fail("id", f"duplicate {kind} id {ident!r}")
    seen.add(ident)
    e.where = f"{e.where} (id {ident!r})"
    return ident


def _list(doc: dict, key: str, file: str) -> list:
    v = doc.get(key, [])
    if not isinstance(v, list):
        raise SetFileError(f"set file {file}: {key!r} must be an array of tables ([[{key}]]), got {type(v).__name__}")
    return v


def load_set(path: str | Path) -> SetSpec:
    """Read and check a .toml or .json set file."""
    from machinima.examples import resolve

    path = resolve(path, EXAMPLE_SET.parent, "set", SetFileError)  # a path, or a shipped set's name (diner)
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix.lower() == ".json":
            doc = json.loads(text)
        else:
            doc = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SetFileError(f"set file {path.name} cannot be parsed: {exc}") from None
    return parse_set(doc, base=path.parent.resolve(), file=path.name, path=path.resolve())


def parse_set(doc: Any, *, base: Path | None = None, file: str = "<set>", path: Path | None = None) -> SetSpec:
    if not isinstance(doc, dict):
        raise SetFileError(f"set file {file}: the top level must be a table")
    known = {"set", "materials", "floor", "walls", "props", "lights", "world", "cameras"}
    extra = set(doc) - known
    if extra:
        raise SetFileError(f"set file {file}: unknown section {sorted(extra)[0]!r}; sections: {', '.join(sorted(known))}")
    head = _Entry("[set]", doc.get("set", {}), file, 1.0)
    name = head.str("name", path.stem if path else "set")
    units = head.str("units", "m", choices=tuple(UNITS))
    version = head.num("version", SET_VERSION)
    if int(version) > SET_VERSION:
        head.fail("version", f"set file version {int(version)} is newer than this add-on ({SET_VERSION}); update machinima")
    head.done()
    scale = UNITS[units or "m"]
    spec = SetSpec(name=name or "set", path=path, units=units or "m")

    mats = doc.get("materials", {})
    if not isinstance(mats, dict):
        raise SetFileError(f"set file {file}: 'materials' must be a table of [materials.<id>] tables")
    for mid, mdoc in mats.items():
        e = _Entry(f"materials.{mid}", mdoc, file, 1.0)
        spec.materials[mid] = MaterialSpec(
            id=mid, color=e.color("color", (0.8, 0.8, 0.8, 1.0)), roughness=e.num("roughness", 0.5, min=0.0),
            metallic=e.num("metallic", 0.0, min=0.0), texture=e.path("texture", base), emission=e.num("emission", 0.0, min=0.0),
        )
        e.done()

    def material(e: _Entry) -> str | None:
        m = e.str("material")
        if m is not None and m not in spec.materials:
            e.fail("material", f"unknown material {m!r}; materials: {', '.join(sorted(spec.materials)) or '(none defined)'}")
        return m

    if "floor" in doc:
        e = _Entry("[floor]", doc["floor"], file, scale)
        spec.floor = FloorSpec(size=e.vec("size", 2, (10.0, 10.0), length=True, positive=True),
                               position=e.vec("position", 3, (0.0, 0.0, 0.0), length=True), material=material(e))
        e.done()

    seen: set[str] = set()
    for i, wdoc in enumerate(_list(doc, "walls", file)):
        e = _Entry(f"walls[{i}]", wdoc, file, scale)
        wid = _entry_id(e, seen, "wall")
        start = e.vec("from", 2, required=True, length=True)
        end = e.vec("to", 2, required=True, length=True)
        wall = WallSpec(id=wid, start=start, end=end, height=e.num("height", 3.0, length=True, positive=True),
                        thickness=e.num("thickness", 0.2, length=True, positive=True), material=material(e), group=e.str("group"))
        if wall.length < 1e-6:
            e.fail("to", "the wall has zero length ('from' and 'to' are the same point)")
        ops = e.raw("openings", [])
        if not isinstance(ops, list):
            e.fail("openings", "expected an array of tables")
        for j, odoc in enumerate(ops):
            oe = _Entry(f"{e.where}.openings[{j}]", odoc, file, scale)
            kind = oe.str("kind", "door", choices=OPENING_KINDS)
            op = OpeningSpec(kind=kind or "door", at=oe.num("at", required=True, length=True, min=0.0),
                             width=oe.num("width", 0.9, length=True, positive=True),
                             height=oe.num("height", 2.1 if kind == "door" else 1.2, length=True, positive=True),
                             sill=oe.num("sill", 0.0 if kind == "door" else 0.9, length=True, min=0.0))
            if op.at + op.width > wall.length + 1e-6:
                oe.fail("width", f"the opening ends at {op.at + op.width:.3f} m, past the wall's length {wall.length:.3f} m")
            if op.sill + op.height > wall.height + 1e-6:
                oe.fail("height", f"the opening's top {op.sill + op.height:.3f} m is above the wall's height {wall.height:.3f} m")
            for other in wall.openings:
                if op.at < other.at + other.width and other.at < op.at + op.width:
                    oe.fail("at", f"the opening overlaps the one at {other.at:.3f} m")
            wall.openings.append(op)
            oe.done()
        e.done()
        spec.walls.append(wall)

    seen = set()
    for i, pdoc in enumerate(_list(doc, "props", file)):
        e = _Entry(f"props[{i}]", pdoc, file, scale)
        pid = _entry_id(e, seen, "prop")
        kit = e.str("kit")
        asset = e.path("asset", base, ASSET_SUFFIXES)
        if (kit is None) == (asset is None):
            e.fail("kit", "give exactly one of 'kit' (a procedural piece) or 'asset' (a .glb/.fbx/.blend path)")
        if kit is not None and kit not in KIT:
            e.fail("kit", f"unknown kit piece {kit!r}; kit pieces: {', '.join(sorted(KIT))}")
        prop = PropSpec(id=pid, kit=kit, asset=asset, object=e.str("object"),
                        position=e.vec("position", 3, (0.0, 0.0, 0.0), length=True),
                        rotation=e.vec("rotation", 3, (0.0, 0.0, 0.0)),
                        scale=e.vec("scale", 3, (1.0, 1.0, 1.0), positive=True, allow_scalar=True),
                        material=material(e), group=e.str("group"))
        if kit is not None:
            given = {k: e.raw(k) for k in list(e.doc) if k not in e.used}
            try:
                prop.params = kit_params(kit, given, scale)
            except ValueError as exc:
                fld, _, msg = str(exc).partition(": ")
                e.fail(fld, msg)
        e.done()
        spec.props.append(prop)

    seen = set()
    for i, ldoc in enumerate(_list(doc, "lights", file)):
        e = _Entry(f"lights[{i}]", ldoc, file, scale)
        lid = _entry_id(e, seen, "light")
        ltype = e.str("type", required=True, choices=LIGHT_TYPES)
        light = LightSpec(id=lid, type=ltype or "point", position=e.vec("position", 3, (0.0, 3.0, 0.0), length=True),
                          target=e.vec("target", 3, None, length=True), energy=e.num("energy", 3.0 if ltype == "sun" else 100.0, min=0.0),
                          color=e.color("color", (1.0, 1.0, 1.0)), size=e.num("size", 0.25, length=True, positive=True),
                          spot_size=e.num("spot_size", 45.0, positive=True))
        if light.spot_size > 180:
            e.fail("spot_size", f"must be at most 180 degrees, got {light.spot_size}")
        if light.target is not None and _dist(light.target, light.position) < 1e-6:
            e.fail("target", "is the same point as 'position'")
        e.done()
        spec.lights.append(light)

    if "world" in doc:
        e = _Entry("[world]", doc["world"], file, 1.0)
        spec.world = WorldSpec(color=e.color("color", (0.05, 0.05, 0.06)), strength=e.num("strength", 1.0, min=0.0),
                               hdri=e.path("hdri", base, (".hdr", ".exr", ".png", ".jpg", ".jpeg")))
        e.done()

    seen = set()
    for i, cdoc in enumerate(_list(doc, "cameras", file)):
        e = _Entry(f"cameras[{i}]", cdoc, file, scale)
        cid = _entry_id(e, seen, "camera")
        cam = CameraSpec(id=cid, position=e.vec("position", 3, (0.0, 1.6, 5.0), length=True, required=True),
                         target=e.vec("target", 3, (0.0, 1.2, 0.0), length=True, required=True),
                         lens=e.num("lens", 35.0, positive=True), sensor=e.num("sensor", 36.0, positive=True),
                         clip=e.vec("clip", 2, (0.1, 1000.0), length=True, positive=True))
        if cam.clip[0] >= cam.clip[1]:
            e.fail("clip", f"near {cam.clip[0]} must be less than far {cam.clip[1]}")
        if _dist(cam.position, cam.target) < 1e-6:
            e.fail("target", "is the same point as 'position'")
        e.done()
        spec.cameras.append(cam)
    return spec


def _dist(a: tuple, b: tuple) -> float:
    return math.sqrt(sum((x - y) ** 2 for x, y in zip(a, b)))


# --- writing back -----------------------------------------------------------------------------
def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(round(float(v), 4)) if isinstance(v, float) else str(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {v!r} to TOML")


def append_prop(path: str | Path, entry: dict[str, Any]) -> SetSpec:
    """Append one prop entry to a set file and return the re-checked set.

    TOML files get a ``[[props]]`` table appended at the end, so comments and layout stay as the
    artist wrote them; JSON files are rewritten. The entry is checked first (with the rest of the
    set), so a bad entry never reaches the file.
    """
    from machinima.fsutil import atomic_write_text

    path = Path(path)
    spec = load_set(path)
    if any(p.id == entry.get("id") for p in spec.props):
        raise SetFileError(f"set file {path.name}: a prop with id {entry.get('id')!r} already exists")
    if path.suffix.lower() == ".json":
        doc = json.loads(path.read_text(encoding="utf-8"))
        doc.setdefault("props", []).append(entry)
        parse_set(doc, base=path.parent.resolve(), file=path.name, path=path.resolve())
        atomic_write_text(path, json.dumps(doc, indent=2) + "\n")
    else:
        text = path.read_text(encoding="utf-8")
        block = "\n[[props]]\n" + "".join(f"{k} = {_toml_value(v)}\n" for k, v in entry.items())
        new = text + ("" if text.endswith("\n") else "\n") + block
        parse_set(tomllib.loads(new), base=path.parent.resolve(), file=path.name, path=path.resolve())
        atomic_write_text(path, new)
    return load_set(path)


def next_prop_id(spec: SetSpec, stem: str) -> str:
    ids = {p.id for p in spec.props}
    n = 1
    while f"{stem}{n}" in ids:
        n += 1
    return f"{stem}{n}"

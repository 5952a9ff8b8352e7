"""The mapping file: which engines to drive, and which performer drives which avatar there.

    schema = "machinima.bridge.mapping"
    version = 1

    [[engine]]                 # one table per engine; several engines at once
    name = "unity"             # a label for reports
    target = "vmc"             # vmc | vrchat | plugin | any registered target
    host = "127.0.0.1"
    port = 39539
    rate = 60                  # Hz; default: the take's fps (playback) or 60 (live)

      [[engine.avatar]]
      performer = "alice"      # performer name in the take / on the stage
      avatar = "Alice"         # the avatar's name in the engine (reported to plugins)
      bones = ["Hips", "Spine", "Head"]   # optional subset; default: every bone
      port = 39540             # optional per-avatar port (VMC carries one avatar per port)

See docs/engine_bridge.md for the VRChat tracker tables and calibration. Loading checks every
field first: an unknown bone, target or key is a ``MappingError`` that names it.
"""

from __future__ import annotations

import difflib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from machinima.skeleton import BONE_INDEX, BONES

from .errors import MappingError, PerformerMissingError

SCHEMA = "machinima.bridge.mapping"
VERSION = 1
TRACKER_SLOTS = tuple(str(i) for i in range(1, 9)) + ("head",)
EXAMPLES_DIR = Path(__file__).parent / "examples"
DEFAULT_TRACKERS = {"1": "Hips", "2": "LeftFoot", "3": "RightFoot", "head": "Head"}

_ENGINE_KEYS = {"name", "target", "host", "port", "rate", "avatar", "calibration", "options"}
_AVATAR_KEYS = {"performer", "avatar", "bones", "port", "trackers", "offsets", "blendshapes"}


@dataclass
class AvatarMap:
    performer: str
    avatar: str
    bones: tuple[str, ...] | None = None  # None: every bone
    port: int | None = None
    trackers: dict[str, str] = field(default_factory=dict)  # VRChat slot -> bone
    offsets: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # slot -> position/rotation_deg
    blendshapes: bool = True

    def bone_indices(self) -> list[int]:
        return [BONE_INDEX[b] for b in (self.bones or BONES)]


@dataclass
class EngineMap:
    name: str
    target: str
    host: str = "127.0.0.1"
    port: int = 39539
    rate: float | None = None
    avatars: list[AvatarMap] = field(default_factory=list)
    calibration: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class Mapping:
    engines: list[EngineMap]

    def performers(self) -> list[str]:
        seen: list[str] = []
        for e in self.engines:
            for a in e.avatars:
                if a.performer not in seen:
                    seen.append(a.performer)
        return seen

    def udp_targets(self) -> list[tuple[str, str, int]]:
        """(engine name, host, port) of every UDP destination (VMC avatars, VRChat)."""
        out = []
        for e in self.engines:
            if e.target == "vrchat":
                out.append((e.name, e.host, e.port))
            elif e.target == "vmc":
                out += sorted({(e.name, e.host, a.port or e.port) for a in e.avatars})
        return out

    def check_performers(self, available: Iterable[str], where: str) -> None:
        """Every performer the mapping asks for must exist in ``available`` (names ``where``)."""
        have = list(available)
        for e in self.engines:
            for a in e.avatars:
                if a.performer not in have:
                    raise PerformerMissingError(
                        f"engine {e.name!r} maps performer {a.performer!r} to avatar {a.avatar!r}, but {where} has no such performer",
                        hint=f"performers there: {', '.join(have) or 'none'}; fix the mapping file",
                    )


def check_bone(name: Any, where: str) -> str:
    if not isinstance(name, str) or name not in BONE_INDEX:
        close = difflib.get_close_matches(str(name), BONES, n=1)
        hint = f"did you mean {close[0]!r}?" if close else "bones are Unity HumanBodyBones names, e.g. 'Hips', 'LeftUpperArm'"
        raise MappingError(f"{where}: unknown bone {name!r}", hint=hint)
    return name


def _port(value: Any, where: str, *, listen: bool = False) -> int:
    low = 0 if listen else 1  # a port we listen on may be 0: the system picks a free one
    if not isinstance(value, int) or isinstance(value, bool) or not (low <= value <= 65535):
        raise MappingError(f"{where}: port must be an integer {low}..65535, got {value!r}")
    return value


def _unknown(keys: Iterable[str], allowed: set[str], where: str) -> None:
    extra = sorted(set(keys) - allowed)
    if extra:
        raise MappingError(f"{where}: unknown key {extra[0]!r}", hint=f"allowed keys: {', '.join(sorted(allowed))}")


def parse_address(text: str, default_port: int, what: str = "address", *, listen: bool = False) -> tuple[str, int]:
    """``HOST:PORT`` / ``HOST`` / ``:PORT`` -> (host, port)."""
    host, sep, port = str(text).rpartition(":")
    if not sep:
        host, port = str(text), str(default_port)
    try:
        p = int(port)
    except ValueError:
        raise MappingError(f"{what} {text!r}: port {port!r} is not a number", hint="write HOST:PORT, e.g. 127.0.0.1:39539") from None
    return host or "127.0.0.1", _port(p, f"{what} {text!r}", listen=listen)


def _avatar(doc: Any, engine: str, target: str, i: int) -> AvatarMap:
    where = f"engine {engine!r}, avatar #{i + 1}"
    if not isinstance(doc, dict):
        raise MappingError(f"{where}: expected a table")
    _unknown(doc, _AVATAR_KEYS, where)
    performer = doc.get("performer")
    if not isinstance(performer, str) or not performer:
        raise MappingError(f"{where}: 'performer' is missing (the performer's name in the take)")
    where = f"engine {engine!r}, avatar of performer {performer!r}"
    avatar = doc.get("avatar", performer)
    if not isinstance(avatar, str):
        raise MappingError(f"{where}: 'avatar' must be a string")
    bones = doc.get("bones")
    if bones is not None:
        if not isinstance(bones, list) or not bones:
            raise MappingError(f"{where}: 'bones' must be a non-empty list of bone names")
        bones = tuple(check_bone(b, where) for b in bones)
    port = _port(doc["port"], where) if "port" in doc else None
    trackers: dict[str, str] = {}
    if target == "vrchat" or "trackers" in doc:
        raw = doc.get("trackers", DEFAULT_TRACKERS)
        if not isinstance(raw, dict) or not raw:
            raise MappingError(f"{where}: 'trackers' must be a table like {{ 1 = \"Hips\", head = \"Head\" }}")
        for slot, bone in raw.items():
            if str(slot) not in TRACKER_SLOTS:
                raise MappingError(f"{where}: tracker slot {slot!r} does not exist", hint="VRChat has trackers 1..8 and 'head'")
            trackers[str(slot)] = check_bone(bone, f"{where}, tracker {slot}")
    offsets: dict[str, dict[str, list[float]]] = {}
    for slot, off in dict(doc.get("offsets", {})).items():
        if str(slot) not in trackers:
            raise MappingError(f"{where}: offset for tracker {slot!r}, which is not mapped")
        if not isinstance(off, dict):
            raise MappingError(f"{where}: offset of tracker {slot} must be a table with position / rotation_deg")
        _unknown(off, {"position", "rotation_deg"}, f"{where}, offset of tracker {slot}")
        offsets[str(slot)] = {k: _vec3(v, f"{where}, offset {slot}.{k}") for k, v in off.items()}
    blend = doc.get("blendshapes", True)
    if not isinstance(blend, bool):
        raise MappingError(f"{where}: 'blendshapes' must be true or false")
    return AvatarMap(performer, avatar, bones, port, trackers, offsets, blend)


def _vec3(v: Any, where: str) -> list[float]:
    if not isinstance(v, list) or len(v) != 3 or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v):
        raise MappingError(f"{where}: expected three numbers [x, y, z], got {v!r}")
    return [float(x) for x in v]


def check_calibration(cal: Any, where: str) -> dict[str, Any]:
    if not isinstance(cal, dict):
        raise MappingError(f"{where}: 'calibration' must be a table")
    _unknown(cal, {"position", "yaw_deg", "scale"}, f"{where}, calibration")
    out: dict[str, Any] = {"position": [0.0, 0.0, 0.0], "yaw_deg": 0.0, "scale": 1.0}
    if "position" in cal:
        out["position"] = _vec3(cal["position"], f"{where}, calibration.position")
    for key in ("yaw_deg", "scale"):
        if key in cal:
            v = cal[key]
            if not isinstance(v, (int, float)) or isinstance(v, bool):
                raise MappingError(f"{where}: calibration.{key} must be a number")
            out[key] = float(v)
    if out["scale"] <= 0:
        raise MappingError(f"{where}: calibration.scale must be positive", hint="avatar height / performer height, e.g. 1.1")
    return out


def parse_mapping(doc: Any, where: str = "mapping") -> Mapping:
    """Validate a mapping document (the parsed TOML) field by field."""
    from .targets import known_targets

    if not isinstance(doc, dict):
        raise MappingError(f"{where}: expected a TOML document")
    if doc.get("schema", SCHEMA) != SCHEMA:
        raise MappingError(f"{where}: schema is {doc.get('schema')!r}, expected {SCHEMA!r}")
    version = doc.get("version", VERSION)
    if not isinstance(version, int) or version > VERSION or version < 1:
        raise MappingError(f"{where}: mapping version {version!r} is not understood (this machinima reads version {VERSION})")
    _unknown(doc, {"schema", "version", "engine"}, where)
    engines_doc = doc.get("engine")
    if not isinstance(engines_doc, list) or not engines_doc:
        raise MappingError(f"{where}: no [[engine]] tables", hint="add at least one [[engine]] with a target, host and port")
    targets = known_targets()
    engines: list[EngineMap] = []
    names: set[str] = set()
    for i, e in enumerate(engines_doc):
        if not isinstance(e, dict):
            raise MappingError(f"{where}: engine #{i + 1} must be a table")
        name = str(e.get("name", f"engine{i + 1}"))
        ew = f"{where}: engine {name!r}"
        if name in names:
            raise MappingError(f"{ew}: the name is used twice")
        names.add(name)
        _unknown(e, _ENGINE_KEYS, ew)
        target = e.get("target")
        if target not in targets:
            raise MappingError(f"{ew}: unknown target {target!r}", hint=f"targets: {', '.join(sorted(targets))}")
        default_port = {"vmc": 39539, "vrchat": 9000, "plugin": 8770}.get(target, 0)
        port = _port(e.get("port", default_port), ew, listen=target not in ("vmc", "vrchat"))  # 0: listen anywhere / no port
        host = e.get("host", "127.0.0.1")
        if not isinstance(host, str) or not host:
            raise MappingError(f"{ew}: 'host' must be a host name or address")
        rate = e.get("rate")
        if rate is not None and (not isinstance(rate, (int, float)) or isinstance(rate, bool) or not (0 < rate <= 1000)):
            raise MappingError(f"{ew}: rate must be a number of Hz in (0, 1000], got {rate!r}")
        avatars_doc = e.get("avatar", [])
        if not isinstance(avatars_doc, list):
            raise MappingError(f"{ew}: write avatars as [[engine.avatar]] tables")
        avatars = [_avatar(a, name, target, j) for j, a in enumerate(avatars_doc)]
        if target != "plugin" and not avatars:
            raise MappingError(f"{ew}: no [[engine.avatar]]: which performer should drive it?")
        if target == "vmc":
            ports = [a.port or port for a in avatars]
            if len(set(ports)) != len(ports):
                raise MappingError(f"{ew}: two avatars on port {ports[0]}", hint="VMC carries one avatar per port: give each avatar its own 'port'")
        if target == "vrchat" and len(avatars) != 1:
            raise MappingError(f"{ew}: VRChat takes exactly one avatar (the local player)")
        cal = check_calibration(e.get("calibration", {}), ew)
        opts = e.get("options", {})
        if not isinstance(opts, dict):
            raise MappingError(f"{ew}: 'options' must be a table")
        engines.append(EngineMap(name, target, host, port, float(rate) if rate else None, avatars, cal, dict(opts)))
    return Mapping(engines)


def load_mapping(path: str | Path) -> Mapping:
    from machinima.examples import resolve

    p = resolve(path, EXAMPLES_DIR, "mapping", MappingError)  # a path, or the shipped example's name
    try:
        doc = tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise MappingError(f"{p} is not valid TOML: {exc}") from None
    return parse_mapping(doc, str(p))


def mapping_from_flags(
    performers: list[str],
    *,
    vmc: list[str] = (),
    vrchat: str | None = None,
    plugin: str | None = None,
    rate: float | None = None,
) -> Mapping:
    """The mapping that ``--vmc`` / ``--vrchat`` / ``--plugin`` flags mean.

    ``--vmc HOST:PORT`` (repeatable) sends the performers in order, one per address;
    ``--vmc NAME=HOST:PORT`` picks the performer. ``--vrchat`` drives the first performer.
    """
    if not performers:
        raise PerformerMissingError("there are no performers to send", hint="the take has no mocap streams, or nobody is on the stage")
    engines: list[EngineMap] = []
    for i, spec in enumerate(vmc):
        name, eq, addr = spec.rpartition("=")
        if not eq:
            if i >= len(performers):
                raise MappingError(f"--vmc {spec}: there is no performer #{i + 1} to send there", hint=f"performers: {', '.join(performers)}")
            name = performers[i]
        host, port = parse_address(addr, 39539, "--vmc")
        engines.append(EngineMap(f"vmc:{name}", "vmc", host, port, rate, [AvatarMap(name, name)]))
    if vrchat:
        name, eq, addr = vrchat.rpartition("=")
        host, port = parse_address(addr, 9000, "--vrchat")
        name = name if eq else performers[0]
        engines.append(EngineMap("vrchat", "vrchat", host, port, rate, [AvatarMap(name, name, trackers=dict(DEFAULT_TRACKERS))], check_calibration({}, "--vrchat")))
    if plugin:
        host, port = parse_address(plugin, 8770, "--plugin", listen=True)
        engines.append(EngineMap("plugin", "plugin", host, port, rate, [AvatarMap(p, p) for p in performers]))
    if not engines:
        raise MappingError("no engine to send to", hint="give --vmc HOST:PORT, --vrchat HOST:PORT, --plugin HOST:PORT or --mapping FILE")
    return Mapping(engines)

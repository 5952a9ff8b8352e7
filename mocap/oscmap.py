"""Generic OSC sources with mapping profiles (TOML), parsed with python-osc.

A profile says which OSC addresses carry which performer, bone and channels, in what units
and axes. Shipped profiles live in ``mocap/profiles/`` (``machinima mocap profiles`` lists
them); a user's own profile is any TOML file of the same shape::

    schema = "machinima.oscmap"
    version = 1
    name = "plain"
    description = "one message per bone: /bone/<Name> px py pz qx qy qz qw"
    units = "m"              # m | cm | mm                (positions)
    space = "canonical"      # canonical | unity | zup | unreal
                             # (zup: right-handed Z up, X forward, Y left, as Xsens;
                             #  unreal: left-handed Z up, X forward, Y right, centimetres usual)
    rotation = "quat"        # quat (channel names give the order, e.g. qw first) |
                             # euler_deg_XYZ (any order of X, Y, Z; channels rx ry rz)
    transforms = "local"     # local (parent-relative) | global (world)
    performer = "osc"        # default performer name when the address carries none

    [[route]]
    address = "/bone/{bone}"              # {performer} and {bone} capture one path segment
    args = ["px", "py", "pz", "qx", "qy", "qz", "qw"]   # channels; "bone", "performer",
                                          # "time" (sender seconds) and "_" (skip) are allowed
    [[route]]
    address = "/frame"
    frame_end = true                      # ends the current frame of that performer

    [bones]                               # source bone name -> canonical (Unity) name;
    hip = "Hips"                          # without this table names must be canonical

    [rest]                                # optional: world rotation (x, y, z, w) of a
    Hips = [0, 0, 0, 1]                   # source bone in its T-pose (retarget offsets)

A frame ends at a ``frame_end`` route, at the end of a bundle, when a bone repeats, or when
the performer has been quiet for ``idle_ms`` (``poll``; ``flush`` at stream end).
Rejections: ``bad_packet`` (python-osc cannot parse it), ``unmatched`` (no route),
``bad_args`` (argument count or types), ``nonfinite``, ``unknown_bone``, ``flood``.
"""

from __future__ import annotations

import logging
import math
import re
import time
import tomllib
from collections import Counter
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from machinima import quat
from machinima.skeleton import BONE_INDEX, BONES, POSE_WIDTH, unity_to_canonical

from .errors import ProfileError
from .frames import Frame, new_pose
from .retarget import Calibration, local_from_global, zup_to_canonical
from .sources import RateLimiter

SCHEMA = "machinima.oscmap"
VERSION = 1
CHANNELS = {"px", "py", "pz", "qx", "qy", "qz", "qw", "rx", "ry", "rz", "bone", "performer", "time", "_"}
UNITS = {"m": 1.0, "cm": 0.01, "mm": 0.001}
SPACES = ("canonical", "unity", "zup", "unreal")
_ROT_RE = re.compile(r"^(quat|quat_xyzw|quat_wxyz|euler_deg_([XYZ]{3}))$")


@dataclass
class Route:
    address: str
    pattern: re.Pattern
    args: tuple[str, ...]
    frame_end: bool = False


@dataclass
class Profile:
    name: str
    description: str
    units: float
    space: str
    rotation: str
    transforms: str
    performer: str
    routes: list[Route]
    bones: dict[str, str] | None
    rest: dict[str, tuple[float, float, float, float]] = field(default_factory=dict)
    path: str = ""

    def canonical_bone(self, name: str) -> int | None:
        target = self.bones.get(name) if self.bones is not None else name
        return BONE_INDEX.get(target) if target else None


def _compile(address: str, where: str) -> re.Pattern:
    if not address.startswith("/"):
        raise ProfileError(f"{where}: field 'address' must start with '/', got {address!r}")
    parts = re.split(r"(\{[a-z]+\})", address)
    rx = ""
    for p in parts:
        if p in ("{bone}", "{performer}"):
            rx += f"(?P<{p[1:-1]}>[^/]+)"
        elif p.startswith("{"):
            raise ProfileError(f"{where}: unknown capture {p} in address (use {{bone}} or {{performer}})")
        else:
            rx += re.escape(p)
    return re.compile("^" + rx + "$")


def load_profile(source: str | Path) -> Profile:
    """A profile from a file path, or a shipped profile by name (``moveai``, ``rokoko``...)."""
    path = Path(source)
    if not path.suffix and not path.exists():
        shipped = resources.files("mocap") / "profiles" / f"{source}.toml"
        if not shipped.is_file():
            raise ProfileError(f"no OSC profile {source!r}", hint=f"shipped: {', '.join(shipped_profiles())}; or give a .toml path")
        text, where = shipped.read_text(encoding="utf-8"), f"profiles/{source}.toml"
    else:
        try:
            text, where = path.read_text(encoding="utf-8"), str(path)
        except FileNotFoundError:
            raise ProfileError(f"no OSC profile file at {path}") from None
        except UnicodeDecodeError:
            raise ProfileError(f"{path} is not a UTF-8 TOML file") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{where}: not valid TOML: {exc}") from None
    return parse_profile(doc, where)


def parse_profile(doc: dict, where: str = "profile") -> Profile:
    if doc.get("schema") != SCHEMA:
        raise ProfileError(f"{where}: field 'schema' must be {SCHEMA!r}")
    if doc.get("version") != VERSION:
        raise ProfileError(f"{where}: field 'version' must be {VERSION}, got {doc.get('version')!r}")

    def s(field_: str, default: str | None = None) -> str:
        v = doc.get(field_, default)
        if not isinstance(v, str):
            raise ProfileError(f"{where}: field '{field_}' must be a string")
        return v

    units = s("units", "m")
    if units not in UNITS:
        raise ProfileError(f"{where}: field 'units' is {units!r}; one of {', '.join(UNITS)}")
    space = s("space", "canonical")
    if space not in SPACES:
        raise ProfileError(f"{where}: field 'space' is {space!r}; one of {', '.join(SPACES)}")
    rotation = s("rotation", "quat")
    if not _ROT_RE.match(rotation):
        raise ProfileError(f"{where}: field 'rotation' is {rotation!r}; quat or euler_deg_XYZ (any axis order)")
    transforms = s("transforms", "local")
    if transforms not in ("local", "global"):
        raise ProfileError(f"{where}: field 'transforms' must be 'local' or 'global'")
    routes_doc = doc.get("route")
    if not isinstance(routes_doc, list) or not routes_doc:
        raise ProfileError(f"{where}: needs at least one [[route]]")
    routes = []
    for k, r in enumerate(routes_doc):
        rw = f"{where}: route[{k}]"
        if not isinstance(r, dict) or not isinstance(r.get("address"), str):
            raise ProfileError(f"{rw}: field 'address' is missing")
        args = r.get("args", [])
        if not isinstance(args, list) or any(a not in CHANNELS for a in args):
            raise ProfileError(f"{rw}: field 'args' must list channels from {sorted(CHANNELS)}")
        frame_end = bool(r.get("frame_end", False))
        pat = _compile(r["address"], rw)
        if not frame_end and "bone" not in pat.groupindex and "bone" not in args:
            raise ProfileError(f"{rw}: a data route needs {{bone}} in its address or 'bone' in its args")
        routes.append(Route(r["address"], pat, tuple(args), frame_end))
    routes.sort(key=lambda r: not r.frame_end)  # frame markers first: they are the specific ones
    bones = doc.get("bones")
    if bones is not None:
        if not isinstance(bones, dict):
            raise ProfileError(f"{where}: [bones] must be a table of source name = canonical name")
        for src, dst in bones.items():
            if dst not in BONE_INDEX:
                raise ProfileError(f"{where}: bones.{src} = {dst!r} is not a canonical bone", hint="canonical names are Unity HumanBodyBones, e.g. 'LeftUpperArm'")
    rest = {}
    for b, q in (doc.get("rest") or {}).items():
        if b not in BONE_INDEX or not isinstance(q, list) or len(q) != 4:
            raise ProfileError(f"{where}: rest.{b} must name a canonical bone and give [x, y, z, w]")
        rest[b] = tuple(float(x) for x in q)
    return Profile(s("name", Path(where).stem), s("description", ""), UNITS[units], space, rotation, transforms,
                   s("performer", "osc"), routes, dict(bones) if bones is not None else None, rest, where)


def shipped_profiles() -> list[str]:
    return sorted(p.name[:-5] for p in (resources.files("mocap") / "profiles").iterdir() if p.name.endswith(".toml"))


class _Perf:
    __slots__ = ("pos", "rot", "present", "has_pos", "touched", "pending", "time", "last_ns")

    def __init__(self) -> None:
        base = new_pose()
        self.pos = base[:, :3].astype(np.float64)
        self.rot = base[:, 3:7].astype(np.float64)
        self.present = np.zeros(len(BONES), bool)
        self.has_pos = np.zeros(len(BONES), bool)
        self.touched: set[int] = set()
        self.pending = False
        self.time: float | None = None
        self.last_ns = 0


class OSCMapSource:
    """Generic OSC source driven by a ``Profile``; packets are parsed with python-osc."""

    kind = "osc"

    def __init__(self, name: str = "osc", *, profile: str | Path | Profile = "plain", max_packets_per_s: float = 50000.0, max_performers: int = 32,
                 idle_ms: float = 50.0) -> None:
        self.name = name
        self.idle_ns = int(idle_ms * 1e6)
        self.profile = profile if isinstance(profile, Profile) else load_profile(profile)
        self.rejects: Counter[str] = Counter()
        self.max_performers = max_performers
        self._limiter = RateLimiter(max_packets_per_s)
        self._perf: dict[str, _Perf] = {}
        self._calib = None
        if self.profile.rest:
            rr = np.tile(quat.IDENTITY, (len(BONES), 1))
            for b, q in self.profile.rest.items():
                rr[BONE_INDEX[b]] = self._convert(np.zeros(3), np.array(q, dtype=np.float64), rotation="quat_xyzw")[1]
            self._calib = Calibration("profile", quat.normalize(rr))
        m = _ROT_RE.match(self.profile.rotation)
        self._euler = m.group(2) if m and m.group(2) else None

    def _convert(self, p: np.ndarray, r: np.ndarray, rotation: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        space = self.profile.space
        if space == "unity":
            p, r = unity_to_canonical(p, r)
        elif space == "zup":
            p, r = zup_to_canonical(p, r)
        elif space == "unreal":  # mirror Y (left-handed -> right-handed), then Z-up -> Y-up
            p = np.asarray(p, dtype=np.float64) * np.array([1.0, -1.0, 1.0])
            r = np.asarray(r, dtype=np.float64) * np.array([-1.0, 1.0, -1.0, 1.0])
            p, r = zup_to_canonical(p, r)
        return np.asarray(p, dtype=np.float64), np.asarray(r, dtype=np.float64)

    def feed(self, data: bytes, addr: tuple, t_recv_ns: int | None = None) -> list[Frame]:
        from pythonosc.osc_packet import OscPacket

        now = time.monotonic_ns() if t_recv_ns is None else t_recv_ns
        if not self._limiter.allow(addr, now):
            self.rejects["flood"] += 1
            return []
        try:
            packet = OscPacket(bytes(data))
        except Exception:  # python-osc raises ParseError, but also UnicodeDecodeError and others
            self.rejects["bad_packet"] += 1
            return []
        out: list[Frame] = []
        touched: set[str] = set()
        for tm in packet.messages:
            msg = tm.message
            out.extend(self._message(msg.address, list(msg.params), now, touched))
        if data[:8] == b"#bundle\x00":
            for perf in sorted(touched):
                st = self._perf.get(perf)
                if st is not None and st.pending:
                    out.append(self._frame(perf, st, now))
        return out

    def _message(self, address: str, params: list, now: int, touched: set[str]) -> list[Frame]:
        for route in self.profile.routes:
            m = route.pattern.match(address)
            if m is not None:
                break
        else:
            self.rejects["unmatched"] += 1
            return []
        caps = m.groupdict()
        performer = caps.get("performer") or self.profile.performer
        if route.frame_end:
            if "performer" in route.args and len(params) == len(route.args):
                v = params[route.args.index("performer")]
                performer = v if isinstance(v, str) else performer
            st = self._perf.get(performer)
            if st is not None and st.pending:
                return [self._frame(performer, st, now)]
            return []
        if len(params) != len(route.args):
            self.rejects["bad_args"] += 1
            return []
        vals: dict[str, float] = {}
        bone = caps.get("bone")
        for ch, v in zip(route.args, params):
            if ch == "_":
                continue
            if ch in ("bone", "performer"):
                if not isinstance(v, str):
                    self.rejects["bad_args"] += 1
                    return []
                if ch == "bone":
                    bone = v
                else:
                    performer = v
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                self.rejects["bad_args"] += 1
                return []
            if not math.isfinite(v):
                self.rejects["nonfinite"] += 1
                return []
            vals[ch] = float(v)
        b = self.profile.canonical_bone(bone) if bone is not None else None
        if b is None:
            self.rejects["unknown_bone"] += 1
            return []
        st = self._perf.get(performer)
        if st is None:
            if len(self._perf) >= self.max_performers:
                self.rejects["too_many_performers"] += 1
                return []
            st = self._perf[performer] = _Perf()
        out: list[Frame] = []
        if b in st.touched and st.pending:
            out.append(self._frame(performer, st, now))
        if "time" in vals:
            st.time = vals["time"]
        p = np.array([vals.get("px", np.nan), vals.get("py", np.nan), vals.get("pz", np.nan)]) * self.profile.units
        if self._euler:
            r = quat.from_euler(np.array([vals.get("rx", 0.0), vals.get("ry", 0.0), vals.get("rz", 0.0)]), self._euler)
            has_rot = any(c in vals for c in ("rx", "ry", "rz"))
        else:
            has_rot = all(c in vals for c in ("qx", "qy", "qz", "qw"))
            r = np.array([vals.get("qx", 0.0), vals.get("qy", 0.0), vals.get("qz", 0.0), vals.get("qw", 1.0)])
        has_pos = not np.isnan(p).any()
        pc, rc = self._convert(np.nan_to_num(p), r)
        if has_pos:
            st.pos[b] = pc
            st.has_pos[b] = True
        if has_rot:
            st.rot[b] = quat.normalize(rc)
        st.present[b] = True
        st.touched.add(b)
        st.pending = True
        st.last_ns = now
        touched.add(performer)
        return out

    def poll(self, now_ns: int) -> list[Frame]:
        """Frames of performers quiet for ``idle_ms``: a frame that ends only when the next one
        starts (no ``frame_end`` route, no bundle) is not held back forever."""
        return [self._frame(p, st, st.last_ns) for p, st in self._perf.items() if st.pending and now_ns - st.last_ns >= self.idle_ns]

    def flush(self) -> list[Frame]:
        """Stream end: every pending frame."""
        return [self._frame(p, st, st.last_ns) for p, st in self._perf.items() if st.pending]

    def _frame(self, performer: str, st: _Perf, now: int) -> Frame:
        if self.profile.transforms == "global":
            if st.has_pos[st.present].all():
                pose = local_from_global(st.pos, st.rot, st.present)
            else:  # rotations only: local rotations from world ones, rest offsets for positions
                rest = new_pose()
                pose = local_from_global(np.zeros((len(BONES), 3)), st.rot, st.present)
                keep = ~st.has_pos
                pose[keep, :3] = rest[keep, :3]
        else:
            pose = np.concatenate([st.pos, st.rot], axis=1).astype(np.float32)
        if self._calib is not None:
            pose = self._calib.apply(pose)
        st.touched = set()
        st.pending = False
        return Frame(performer, self.name, now, pose.reshape(len(BONES), POSE_WIDTH), st.time, None, None)


logging.getLogger("pythonosc").setLevel(logging.ERROR)

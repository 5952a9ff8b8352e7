"""A BVH file as a performer: bone map, units and frame rate chosen, poses retargeted, and the
file's own skeleton kept in the take's source record.

``load_bvh_performer`` is what every reader of BVH files uses (``takes import``, ``mocap send
--bvh``); ``import_bvh`` makes a take of it. What was chosen and what could not be mapped comes
back as report lines, which the CLIs print.

The source record (``source/<performer>.json`` in the take, schema ``machinima.source``
version 1) keeps the file's skeleton exactly (joint names, parents, offsets, channel orders, end
sites, rest pose), the mapping used, the units and the performer's proportions (canonical rest
offsets in metres); a verbatim copy of the file (``source/<performer>.bvh``) keeps the motion of
every joint, mapped or not.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import shutil
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from . import retarget, schema
from .bonemap import BoneMapSpec, Resolved, choose, from_pairs, shipped_bone_maps
from .bvh import BVHMotion, read_bvh
from .errors import BVHError, TakeFormatError
from .fsutil import atomic_write_json
from .skeleton import BONE_INDEX, BONES, BoneMap
from .take import Take
from .timecode import ns_from_frames, parse_rate

UNITS: dict[str, float] = {"m": 1.0, "cm": 0.01, "mm": 0.001, "in": 0.0254}
"""Metres per file unit."""
PERSON_M = 1.7  # the height ``--units auto`` expects the rest pose to have
PLAUSIBLE_M = (0.8, 2.5)  # outside this, the rest pose is not a person in the units used
STANDARD_RATES: tuple[str, ...] = ("23.976", "24", "25", "29.97", "30", "48", "50", "59.94", "60", "72", "90", "96", "100",
                                   "120", "144", "180", "200", "240", "250", "300", "360", "480", "500", "960", "1000")
SNAP_TOLERANCE = 0.001  # 0.1 %: a Frame Time of 0.008333 is 120 fps, not 120.005
SOURCE_SCHEMA = "machinima.source"
_FINGERS = ("Thumb", "Index", "Middle", "Ring", "Little")
SOURCE_DIR = "source"


def snap_fps(frame_time: float) -> tuple[Fraction, bool]:
    """The frame rate of a BVH ``Frame Time``: the nearest standard rate when within 0.1 %
    (True), else the rate itself to the millisecond-frame (False)."""
    if frame_time <= 0:
        raise BVHError(f"frame time {frame_time} must be above 0")
    fps = 1.0 / frame_time
    best = min(STANDARD_RATES, key=lambda r: abs(math.log(float(parse_rate(r)) / fps)))
    if abs(float(parse_rate(best)) / fps - 1.0) <= SNAP_TOLERANCE:
        return parse_rate(best), True
    return Fraction(f"{fps:.3f}"), False


def guess_units(extent: float) -> str:
    """The unit that makes a rest pose ``extent`` file units tall closest to a person's height."""
    if extent <= 0:
        return "cm"
    return min(UNITS, key=lambda u: abs(math.log(extent * UNITS[u] / PERSON_M)))


@dataclass
class BVHPerformer:
    """A BVH file read as one performer, and what was chosen to read it."""

    motion: BVHMotion
    poses: np.ndarray  # (N, 55, 7) canonical, float32
    fps: Fraction
    fps_snapped: bool
    units: str
    units_auto: bool
    resolved: Resolved
    map_auto: bool
    plan: retarget.RetargetPlan
    take_id: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def scale(self) -> float:
        return UNITS[self.units]

    @property
    def unmapped(self) -> list[str]:
        used = set(self.resolved.mapping.values())
        return [n for j, n in enumerate(self.motion.names) if j not in used]

    def report(self) -> tuple[list[str], list[str]]:
        """(information lines, warning lines) for a person."""
        info, warn = [], []
        r, m = self.resolved, self.motion
        how = f"chosen automatically: {len(r.mapping)} of {len(m.names)} joints matched" if self.map_auto else f"given, {len(r.mapping)} of {len(m.names)} joints matched"
        info.append(f"bone map: {r.spec.name} ({how})")
        for moved in r.moved:
            src, dst = moved.split(" -> ")
            joint = m.names[r.mapping[BONE_INDEX[dst]]]
            info.append(f"bone map: joint {joint} drives {dst}, not {src}: its child is the next bone down the limb")
        extent = m.rest_extent()
        info.append(f"units: {self.units} ({'auto' if self.units_auto else 'given'}: rest pose {extent:.4g} file units = {extent * self.scale:.2f} m)")
        if self.fps_snapped:
            info.append(f"fps: {_fps_name(self.fps)} (Frame Time {m.frame_time:g} = {m.fps:.4f} fps, snapped to the standard rate)")
        else:
            info.append(f"fps: {_fps_name(self.fps)} (Frame Time {m.frame_time:g}; not within 0.1 % of a standard rate)")
        if self.plan.inferred:
            fingers = [b for b in self.plan.inferred if any(f in b for f in _FINGERS)]
            named = [b for b in self.plan.inferred if b not in fingers] + ([f"{len(fingers)} finger bones"] if fingers else [])
            info.append(f"{len(self.plan.inferred)} canonical bones have no joint in the file and follow their neighbours: {', '.join(named)}")
        if self.unmapped:
            warn.append(f"{len(self.unmapped)} joint(s) not mapped to canonical bones (kept in the source record): {', '.join(self.unmapped)}")
        lo, hi = PLAUSIBLE_M
        if not lo <= extent * self.scale <= hi:
            warn.append(f"the rest pose is {extent * self.scale:.2f} m tall read as {self.units}: not a person's height; pass --units if that is wrong")
        warn += m.warnings + self.notes
        return info, warn


def _fps_name(rate: Fraction) -> str:
    for name in STANDARD_RATES:
        if parse_rate(name) == rate:
            return name
    return f"{float(rate):g}"


def _spec(bone_map: BoneMapSpec | BoneMap | dict[str, str] | str | Path | None) -> BoneMapSpec | str | Path | None:
    if isinstance(bone_map, BoneMap):
        return from_pairs(bone_map.mapping)
    if isinstance(bone_map, dict):
        return from_pairs(bone_map)
    return bone_map


def retarget_motion(motion: BVHMotion, bone_map: BoneMapSpec | BoneMap | dict[str, str] | str | Path | None = None,
                    units: str = "auto") -> BVHPerformer:
    """Retarget a parsed BVH onto the canonical skeleton (see ``machinima.retarget``)."""
    if units not in UNITS and units != "auto":
        raise BVHError(f"unknown units {units!r}", hint=f"one of {', '.join(UNITS)}, auto")
    if motion.frames == 0:
        raise BVHError("the BVH has no frames")
    unit = guess_units(motion.rest_extent()) if units == "auto" else units
    resolved, auto = choose(motion.names, motion.parents, _spec(bone_map))
    notes = []
    if len(resolved.mapping) == 0:
        raise BVHError("none of the BVH joints match canonical bone names or a shipped bone map",
                       hint=f"shipped maps: {', '.join(shipped_bone_maps())}; pass --bone-map NAME or a .toml file")
    hips = BONE_INDEX["Hips"]
    if hips not in resolved.mapping:
        root = motion.parents.index(-1)
        if root in resolved.mapping.values():
            raise BVHError(f"the bone map gives Hips no joint and the root {motion.names[root]!r} drives another bone", hint="map a joint to Hips")
        resolved.mapping[hips] = root
        notes.append(f"no joint named for Hips: the root joint {motion.names[root]!r} drives it")
    scale = UNITS[unit]
    plan = retarget.plan(resolved.mapping, motion.rest_positions() * scale)
    gpos, grot = motion.world(scale)
    poses = retarget.apply(plan, gpos, grot)
    fps, snapped = snap_fps(motion.frame_time) if motion.frame_time > 0 else (Fraction(30), False)
    return BVHPerformer(motion, poses, fps, snapped, unit, units == "auto", resolved, auto, plan, notes=notes)


def load_bvh_performer(path: str | Path, bone_map: BoneMapSpec | str | Path | None = None, units: str = "auto") -> BVHPerformer:
    """Read a BVH file and retarget it (bone map and units chosen when not given)."""
    return retarget_motion(read_bvh(path), bone_map, units)


def to_canonical(motion: BVHMotion, bone_map: BoneMap | BoneMapSpec | dict[str, str] | None = None, *, scale: float = 0.01) -> np.ndarray:
    """Canonical poses (N, 55, 7) of a parsed BVH in units of ``scale`` metres (the older API)."""
    unit = next((u for u, s in UNITS.items() if math.isclose(s, scale)), None)
    if unit is None:
        raise BVHError(f"scale {scale} is not one of the known units ({', '.join(f'{u}={s}' for u, s in UNITS.items())})")
    return retarget_motion(motion, bone_map, unit).poses


# --- takes ---------------------------------------------------------------------------------------------
def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "performer"


def import_bvh(bvh_path: str | Path, takes_root: str | Path, *, production: str, scene: str, shot: str, performer: str,
               bone_map: BoneMapSpec | str | Path | None = None, units: str = "auto") -> BVHPerformer:
    """Make a new take of a BVH file: the retargeted performer, its source record, a copy of
    the file. Everything is read and checked before the take folder is created."""
    bvh_path = Path(bvh_path)
    result = load_bvh_performer(bvh_path, bone_map, units)
    take = Take.create(takes_root, production=production, scene=scene, shot=shot, fps=result.fps)
    try:
        record = f"{SOURCE_DIR}/{_slug(performer)}.json"
        take.add_performer(performer, source=f"bvh:{bvh_path.name}", source_record=record)
        n = result.poses.shape[0]
        t = take.store.origin_ns + ns_from_frames(np.arange(n, dtype=np.int64), result.fps)
        take.store.append(f"mocap/{performer}", t, result.poses)
        copy = take.path / SOURCE_DIR / f"{_slug(performer)}.bvh"
        copy.parent.mkdir(exist_ok=True)
        shutil.copyfile(bvh_path, copy)
        atomic_write_json(take.path / record, source_record(result, performer, bvh_path, copy.relative_to(take.path)))
        take.add_note(f"imported from {bvh_path.name} at {time.strftime('%Y-%m-%d %H:%M')} (bone map {result.resolved.spec.name}, {result.units})")
        take.finalize()
    except BaseException:
        if take.writable:
            take.finalize("failed")
        raise
    result.take_id = take.id
    return result


def import_bvh_take(bvh_path: str | Path, takes_root: str | Path, *, production: str, scene: str, shot: str, performer: str,
                    bone_map: BoneMapSpec | str | Path | None = None, units: str = "auto") -> str:
    """``import_bvh``, returning the new take's id."""
    return import_bvh(bvh_path, takes_root, production=production, scene=scene, shot=shot, performer=performer,
                      bone_map=bone_map, units=units).take_id


def source_record(result: BVHPerformer, performer: str, bvh_path: Path, copy: Path) -> dict[str, Any]:
    m, plan = result.motion, result.plan
    canonical_of = {j: BONES[c] for c, j in result.resolved.mapping.items()}
    joints = []
    for j, name in enumerate(m.names):
        joints.append({
            "name": name,
            "parent": m.names[m.parents[j]] if m.parents[j] >= 0 else None,
            "offset": [float(v) for v in m.offsets[j]],
            "channels": list(m.channels[j]),
            "rotation_order": m.rotation_order(j),
            "end_site": None if m.end_sites[j] is None else [float(v) for v in m.end_sites[j]],
            "canonical": canonical_of.get(j),
        })
    return {
        "schema": SOURCE_SCHEMA, "version": schema.CURRENT["source-record"], "performer": performer, "format": "bvh",
        "file": copy.as_posix(), "original_name": bvh_path.name, "sha256": hashlib.sha256(bvh_path.read_bytes()).hexdigest(),
        "frames": m.frames, "frame_time": m.frame_time, "fps": _fps_name(result.fps), "fps_snapped": result.fps_snapped,
        "units": result.units, "units_auto": result.units_auto, "metres_per_unit": result.scale, "rest_extent": m.rest_extent(),
        "bone_map": {"name": result.resolved.spec.name, "source": result.resolved.spec.source, "auto": result.map_auto, "moved": result.resolved.moved},
        "skeleton": joints,
        "unmapped": result.unmapped,
        "inferred": plan.inferred,
        "rest_offsets": {b: [round(float(v), 9) for v in plan.rest_offsets[i]] for i, b in enumerate(BONES)},
    }


def read_source_record(take_path: str | Path, performer: str) -> dict[str, Any] | None:
    """The source record of a performer, or None when the take has none (live capture)."""
    take = Take.open(take_path)
    entry = next((p for p in take.manifest.performers if p.get("name") == performer), None)
    rel = entry.get("source_record") if entry else None
    if not rel:
        return None
    path = Path(take_path) / rel
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TakeFormatError(f"take {take.id}: the source record {rel} is missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise TakeFormatError(f"{path} is not valid JSON") from None
    if not isinstance(doc, dict) or doc.get("schema") != SOURCE_SCHEMA or not isinstance(doc.get("version"), int):
        raise TakeFormatError(f"{path}: field 'schema' must be {SOURCE_SCHEMA!r} with an integer 'version'")
    return schema.upgrade("source-record", doc, doc["version"])


def performer_rest_offsets(take_path: str | Path, performer: str) -> np.ndarray | None:
    """The performer's proportions (55, 3 metres, local rest offsets; Hips in world) from the
    source record, or None when the take has none."""
    doc = read_source_record(take_path, performer)
    if doc is None:
        return None
    try:
        return np.array([doc["rest_offsets"][b] for b in BONES], dtype=np.float64)
    except (KeyError, TypeError, ValueError):
        raise TakeFormatError(f"take {Path(take_path).name}: source record of {performer!r} has no valid 'rest_offsets'") from None


__all__ = ["BVHPerformer", "UNITS", "guess_units", "import_bvh", "import_bvh_take", "load_bvh_performer",
           "performer_rest_offsets", "read_source_record", "retarget_motion", "snap_fps", "to_canonical"]

"""Bone maps: which joint of a source skeleton (a BVH file's) drives which canonical bone.

A bone map is a TOML file; the shipped ones live in ``machinima/bonemaps/`` and a user passes a
name (``--bone-map mixamo``) or a path (``--bone-map ./studio.toml``)::

    schema = "machinima.bonemap"
    version = 1
    name = "mixamo"
    description = "Mixamo rigs (mixamorig: names)"
    namespace = "mixamorig"   # optional: "mixamorig:Hips", "mixamorig1:Hips" ... score best here
    extends = "humanik"       # optional: start from another map's bones, then override

    [bones]                   # canonical bone (Unity HumanBodyBones) = source joint name(s)
    Hips = "Hips"
    Spine = ["LowerBack", "abdomen"]   # alternatives: the first one the file has wins

Names match without regard to case and to a namespace prefix (``ns:Name``). When no map is
given, every shipped map is scored on the file's joint names (a match counts twice when the
namespace agrees too) and the best one is used; the CLI prints which. The canonical names
themselves are always a candidate (``canonical``), so the project's own exports map one to one.

After matching, one structural rule: a required bone (Unity's humanoid needs e.g. the upper
arm) that nothing maps to, under an optional bone that is mapped and whose joint carries the
required bone's child, takes that joint: a ``LeftShoulder`` joint that is the upper arm (its
child is the forearm) drives ``LeftUpperArm``, not the clavicle.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Iterable

from .errors import SkeletonError
from .skeleton import BONE_INDEX, BONES, PARENTS, REQUIRED

SCHEMA = "machinima.bonemap"
VERSION = 1
CANONICAL = "canonical"


@dataclass(frozen=True)
class BoneMapSpec:
    """A loaded bone map: canonical bone -> candidate source names (lower-case, no namespace)."""

    name: str
    bones: dict[str, tuple[str, ...]]
    description: str = ""
    namespace: str = ""
    source: str = ""  # where it came from: "shipped" or the file path

    def resolve(self, joint_names: Iterable[str]) -> "Resolved":
        """Which joint drives each canonical bone (by index), and how well the names fit."""
        names = list(joint_names)
        keys = [_split(n) for n in names]
        lookup: dict[str, int] = {}
        for j, (_, base) in enumerate(keys):
            lookup.setdefault(base, j)
        mapping: dict[int, int] = {}
        score = 0
        for bone, candidates in self.bones.items():
            for cand in candidates:
                j = lookup.get(cand)
                if j is not None and j not in mapping.values():
                    mapping[BONE_INDEX[bone]] = j
                    ns = keys[j][0]
                    score += 2 if (ns.startswith(self.namespace) if self.namespace else not ns) else 1
                    break
        return Resolved(self, mapping, score)


@dataclass
class Resolved:
    """A bone map applied to one skeleton: ``mapping`` canonical index -> joint index."""

    spec: BoneMapSpec
    mapping: dict[int, int]
    score: int
    moved: list[str] = field(default_factory=list)  # canonical bones, e.g. "LeftShoulder -> LeftUpperArm"

    def apply_structure(self, parents: list[int]) -> "Resolved":
        """The required-bone rule (see the module docstring), given the joints' parents."""

        def below(j: int, ancestor: int) -> bool:
            while j >= 0:
                j = parents[j]
                if j == ancestor:
                    return True
            return False

        for bone in BONES:
            b = BONE_INDEX[bone]
            p = int(PARENTS[b])
            if bone not in REQUIRED or b in self.mapping or p < 0 or BONES[p] in REQUIRED or p not in self.mapping:
                continue
            kids = [k for k in range(len(BONES)) if PARENTS[k] == b and k in self.mapping]
            if any(below(self.mapping[k], self.mapping[p]) for k in kids):
                self.mapping[b] = self.mapping.pop(p)
                self.moved.append(f"{BONES[p]} -> {bone}")
        return self


def _split(name: str) -> tuple[str, str]:
    """(namespace, base name), both lower-case: "mixamorig:LeftArm" -> ("mixamorig", "leftarm")."""
    ns, _, base = name.rpartition(":")
    return ns.lower(), base.lower()


# --- loading ----------------------------------------------------------------------------------------
def shipped_bone_maps() -> list[str]:
    folder = resources.files("machinima") / "bonemaps"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def canonical_map() -> BoneMapSpec:
    """The identity map: joints named like the canonical bones (the project's own BVH files)."""
    return BoneMapSpec(CANONICAL, {b: (b.lower(),) for b in BONES}, "canonical names (Unity HumanBodyBones)", source="built in")


def load_bone_map(name_or_path: str | Path, _seen: tuple[str, ...] = ()) -> BoneMapSpec:
    """A shipped map by name, or a TOML file by path; errors name the file and the field."""
    key = str(name_or_path)
    if key == CANONICAL:
        return canonical_map()
    path = Path(key)
    if path.suffix.lower() == ".toml" or path.exists() or "/" in key:
        if not path.is_file():
            raise SkeletonError(f"no bone map file at {path}", hint=f"shipped maps: {', '.join(shipped_bone_maps())}")
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise SkeletonError(f"{path}: cannot read the bone map ({exc})") from None
        where, origin = str(path), str(path)
    else:
        res = resources.files("machinima") / "bonemaps" / f"{key}.toml"
        if not res.is_file():
            raise SkeletonError(f"no bone map {key!r}", hint=f"shipped: {', '.join(shipped_bone_maps())}; or give a .toml path")
        text, where, origin = res.read_text(encoding="utf-8"), f"bonemaps/{key}.toml", "shipped"
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SkeletonError(f"{where}: not valid TOML ({exc})") from None
    return _from_doc(doc, where, origin, _seen + (key,))


def _from_doc(doc: dict[str, Any], where: str, origin: str, seen: tuple[str, ...]) -> BoneMapSpec:
    unknown = set(doc) - {"schema", "version", "name", "description", "namespace", "extends", "bones"}
    if unknown:
        raise SkeletonError(f"{where}: unknown field {sorted(unknown)[0]!r}", hint="fields: schema, version, name, description, namespace, extends, bones")
    if doc.get("schema") != SCHEMA:
        raise SkeletonError(f"{where}: field 'schema' must be {SCHEMA!r}")
    if doc.get("version") != VERSION:
        raise SkeletonError(f"{where}: field 'version' must be {VERSION}, got {doc.get('version')!r}")
    for key in ("name", "description", "namespace", "extends"):
        if key in doc and not isinstance(doc[key], str):
            raise SkeletonError(f"{where}: field {key!r} must be a string")
    bones: dict[str, tuple[str, ...]] = {}
    if "extends" in doc:
        if doc["extends"] in seen:
            raise SkeletonError(f"{where}: 'extends' makes a loop ({' -> '.join(seen + (doc['extends'],))})")
        bones.update(load_bone_map(doc["extends"], seen).bones)
    table = doc.get("bones", {} if "extends" in doc else None)
    if not isinstance(table, dict) or not (table or bones):
        raise SkeletonError(f"{where}: a [bones] table (canonical bone = source joint name) is required")
    for bone, value in table.items():
        if bone not in BONE_INDEX:
            raise SkeletonError(f"{where}: bones.{bone}: {bone!r} is not a canonical bone", hint="canonical names are Unity HumanBodyBones, e.g. 'Hips', 'LeftUpperArm'")
        values = [value] if isinstance(value, str) else value
        if not isinstance(values, list) or not values or not all(isinstance(v, str) and v.strip() for v in values):
            raise SkeletonError(f"{where}: bones.{bone} must be a joint name or a list of joint names")
        bones[bone] = tuple(_split(v)[1] for v in values)
    owner: dict[str, str] = {}
    for bone, cands in bones.items():
        for c in cands:
            if owner.setdefault(c, bone) != bone:
                raise SkeletonError(f"{where}: joint {c!r} is listed for both {owner[c]} and {bone}")
    name = doc.get("name") or Path(where).stem
    return BoneMapSpec(name, bones, doc.get("description", ""), doc.get("namespace", "").lower(), origin)


def from_pairs(mapping: dict[str, str], name: str = "given") -> BoneMapSpec:
    """A map from ``{source joint: canonical bone}`` pairs (the older in-code form)."""
    bones: dict[str, tuple[str, ...]] = {}
    for src, dst in mapping.items():
        if dst not in BONE_INDEX:
            raise SkeletonError(f"bone map entry {src!r} -> {dst!r}: {dst!r} is not a canonical bone")
        bones[dst] = bones.get(dst, ()) + (_split(src)[1],)
    return BoneMapSpec(name, bones, source="given")


def choose(joint_names: list[str], parents: list[int], spec: BoneMapSpec | str | Path | None = None) -> tuple[Resolved, bool]:
    """The bone map to use on a skeleton: ``spec`` when given, else the best-scoring of the
    shipped maps and the canonical names. Returns (resolved map, chosen automatically)."""
    if spec is not None:
        chosen = spec if isinstance(spec, BoneMapSpec) else load_bone_map(spec)
        return chosen.resolve(joint_names).apply_structure(parents), False
    candidates = [canonical_map()] + [load_bone_map(n) for n in shipped_bone_maps()]
    resolved = [c.resolve(joint_names).apply_structure(parents) for c in candidates]
    # ties (a sparse file matches several maps equally) go to the map that fills more of the
    # bones a humanoid needs: "Spine" is Spine in HumanIK files, Chest in CMU ones
    best = max(resolved, key=lambda r: (r.score, sum(BONES[b] in REQUIRED for b in r.mapping), len(r.mapping)))
    return best, True

"""Versioned stored types and their upgrade steps (the OpenTimelineIO habit).

Every stored document or record kind carries a name and an integer version. When a shape
changes, the version goes up and one upgrade function per step is registered here; loading
runs the steps in order, so a take written by the oldest version still opens.

``CURRENT`` is the checked-in map of current versions: tests compare it to a frozen copy, so a
silent format change fails CI.
"""

from __future__ import annotations

from typing import Any, Callable

from .errors import TakeFormatError

CURRENT: dict[str, int] = {
    "take": 3,  # take.json
    "store": 1,  # streams.sqlite layout
    "mocap": 1,  # (n, 55, 7) float32 local pose frames
    "blend": 1,  # (n, k) float32 blendshape weights, channel names in stream meta
    "camera": 1,  # (n, 12) float32: pos xyz, quat xyzw, focal mm, sensor w/h mm, focus m, fov unused=0
    "event": 1,  # JSON payload
    "marker": 1,  # JSON payload: name, note, colour
    # formats versioned (with their own upgrade steps) in the module that owns them:
    "collection": 1,  # machinima/collections.py index.sqlite (facesets, datasets)
    "rights-record": 2,  # machinima/rights/records.py (2: identity embeddings, granted_by, signature)
    "disclosure-decision": 1,  # machinima/provenance/decision.py
    "passes": 1,  # machinima/passes.py passes.json
    "source-record": 1,  # machinima/bvhimport.py source/<performer>.json (an imported file's own skeleton)
}

_UPGRADES: dict[tuple[str, int], Callable[[dict[str, Any]], dict[str, Any]]] = {}


def upgrade_function_for(kind: str, from_version: int):
    """Register ``fn(doc) -> doc`` that turns version ``from_version`` of ``kind`` into the next."""

    def deco(fn: Callable[[dict[str, Any]], dict[str, Any]]):
        _UPGRADES[(kind, from_version)] = fn
        return fn

    return deco


def upgrade(kind: str, doc: dict[str, Any], version: int) -> dict[str, Any]:
    """Run the registered steps from ``version`` up to ``CURRENT[kind]``."""
    target = CURRENT[kind]
    if version > target:
        raise TakeFormatError(
            f"{kind} version {version} is newer than this machinima understands ({target})",
            hint="upgrade machinima to open it",
        )
    while version < target:
        step = _UPGRADES.get((kind, version))
        if step is None:
            raise TakeFormatError(f"no upgrade from {kind} version {version}")
        doc = step(doc)
        version += 1
    return doc


@upgrade_function_for("take", 1)
def _take_1_to_2(doc: dict[str, Any]) -> dict[str, Any]:
    """Version 1 kept the slate flat (production/scene/shot/take at top level) and had no notes list."""
    doc = dict(doc)
    doc["slate"] = {k: doc.pop(k) for k in ("production", "scene", "shot", "take") if k in doc}
    note = doc.pop("note", None)
    doc["notes"] = [note] if note else []
    doc["version"] = 2
    return doc


@upgrade_function_for("take", 2)
def _take_2_to_3(doc: dict[str, Any]) -> dict[str, Any]:
    """Version 2 had no director's circle and no record of the cuts that use the take."""
    doc = dict(doc)
    doc.setdefault("circle", None)
    doc.setdefault("used_in", [])
    doc["version"] = 3
    return doc

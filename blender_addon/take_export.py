"""A take as an animated .glb or .fbx (bpy): per performer a skinned mannequin with its armature
and the take's motion, lip-sync blend streams as shape-key animation, engine cameras as animated
cameras, markers as glTF extras and FBX user properties, per-engine axes and units
(``export.FBX_PRESETS``) and optionally VRM humanoid bone names.

The scene is made by the same ``import_take`` that ``machinima blender import-take`` runs, so a
file an engine reads moves exactly as the take does in Blender: Blender frame N = take frame N
(0 = timecode in), one key per frame. Markers: FBX has no timeline markers that Blender, Unity or
Unreal read back, so they travel as user properties of a ``take <id>`` empty (Unity hands those
to ``AssetPostprocessor.OnPostprocessGameObjectWithUserProperties``), and in glTF also as the
scene's extras (``extras.machinima.markers``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import bpy

from machinima.take import Take
from machinima.timecode import Timecode

from .bonenames import BONE_NAMINGS, bone_names
from .errors import ExportError
from .export import check_target, set_export_objects, write_objects
from .takeimport import import_take

TAKE_INFO_TAG = "machinima_take_info"


@dataclass(frozen=True)
class TakeExportSettings:
    """What to write: engine axes/units (FBX), bone naming, which performers, cameras or not."""

    engine: str = "unity"
    bone_names: str = "canonical"  # canonical | vrm0 | vrm1
    performers: tuple[str, ...] = ()
    cameras: bool = True

    def check(self) -> None:
        if self.bone_names not in BONE_NAMINGS:
            raise ExportError(f"unknown bone naming {self.bone_names!r}; one of {', '.join(BONE_NAMINGS)}")


@dataclass
class TakeExportReport:
    out: Path
    take_id: str
    fps: Fraction
    frames: tuple[int, int]
    performers: list[str] = field(default_factory=list)
    cameras: list[str] = field(default_factory=list)
    markers: list[dict[str, Any]] = field(default_factory=list)
    shape_keys: list[str] = field(default_factory=list)

    def summary(self) -> str:
        mouths = f", shape keys for {', '.join(self.shape_keys)}" if self.shape_keys else ""
        return (f"wrote {self.out}: take {self.take_id}, {len(self.performers)} performers, {len(self.cameras)} cameras, "
                f"{len(self.markers)} markers, frames {self.frames[0]}-{self.frames[1]} at {self.fps} fps{mouths}")


def marker_records(take: Take) -> list[dict[str, Any]]:
    """The take's markers as plain records: name, note, take frame (0 = timecode in), seconds,
    and SMPTE timecode in the take's own counting (drop frame where the take is)."""
    store = take.store
    drop = Timecode.parse(take.manifest.timecode_in, take.fps).drop_frame
    out = []
    for ev in store.events(kind="marker"):
        frame = int(ev["frame"])
        out.append({"name": str(ev["payload"].get("name", "marker")), "note": str(ev["payload"].get("note", "")),
                    "frame": frame - store.start_frame, "time_s": float((frame - store.start_frame) / take.fps),
                    "timecode": str(Timecode.at(take.fps, frame, drop_frame=drop))})
    return out


def rename_bones(armature: bpy.types.Object, naming: str) -> None:
    """Rename the canonical bones (Blender renames the action's channels and the mannequin's
    vertex groups with them)."""
    names = bone_names(naming)
    for bone in armature.data.bones:
        if bone.name in names and names[bone.name] != bone.name:
            bone.name = names[bone.name]


def _tag_take(scene: bpy.types.Scene, take: Take, collection: bpy.types.Collection, markers: list[dict[str, Any]]) -> bpy.types.Object:
    info = {"take": take.id, "fps": take.manifest.fps, "timecode_in": take.manifest.timecode_in,
            "frame_start": scene.frame_start, "frame_end": scene.frame_end, "markers": markers}
    scene["machinima"] = info  # glTF scene extras
    if "machinima_take" in scene:
        del scene["machinima_take"]  # a local absolute path: not for delivery
    ob = next((o for o in bpy.data.objects if o.get(TAKE_INFO_TAG) == take.id), None)
    if ob is None:
        ob = bpy.data.objects.new(f"take {take.id}", None)
        collection.objects.link(ob)
    ob[TAKE_INFO_TAG] = take.id
    ob["machinima_fps"] = take.manifest.fps
    ob["machinima_timecode_in"] = take.manifest.timecode_in
    ob["machinima_markers"] = json.dumps(markers)  # FBX user properties are scalars and strings
    return ob


def export_take(take_path: str | Path, out: str | Path, settings: TakeExportSettings = TakeExportSettings(), *,
                scene: bpy.types.Scene | None = None, with_set: bool = False) -> TakeExportReport:
    """Write the take (and, with ``with_set``, the set already built in ``scene``) to ``out``."""
    # 1. check inputs before touching the scene
    out = check_target(out, settings.engine)
    settings.check()
    scene = scene or bpy.context.scene
    set_objects = set_export_objects(scene) if with_set else []
    take = Take.open(take_path)
    # 2. the take in the scene, exactly as import-take makes it
    report = import_take(take.path, scene, performers=list(settings.performers) or None)
    collection = bpy.data.collections[f"Take {take.id}"]
    # 3. names, cameras, markers
    for name in report.armatures.values():
        rename_bones(bpy.data.objects[name], settings.bone_names)
    markers = marker_records(take)
    info = _tag_take(scene, take, collection, markers)
    keep = set(report.armatures.values()) | (set(report.cameras.values()) if settings.cameras else set())
    objects = [o for o in collection.all_objects if o.name in keep or (o.parent is not None and o.parent.name in keep)]
    objects.append(info)
    # 4. write
    write_objects(out, set_objects + objects, engine=settings.engine, animated=True)
    return TakeExportReport(out, take.id, take.fps, report.frame_range, list(report.armatures),
                            list(report.cameras) if settings.cameras else [], markers, list(report.shape_keys))


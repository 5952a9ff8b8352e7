"""Export a built set, or a take's performers and cameras, as .glb or .fbx for engines (bpy).

Axes and scale per engine (see docs/blender.md and docs/artist.md):
- glTF (.glb): Y up, metres, +Z forward by the glTF spec; Unity (glTFast, UnityGLTF), Unreal
  (its glTF importer / Interchange) and Godot convert on import. The same file for every engine.
- FBX for Unity and Godot: -Z forward, Y up, "FBX All" scaling: 1 Blender metre = 1 unit. Sets
  also use "Apply Transform" (objects arrive with scale 1 and no extra -90 degree X rotation);
  takes do not, because Blender documents that option as broken with armatures and animation
  (Unity's "Bake Axis Conversion" import option removes the root's -90 degrees instead).
- FBX for Unreal: -Z forward, Y up, "FBX Units Scale" (UnitScaleFactor 100): Unreal's default
  "Convert Scene" and "Convert Scene Unit" turn it Z-up, 1 Blender metre = 100 Unreal units (cm).
- FBX for Blender: Blender's own axes (Z up, Y forward), metres: a round trip changes nothing.
- Lights: glTF carries sun, point and spot lights (KHR_lights_punctual has no area lights). FBX
  leaves lights out unless ``fbx_lights=True`` (engines relight sets anyway, and Blender 5.0's own
  FBX importer fails on FBX lights, so such a file does not round-trip through Blender).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import bpy

from .build import CHILD_TAG, SET_TAG
from .errors import ExportError

_Y_UP = {"axis_forward": "-Z", "axis_up": "Y"}
FBX_PRESETS: dict[str, dict[str, Any]] = {
    "unity": {**_Y_UP, "apply_scale_options": "FBX_SCALE_ALL", "bake_space_transform": True, "apply_unit_scale": True, "global_scale": 1.0},
    "unreal": {**_Y_UP, "apply_scale_options": "FBX_SCALE_UNITS", "bake_space_transform": False, "apply_unit_scale": True, "global_scale": 1.0},
    "godot": {**_Y_UP, "apply_scale_options": "FBX_SCALE_ALL", "bake_space_transform": True, "apply_unit_scale": True, "global_scale": 1.0},
    "blender": {"axis_forward": "Y", "axis_up": "Z", "apply_scale_options": "FBX_SCALE_UNITS", "bake_space_transform": False,
                "apply_unit_scale": True, "global_scale": 1.0},
}
ENGINES = tuple(FBX_PRESETS)
SUFFIXES = (".glb", ".gltf", ".fbx")


def set_export_objects(scene: bpy.types.Scene, set_name: str | None = None) -> list[bpy.types.Object]:
    names = {str(o[SET_TAG]) for o in scene.objects if SET_TAG in o}
    if not names:
        raise ExportError("the scene has no set to export", hint="build one first: `machinima blender build-set SET`")
    if set_name is None:
        if len(names) > 1:
            raise ExportError(f"the scene holds several sets {sorted(names)}; say which one")
        set_name = names.pop()
    elif set_name not in names:
        raise ExportError(f"no set {set_name!r} in the scene; sets: {sorted(names)}")
    tops = [o for o in scene.objects if o.get(SET_TAG) == set_name]
    ids = {o.get("machinima_id") for o in tops}
    kids = [o for o in scene.objects if o.get(CHILD_TAG) in ids and o not in tops]
    return tops + kids


def check_target(out: str | Path, engine: str) -> Path:
    """The output path, checked before anything is built (suffix and engine)."""
    out = Path(out)
    if out.suffix.lower() not in SUFFIXES:
        raise ExportError(f"cannot export to {out.name}: use a .glb, .gltf or .fbx file name")
    if engine not in FBX_PRESETS:
        raise ExportError(f"unknown engine {engine!r}; engines: {', '.join(ENGINES)}")
    return out


def _glb_rate_for_exporter(scene: bpy.types.Scene, undo: bool = False) -> None:
    """Blender 5.0's glTF exporter takes ``fps * fps_base`` as the frame rate (glTF-Blender-IO
    PR #2080), Blender itself ``fps / fps_base``: at 29.97 (30 / 1.001) keys came out 0.2 %
    early, 3.6 frames a minute. For the export, set the base that makes the product the true rate."""
    r = scene.render
    if undo:
        if "machinima_fps_base" in scene:
            r.fps_base = scene.pop("machinima_fps_base")
        return
    if r.fps_base != 1.0:
        scene["machinima_fps_base"] = r.fps_base
        r.fps_base = 1.0 / r.fps_base  # fps * base' = fps / base


def write_objects(out: Path, objects: list[bpy.types.Object], *, engine: str, animated: bool = False, fbx_lights: bool = False) -> Path:
    """Select ``objects`` and run Blender's glTF or FBX exporter on them. ``animated`` writes
    the scene's frame range as one animation (glTF: sampled every frame, nothing dropped but
    constant channels; FBX: baked every frame, no curve simplification)."""
    suffix = out.suffix.lower()
    out.parent.mkdir(parents=True, exist_ok=True)
    view_layer = bpy.context.view_layer
    for o in view_layer.objects:
        o.select_set(False)
    for o in objects:
        o.select_set(True)
    view_layer.objects.active = objects[0]
    try:
        if suffix in (".glb", ".gltf"):
            _glb_rate_for_exporter(bpy.context.scene)
            anim = {"export_animations": True, "export_animation_mode": "SCENE", "export_anim_scene_split_object": False,
                    "export_force_sampling": True, "export_frame_range": True, "export_optimize_animation_size": False,
                    "export_skins": True, "export_morph": True, "export_pointer_animation": True} if animated else {"export_animations": False}
            bpy.ops.export_scene.gltf(filepath=str(out), export_format="GLB" if suffix == ".glb" else "GLTF_SEPARATE",
                                      use_selection=True, export_yup=True, export_apply=not animated, export_cameras=True,
                                      export_lights=True, export_extras=True, **anim)
        else:
            preset = dict(FBX_PRESETS[engine])
            kinds = {"MESH", "CAMERA", "EMPTY"} | ({"LIGHT"} if fbx_lights else set())
            if animated:
                preset["bake_space_transform"] = False  # documented as broken with armatures and animation
                kinds.add("ARMATURE")
            anim = {"bake_anim": True, "bake_anim_use_all_bones": True, "bake_anim_use_nla_strips": False,
                    "bake_anim_use_all_actions": False, "bake_anim_force_startend_keying": True, "bake_anim_step": 1.0,
                    "bake_anim_simplify_factor": 0.0, "add_leaf_bones": False} if animated else {"bake_anim": False}
            bpy.ops.export_scene.fbx(filepath=str(out), use_selection=True, object_types=kinds, use_custom_props=True, **anim, **preset)
    except RuntimeError as exc:
        raise ExportError(f"export to {out.name} failed: {exc}") from None
    finally:
        _glb_rate_for_exporter(bpy.context.scene, undo=True)
    if not out.exists():
        raise ExportError(f"Blender wrote nothing to {out}")
    return out


def export_set(out: str | Path, *, engine: str = "unity", set_name: str | None = None, scene: bpy.types.Scene | None = None,
               fbx_lights: bool = False) -> Path:
    """Write the set's objects (meshes, lights, cameras, assets) to ``out`` (.glb/.gltf or .fbx)."""
    out = check_target(out, engine)
    scene = scene or bpy.context.scene
    return write_objects(out, set_export_objects(scene, set_name), engine=engine, fbx_lights=fbx_lights)

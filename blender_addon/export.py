"""Export a built set as .glb or .fbx for game engines (bpy).

Axes and scale per engine (see docs/blender.md):
- glTF (.glb): Y up, metres, +Z forward by the glTF spec; Unity (glTFast, UnityGLTF) and Unreal
  (its glTF importer / Interchange) convert on import. Nothing to choose.
- FBX for Unity: -Z forward, Y up, "FBX All" scaling and "Apply Transform": objects arrive with
  scale 1 and no extra -90 degree X rotation, 1 Blender metre = 1 Unity unit.
- FBX for Unreal: -Z forward, Y up, "FBX Units Scale" (UnitScaleFactor 100): Unreal's default
  "Convert Scene" and "Convert Scene Unit" turn it Z-up, 1 Blender metre = 100 Unreal units (cm).
- Lights: glTF carries sun, point and spot lights (KHR_lights_punctual has no area lights). FBX
  leaves lights out unless ``fbx_lights=True`` (engines relight sets anyway, and Blender 5.0's own
  FBX importer fails on FBX lights, so such a file does not round-trip through Blender).
"""

from __future__ import annotations

from pathlib import Path

import bpy

from .build import CHILD_TAG, SET_TAG
from .errors import ExportError

FBX_PRESETS = {
    "unity": {"axis_forward": "-Z", "axis_up": "Y", "apply_scale_options": "FBX_SCALE_ALL", "bake_space_transform": True,
              "apply_unit_scale": True, "global_scale": 1.0},
    "unreal": {"axis_forward": "-Z", "axis_up": "Y", "apply_scale_options": "FBX_SCALE_UNITS", "bake_space_transform": False,
               "apply_unit_scale": True, "global_scale": 1.0},
}


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


def export_set(out: str | Path, *, engine: str = "unity", set_name: str | None = None, scene: bpy.types.Scene | None = None,
               fbx_lights: bool = False) -> Path:
    """Write the set's objects (meshes, lights, cameras, assets) to ``out`` (.glb/.gltf or .fbx)."""
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in (".glb", ".gltf", ".fbx"):
        raise ExportError(f"cannot export to {out.name}: use a .glb, .gltf or .fbx file name")
    if engine not in FBX_PRESETS:
        raise ExportError(f"unknown engine {engine!r}; engines: {', '.join(FBX_PRESETS)}")
    scene = scene or bpy.context.scene
    objects = set_export_objects(scene, set_name)
    out.parent.mkdir(parents=True, exist_ok=True)
    view_layer = bpy.context.view_layer
    for o in view_layer.objects:
        o.select_set(False)
    for o in objects:
        o.select_set(True)
    view_layer.objects.active = objects[0]
    try:
        if suffix in (".glb", ".gltf"):
            bpy.ops.export_scene.gltf(filepath=str(out), export_format="GLB" if suffix == ".glb" else "GLTF_SEPARATE",
                                      use_selection=True, export_yup=True, export_apply=True, export_cameras=True,
                                      export_lights=True, export_extras=True)
        else:
            bpy.ops.export_scene.fbx(filepath=str(out), use_selection=True, object_types={"MESH", "CAMERA", "EMPTY"} | ({"LIGHT"} if fbx_lights else set()),
                                     use_custom_props=True, bake_anim=False, **FBX_PRESETS[engine])
    except RuntimeError as exc:
        raise ExportError(f"export to {out.name} failed: {exc}") from None
    if not out.exists():
        raise ExportError(f"Blender wrote nothing to {out}")
    return out

"""Set file -> Blender scene, idempotently (bpy).

Every object a set makes carries custom properties: ``machinima_set`` (the set's name),
``machinima_id`` (``floor``, ``walls/<id>``, ``props/<id>``, ``lights/<id>``, ``cameras/<id>``),
``machinima_hash`` (a hash of its entry) and ``machinima_group`` (the entry's mask group).
Rebuilding finds objects by those tags: an unchanged entry is left alone, a changed one is
updated in place (same object, new mesh/light/camera settings), an entry removed from the file
removes its object. Nothing is ever duplicated.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bpy
import numpy as np
from mathutils import Matrix, Quaternion

from machinima import quat, skeleton

from .errors import SetFileError
from .kit import kit_geometry, wall_geometry
from .setfile import CameraSpec, FloorSpec, LightSpec, MaterialSpec, PropSpec, SetSpec, WallSpec, load_set, spec_hash

SET_TAG = "machinima_set"
ID_TAG = "machinima_id"
HASH_TAG = "machinima_hash"
GROUP_TAG = "machinima_group"
CHILD_TAG = "machinima_child_of"
MATERIAL_TAG = "machinima_material"


@dataclass
class BuildReport:
    set_name: str
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (f"set {self.set_name!r}: {len(self.created)} created, {len(self.updated)} updated, "
                f"{len(self.unchanged)} unchanged, {len(self.removed)} removed")


# --- space conversions (canonical Y-up -> Blender Z-up) ---------------------------------------
def to_blender(points: Any) -> np.ndarray:
    p = np.asarray(points, dtype=np.float64)
    return np.stack([p[..., 0], -p[..., 2], p[..., 1]], axis=-1)


def rotation_to_blender(euler_deg: tuple[float, float, float]) -> Quaternion:
    """Canonical Euler degrees [x, y, z] (applied yaw Y, then pitch X, then roll Z) -> Blender."""
    q = quat.from_euler(np.array([euler_deg[1], euler_deg[0], euler_deg[2]]), order="YXZ")
    _, qb = skeleton.canonical_to_blender(np.zeros(3), q)
    return Quaternion((qb[3], qb[0], qb[1], qb[2]))


def look_at_blender(eye: np.ndarray, target: np.ndarray) -> Quaternion:
    """Rotation of a camera/light (looks down its local -Z, +Y up) at ``eye`` facing ``target``,
    both in Blender space."""
    fwd = np.asarray(target, float) - np.asarray(eye, float)
    fwd /= np.linalg.norm(fwd)
    up = np.array([0.0, 0.0, 1.0])
    if np.linalg.norm(np.cross(fwd, up)) < 1e-6:
        up = np.array([0.0, 1.0, 0.0])
    right = np.cross(fwd, up)
    right /= np.linalg.norm(right)
    true_up = np.cross(right, fwd)
    m = np.stack([right, true_up, -fwd], axis=1)  # columns: local X, Y, Z in world
    return Matrix(m.tolist()).to_quaternion()


# --- helpers ------------------------------------------------------------------------------------
def set_collection(name: str, scene: bpy.types.Scene) -> bpy.types.Collection:
    cname = f"Set {name}"
    col = bpy.data.collections.get(cname)
    if col is None:
        col = bpy.data.collections.new(cname)
    if col.name not in scene.collection.children:
        scene.collection.children.link(col)
    return col


def set_objects(set_name: str) -> dict[str, bpy.types.Object]:
    return {ob[ID_TAG]: ob for ob in bpy.data.objects if ob.get(SET_TAG) == set_name and ID_TAG in ob}


def node_tree(idblock: Any) -> Any:
    """The shader node tree of a material/world; Blender before 5.0 needs ``use_nodes`` first."""
    if bpy.app.version < (5, 0, 0) and not idblock.use_nodes:
        idblock.use_nodes = True
    return idblock.node_tree


def _material(spec: SetSpec, m: MaterialSpec) -> bpy.types.Material:
    key = f"{spec.name}/{m.id}"
    mat = next((x for x in bpy.data.materials if x.get(MATERIAL_TAG) == key), None)
    if mat is None:
        mat = bpy.data.materials.new(f"{spec.name}.{m.id}")
        mat[MATERIAL_TAG] = key
    mat.diffuse_color = m.color
    mat.roughness = m.roughness
    mat.metallic = m.metallic
    nt = node_tree(mat)
    bsdf = next((n for n in nt.nodes if n.type == "BSDF_PRINCIPLED"), None)
    if bsdf is None:
        nt.nodes.clear()
        bsdf = nt.nodes.new("ShaderNodeBsdfPrincipled")
        out = nt.nodes.new("ShaderNodeOutputMaterial")
        nt.links.new(bsdf.outputs[0], out.inputs["Surface"])
    bsdf.inputs["Base Color"].default_value = m.color
    bsdf.inputs["Roughness"].default_value = m.roughness
    bsdf.inputs["Metallic"].default_value = m.metallic
    if "Emission Color" in bsdf.inputs:
        bsdf.inputs["Emission Color"].default_value = m.color
        bsdf.inputs["Emission Strength"].default_value = m.emission
    tex = nt.nodes.get("machinima texture")
    if m.texture:
        if tex is None:
            tex = nt.nodes.new("ShaderNodeTexImage")
            tex.name = "machinima texture"
            tex.projection = "BOX"
            coord = nt.nodes.new("ShaderNodeTexCoord")
            nt.links.new(coord.outputs["Object"], tex.inputs["Vector"])
        if tex.image is None or bpy.path.abspath(tex.image.filepath) != m.texture:
            tex.image = bpy.data.images.load(m.texture, check_existing=True)
        nt.links.new(tex.outputs["Color"], bsdf.inputs["Base Color"])
    elif tex is not None:
        nt.nodes.remove(tex)
    return mat


def _mesh(name: str, verts: np.ndarray, faces: list[tuple[int, ...]], mat: bpy.types.Material | None) -> bpy.types.Mesh:
    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata(to_blender(verts).tolist(), [], faces)
    mesh.update()
    if mat is not None:
        mesh.materials.append(mat)
    return mesh


def _remove(ob: bpy.types.Object) -> None:
    for child in list(ob.children):
        _remove(child)
    data = ob.data
    bpy.data.objects.remove(ob, do_unlink=True)
    if data is not None and data.users == 0:
        for typ, coll in ((bpy.types.Mesh, bpy.data.meshes), (bpy.types.Light, bpy.data.lights),
                          (bpy.types.Camera, bpy.data.cameras), (bpy.types.Armature, bpy.data.armatures)):
            if isinstance(data, typ):
                coll.remove(data)
                break


def _place(ob: bpy.types.Object, position: tuple, rot: Quaternion, scale: tuple = (1.0, 1.0, 1.0)) -> None:
    ob.location = tuple(to_blender(position))
    ob.rotation_mode = "XYZ"
    ob.rotation_euler = rot.to_euler("XYZ")
    ob.scale = (scale[0], scale[2], scale[1])


# --- one entry ------------------------------------------------------------------------------------
def _make(spec: SetSpec, set_id: str, entry: Any, mats: dict[str, bpy.types.Material], ob: bpy.types.Object | None,
          col: bpy.types.Collection) -> bpy.types.Object:
    kind = set_id.split("/")[0]
    name = set_id.replace("/", ".").replace("walls.", "wall.").replace("props.", "prop.").replace("lights.", "light.").replace("cameras.", "cam.")

    def ensure(data: Any, want_type: str) -> bpy.types.Object:
        nonlocal ob
        if ob is not None and ob.type != want_type:
            _remove(ob)
            ob = None
        if ob is None:
            ob = bpy.data.objects.new(name, data)
            col.objects.link(ob)
        else:
            old = ob.data
            ob.data = data
            if old is not None and old != data and old.users == 0:
                {"MESH": bpy.data.meshes, "LIGHT": bpy.data.lights, "CAMERA": bpy.data.cameras}[want_type].remove(old)
        return ob

    if kind == "floor":
        f: FloorSpec = entry
        from .kit import plane

        v, fc = plane(f.size)
        ob = ensure(_mesh(name, v, fc, mats.get(f.material or "")), "MESH")
        _place(ob, f.position, Quaternion())
    elif kind == "walls":
        w: WallSpec = entry
        v, fc = wall_geometry(w.length, w.height, w.thickness, w.openings)
        ob = ensure(_mesh(name, v, fc, mats.get(w.material or "")), "MESH")
        theta = math.atan2(-(w.end[1] - w.start[1]), w.end[0] - w.start[0])
        _place(ob, (w.start[0], 0.0, w.start[1]), Quaternion((0, 0, 1), theta))
    elif kind == "props":
        p: PropSpec = entry
        if p.kit:
            v, fc = kit_geometry(p.kit, p.params)
            ob = ensure(_mesh(name, v, fc, mats.get(p.material or "")), "MESH")
        else:
            fresh = ob is None
            ob = ensure(None, "EMPTY")
            for child in list(ob.children):
                _remove(child)
            try:
                new, top = _import_asset(p, col)
            except Exception:
                if fresh:
                    _remove(ob)  # no half-made prop left behind
                raise
            for child in top:
                child.parent = ob
            for child in new:
                child[CHILD_TAG] = set_id
                if p.group:
                    child[GROUP_TAG] = p.group
        _place(ob, p.position, rotation_to_blender(p.rotation), p.scale)
    elif kind == "lights":
        l: LightSpec = entry
        ltype = l.type.upper()
        data = bpy.data.lights.new(name, ltype)
        data.color = l.color
        data.energy = l.energy
        if ltype == "AREA":
            data.size = l.size
        elif ltype in ("POINT", "SPOT"):
            data.shadow_soft_size = l.size
        if ltype == "SPOT":
            data.spot_size = math.radians(l.spot_size)
        ob = ensure(data, "LIGHT")
        target = l.target if l.target is not None else (l.position[0], l.position[1] - 1.0, l.position[2])
        ob.location = tuple(to_blender(l.position))
        ob.rotation_mode = "XYZ"
        ob.rotation_euler = look_at_blender(to_blender(l.position), to_blender(target)).to_euler("XYZ")
    elif kind == "cameras":
        c: CameraSpec = entry
        data = bpy.data.cameras.new(name)
        data.lens = c.lens
        data.sensor_width = c.sensor
        data.sensor_fit = "HORIZONTAL"
        data.clip_start, data.clip_end = c.clip
        ob = ensure(data, "CAMERA")
        ob.location = tuple(to_blender(c.position))
        ob.rotation_mode = "XYZ"
        ob.rotation_euler = look_at_blender(to_blender(c.position), to_blender(c.target)).to_euler("XYZ")
    else:  # pragma: no cover - entries() only yields the kinds above
        raise SetFileError(f"unknown entry {set_id}")
    assert ob is not None
    ob.name = name
    ob[SET_TAG] = spec.name
    ob[ID_TAG] = set_id
    group = getattr(entry, "group", None)
    if group:
        ob[GROUP_TAG] = group
    elif GROUP_TAG in ob:
        del ob[GROUP_TAG]
    if ob.name not in col.objects:
        col.objects.link(ob)
    return ob


def _import_asset(p: PropSpec, col: bpy.types.Collection) -> tuple[list[bpy.types.Object], list[bpy.types.Object]]:
    """Import an asset file; (every new object, the top-level ones)."""
    path = Path(p.asset or "")
    before = set(bpy.data.objects)
    suffix = path.suffix.lower()
    try:
        if suffix in (".glb", ".gltf"):
            bpy.ops.import_scene.gltf(filepath=str(path))
        elif suffix == ".fbx":
            bpy.ops.import_scene.fbx(filepath=str(path))
        else:
            with bpy.data.libraries.load(str(path), link=False) as (src, dst):
                names = [n for n in src.objects if p.object in (None, n)]
                if p.object and not names:
                    raise SetFileError(f"props {p.id!r}: field 'object': {path.name} has no object {p.object!r}; it has {list(src.objects)[:20]}")
                dst.objects = names
            for o in dst.objects:
                if o is not None:
                    col.objects.link(o)
    except RuntimeError as exc:
        raise SetFileError(f"props {p.id!r}: field 'asset': {path.name} could not be imported: {exc}") from None
    new = [o for o in bpy.data.objects if o not in before]
    for o in new:
        for c in list(o.users_collection):
            c.objects.unlink(o)
        col.objects.link(o)
    return new, [o for o in new if o.parent is None or o.parent not in new]


def _world(spec: SetSpec, scene: bpy.types.Scene) -> None:
    world = scene.world or bpy.data.worlds.new(f"{spec.name} world")
    scene.world = world
    nt = node_tree(world)
    bg = next((n for n in nt.nodes if n.type == "BACKGROUND"), None)
    out = next((n for n in nt.nodes if n.type == "OUTPUT_WORLD"), None)
    if bg is None:
        bg = nt.nodes.new("ShaderNodeBackground")
    if out is None:
        out = nt.nodes.new("ShaderNodeOutputWorld")
    nt.links.new(bg.outputs[0], out.inputs["Surface"])
    bg.inputs["Color"].default_value = (*spec.world.color, 1.0)
    bg.inputs["Strength"].default_value = spec.world.strength
    world.color = spec.world.color
    env = nt.nodes.get("machinima hdri")
    if spec.world.hdri:
        if env is None:
            env = nt.nodes.new("ShaderNodeTexEnvironment")
            env.name = "machinima hdri"
        env.image = bpy.data.images.load(spec.world.hdri, check_existing=True)
        nt.links.new(env.outputs["Color"], bg.inputs["Color"])
    elif env is not None:
        nt.nodes.remove(env)


# --- the build ------------------------------------------------------------------------------------
def build_set(spec: SetSpec | str | Path, scene: bpy.types.Scene | None = None) -> BuildReport:
    """Build or update a set in ``scene`` (default: the current scene)."""
    # 1. inputs
    if not isinstance(spec, SetSpec):
        spec = load_set(spec)
    scene = scene or bpy.context.scene
    report = BuildReport(spec.name)
    col = set_collection(spec.name, scene)
    # 2. materials (updated in place every time: cheap, and keeps colours in sync with the file)
    mats = {mid: _material(spec, m) for mid, m in spec.materials.items()}
    # 3. objects: create, update or keep
    existing = set_objects(spec.name)
    for set_id, entry in spec.entries():
        h = spec_hash(entry)
        if getattr(entry, "asset", None):
            h += f":{os.path.getmtime(entry.asset):.0f}"
        ob = existing.pop(set_id, None)
        if ob is not None and ob.get(HASH_TAG) == h:
            report.unchanged.append(set_id)
            continue
        (report.updated if ob is not None else report.created).append(set_id)
        ob = _make(spec, set_id, entry, mats, ob, col)
        ob[HASH_TAG] = h
    # 4. entries gone from the file
    for set_id, ob in existing.items():
        _remove(ob)
        report.removed.append(set_id)
    # 5. world and active camera
    _world(spec, scene)
    cams = [o for o in col.objects if o.type == "CAMERA" and o.get(SET_TAG) == spec.name]
    if cams and (scene.camera is None or scene.camera.name not in scene.objects):
        order = {f"cameras/{c.id}": i for i, c in enumerate(spec.cameras)}  # the set's first camera, as the file lists them
        scene.camera = min(cams, key=lambda o: (order.get(o[ID_TAG], len(order)), o[ID_TAG]))
    bpy.context.view_layer.update()  # matrix_world of what moved
    scene["machinima_set_name"] = spec.name
    if spec.path:
        scene["machinima_set_path"] = str(spec.path)
    return report


def object_for(set_name: str, set_id: str) -> bpy.types.Object | None:
    return set_objects(set_name).get(set_id)


def group_members(scene: bpy.types.Scene) -> dict[str, list[bpy.types.Object]]:
    """Mask group -> mesh objects (asset children included) in the scene."""
    out: dict[str, list[bpy.types.Object]] = {}
    for ob in scene.objects:
        g = ob.get(GROUP_TAG)
        if g and ob.type == "MESH":
            out.setdefault(str(g), []).append(ob)
    return out

"""The canonical armature (55 Unity HumanBodyBones in a T-pose) and the simple skinned mannequin
the RGB and mask passes see, built in Blender (bpy)."""

from __future__ import annotations

import bpy
import numpy as np

from machinima import skeleton

from .build import to_blender

PERFORMER_TAG = "machinima_performer"
MESH_TAG = "machinima_performer_mesh"


def _primary_child() -> dict[int, int]:
    kids: dict[int, list[int]] = {}
    for i, p in enumerate(skeleton.PARENTS):
        if p >= 0:
            kids.setdefault(int(p), []).append(i)
    out = {}
    for p, cs in kids.items():
        names = [skeleton.BONES[c] for c in cs]
        for want in ("Spine", "Chest", "UpperChest", "Neck", "Head"):
            if want in names and skeleton.BONES[p] != "Head":
                out[p] = cs[names.index(want)]
                break
        else:
            middle = [c for c in cs if "Middle" in skeleton.BONES[c]]
            if middle:
                out[p] = middle[0]
            elif len(cs) == 1:
                out[p] = cs[0]
    return out


def _bone_radius(name: str) -> float:
    if any(k in name for k in ("Thumb", "Index", "Middle", "Ring", "Little")):
        return 0.01
    if name in ("Hips", "Spine", "Chest", "UpperChest"):
        return 0.13
    if name == "Head":
        return 0.1
    if "Eye" in name or name == "Jaw":
        return 0.0
    if "Upper" in name or name == "Neck":
        return 0.06
    return 0.045


def _context_override(ob: bpy.types.Object) -> None:
    view_layer = bpy.context.view_layer
    view_layer.update()
    for o in list(view_layer.objects):
        if o is not None:
            o.select_set(False)
    view_layer.objects.active = ob
    ob.select_set(True)


def create_armature(name: str, collection: bpy.types.Collection | None = None, *, mannequin: bool = True) -> bpy.types.Object:
    """The canonical skeleton as a Blender armature (rest = the canonical T-pose), with a mannequin."""
    scene = bpy.context.scene
    collection = collection or scene.collection
    arm = bpy.data.armatures.new(name)
    ob = bpy.data.objects.new(name, arm)
    collection.objects.link(ob)
    rest_pos, _ = skeleton.forward_kinematics(skeleton.rest_pose())
    heads = to_blender(rest_pos)
    primary = _primary_child()
    _context_override(ob)
    bpy.ops.object.mode_set(mode="EDIT")
    ebs = {}
    for i in skeleton.ORDER:
        bname = skeleton.BONES[i]
        eb = arm.edit_bones.new(bname)
        head = heads[i]
        if i in primary:
            tail = heads[primary[i]]
        elif bname == "Head":
            tail = head + np.array([0.0, 0.0, 0.18])
        else:
            p = skeleton.PARENTS[i]
            d = head - heads[p]
            n = np.linalg.norm(d)
            tail = head + (d / n if n > 1e-6 else np.array([0, 0, 1.0])) * (0.05 if "Toes" not in bname else 0.06)
        if np.linalg.norm(tail - head) < 1e-4:
            tail = head + np.array([0.0, 0.0, 0.05])
        eb.head, eb.tail, eb.roll = tuple(head), tuple(tail), 0.0
        p = skeleton.PARENTS[i]
        if p >= 0:
            eb.parent = ebs[int(p)]
        ebs[i] = eb
    bpy.ops.object.mode_set(mode="OBJECT")
    for pb in ob.pose.bones:
        pb.rotation_mode = "QUATERNION"
    ob[PERFORMER_TAG] = name
    if mannequin:
        _mannequin(ob, collection)
    return ob


def _mannequin(arm_ob: bpy.types.Object, collection: bpy.types.Collection) -> bpy.types.Object:
    verts, faces, groups = [], [], []
    for bone in arm_ob.data.bones:
        r = _bone_radius(bone.name)
        if r <= 0:
            continue
        length = bone.length
        m = np.array(bone.matrix_local)
        base = len(verts)
        for x in (-r, r):
            for y in (0.0, length):
                for z in (-r, r):
                    verts.append((m @ np.array([x, y, z, 1.0]))[:3])
        faces += [tuple(base + k for k in f) for f in [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]]
        groups.append((bone.name, list(range(base, base + 8))))
    mesh = bpy.data.meshes.new(f"{arm_ob.name} mannequin")
    mesh.from_pydata([tuple(v) for v in verts], [], faces)
    mesh.update()
    ob = bpy.data.objects.new(f"{arm_ob.name} mannequin", mesh)
    collection.objects.link(ob)
    for bname, idx in groups:
        vg = ob.vertex_groups.new(name=bname)
        vg.add(idx, 1.0, "REPLACE")
    mod = ob.modifiers.new("Armature", "ARMATURE")
    mod.object = arm_ob
    ob.parent = arm_ob
    ob[MESH_TAG] = arm_ob[PERFORMER_TAG]
    return ob

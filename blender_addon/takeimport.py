"""Take -> Blender (bpy): one armature per performer, engine cameras, markers, frame range.

Each performer gets an armature with the canonical skeleton (55 Unity HumanBodyBones, T-pose
rest) and a simple skinned mannequin mesh (what the RGB and mask passes see), keyframed at the
take's fps: Blender frame N is the take's frame N (0 = timecode_in). A performer can instead
drive an existing rig through a bone map ``{canonical bone: rig bone}``; the rig's rest pose
must be a T-pose facing the same way as the canonical one (see docs/blender.md).

Rotations: the canonical pose gives each bone's rotation relative to its parent in a T-pose
with identity rest rotations, so a bone's world rotation W is the product along its chain.
In Blender, a pose bone whose rest orientation (armature space) is B and whose parent ends up
at P_parent gets the basis rotation ``B^-1 * B_parent * P_parent^-1 * (W_b * B)`` with
``W_b`` the world rotation converted to Blender space. That holds for any rig hierarchy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import bpy
import numpy as np

from machinima import quat, skeleton
from machinima.mouth import OCULUS_VISEMES, VISEME_PREFIX, vrchat_key
from machinima.export import performer_frames
from machinima.store import CAMERA_CHANNELS
from machinima.take import Take
from machinima.tracks import frame_times, resample_poses

from .errors import TakeImportError

PERFORMER_TAG = "machinima_performer"
MESH_TAG = "machinima_performer_mesh"
TAKE_TAG = "machinima_take"
CAMERA_TAG = "machinima_engine_camera"
_R = skeleton._TO_BLENDER  # +90 degrees about X: canonical -> Blender
# Engine cameras (``camera/<name>`` streams) store the engine camera's transform as the bridge
# receives it from Unity/Unreal, mirrored into canonical space: the camera looks along its local
# +Z with +Y up. Blender (and the passes) look down local -Z: turn 180 degrees about local Y.
ENGINE_CAMERA_TO_OPENGL = np.array([0.0, 1.0, 0.0, 0.0])


# --- the canonical armature -----------------------------------------------------------------------
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
    heads = _to_b(rest_pos)
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


def _to_b(p: np.ndarray) -> np.ndarray:
    p = np.asarray(p, float)
    return np.stack([p[..., 0], -p[..., 2], p[..., 1]], axis=-1)


# --- poses onto a rig ---------------------------------------------------------------------------
@dataclass
class RigInfo:
    """What the pose maths needs from an armature (read once from bpy)."""

    bones: list[str]  # rig bone names, parents before children
    parents: np.ndarray  # index into bones or -1
    source: np.ndarray  # canonical bone index driving each rig bone, or -1
    rest: np.ndarray  # (n, 4) xyzw rest orientation in armature space
    heads: np.ndarray  # (n, 3) rest head in armature space
    obj_rot: np.ndarray  # (4,) xyzw of the armature object's world rotation
    obj_inv: np.ndarray  # (4, 4) inverse of the armature object's world matrix
    root: int = -1  # rig bone that takes the Hips translation

    @classmethod
    def read(cls, ob: bpy.types.Object, bone_map: dict[str, str] | None = None) -> "RigInfo":
        if ob.type != "ARMATURE":
            raise TakeImportError(f"{ob.name!r} is not an armature")
        mapping = bone_map or {b: b for b in skeleton.BONES}
        inv: dict[str, int] = {}
        for canon, rig_bone in mapping.items():
            skeleton.bone_index(canon)
            if rig_bone not in ob.data.bones:
                raise TakeImportError(f"bone map entry {canon!r} -> {rig_bone!r}: the rig {ob.name!r} has no bone {rig_bone!r}")
            inv[rig_bone] = skeleton.BONE_INDEX[canon]
        order: list[Any] = []

        def visit(b: Any) -> None:
            order.append(b)
            for c in b.children:
                visit(c)

        for b in ob.data.bones:
            if b.parent is None:
                visit(b)
        names = [b.name for b in order]
        idx = {n: i for i, n in enumerate(names)}
        rest = np.array([_xyzw(b.matrix_local.to_quaternion()) for b in order])
        heads = np.array([tuple(b.head_local) for b in order])
        parents = np.array([idx[b.parent.name] if b.parent else -1 for b in order])
        source = np.array([inv.get(n, -1) for n in names])
        mw = ob.matrix_world
        hips = skeleton.BONE_INDEX["Hips"]
        root = int(np.flatnonzero(source == hips)[0]) if (source == hips).any() else -1
        return cls(names, parents, source, rest, heads, _xyzw(mw.to_quaternion()), np.array(mw.inverted()), root)


def _xyzw(q: Any) -> np.ndarray:
    return np.array([q.x, q.y, q.z, q.w])


def pose_basis(info: RigInfo, poses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pose-bone basis rotations (N, n, 4 xyzw) and the root bone's location (N, 3) for
    canonical poses (N, 55, 7)."""
    poses = np.asarray(poses, float)
    pos_c, rot_c = skeleton.forward_kinematics(poses)  # world, canonical
    n_frames = poses.shape[0]
    r = np.broadcast_to(_R, rot_c.shape)
    w_b = quat.multiply(quat.multiply(r, rot_c), quat.conjugate(r))  # world rotation, Blender axes
    o = np.broadcast_to(info.obj_rot, w_b.shape)
    w_arm = quat.multiply(quat.multiply(quat.conjugate(o), w_b), o)  # ... in armature space
    n = len(info.bones)
    posed = np.zeros((n_frames, n, 4))
    basis = np.zeros((n_frames, n, 4))
    for j in range(n):
        rest = np.broadcast_to(info.rest[j], (n_frames, 4))
        p = info.parents[j]
        if info.source[j] >= 0:
            posed[:, j] = quat.multiply(w_arm[:, info.source[j]], rest)
        elif p >= 0:
            posed[:, j] = quat.multiply(posed[:, p], quat.multiply(quat.conjugate(np.broadcast_to(info.rest[p], (n_frames, 4))), rest))
        else:
            posed[:, j] = rest
        if p >= 0:
            rel = quat.multiply(np.broadcast_to(info.rest[p], (n_frames, 4)), quat.multiply(quat.conjugate(posed[:, p]), posed[:, j]))
        else:
            rel = posed[:, j]
        basis[:, j] = quat.multiply(quat.conjugate(rest), rel)
    basis = quat.normalize(basis)
    loc = np.zeros((n_frames, 3))
    if info.root >= 0:
        hips_b = _to_b(pos_c[:, skeleton.BONE_INDEX["Hips"]])
        hips_arm = hips_b @ info.obj_inv[:3, :3].T + info.obj_inv[:3, 3]
        delta = hips_arm - info.heads[info.root]
        rest = np.broadcast_to(info.rest[info.root], (n_frames, 4))
        if info.parents[info.root] < 0:
            loc = quat.rotate(quat.conjugate(rest), delta)
    return basis, loc


def _continuous(q: np.ndarray) -> np.ndarray:
    """Flip signs so consecutive quaternions (axis 0) stay in one hemisphere (no interpolation flips)."""
    q = q.copy()
    for t in range(1, q.shape[0]):
        flip = np.sum(q[t] * q[t - 1], axis=-1) < 0
        q[t][flip] *= -1
    return q


def _keys(owner: Any, action: Any, path: str, index: int, frames: np.ndarray, values: np.ndarray, group: str | None = None) -> None:
    if hasattr(action, "fcurve_ensure_for_datablock"):  # Blender 4.4+: layered actions with slots
        fc = action.fcurve_ensure_for_datablock(owner, path, index=index, group_name=group or "")
    else:  # Blender 4.2-4.3
        fc = action.fcurves.find(path, index=index) or action.fcurves.new(path, index=index, action_group=group or "")
    fc.keyframe_points.clear()
    fc.keyframe_points.add(len(frames))
    co = np.empty(2 * len(frames), dtype=np.float32)
    co[0::2] = frames
    co[1::2] = values
    fc.keyframe_points.foreach_set("co", co)
    fc.keyframe_points.foreach_set("interpolation", np.full(len(frames), 1, dtype=np.int32))  # LINEAR
    fc.update()


def keyframe_rig(ob: bpy.types.Object, info: RigInfo, frames: np.ndarray, poses: np.ndarray, action_name: str) -> Any:
    """Bake canonical poses onto a rig as one action (one key per frame and channel)."""
    basis, loc = pose_basis(info, poses)
    basis = _continuous(basis)
    ob.animation_data_create()
    action = bpy.data.actions.get(action_name) or bpy.data.actions.new(action_name)
    ob.animation_data.action = action
    for j, name in enumerate(info.bones):
        pb = ob.pose.bones[name]
        pb.rotation_mode = "QUATERNION"
        if info.source[j] < 0:
            continue
        path = f'pose.bones["{name}"].rotation_quaternion'
        wxyz = basis[:, j, [3, 0, 1, 2]]
        for k in range(4):
            _keys(ob, action, path, k, frames, wxyz[:, k], name)
        if j == info.root:
            for k in range(3):
                _keys(ob, action, f'pose.bones["{name}"].location', k, frames, loc[:, k], name)
    return action


def apply_pose(ob: bpy.types.Object, info: RigInfo, pose: np.ndarray) -> None:
    """Set one canonical pose (55, 7) on the rig's pose bones now (live preview)."""
    basis, loc = pose_basis(info, np.asarray(pose)[None])
    for j, name in enumerate(info.bones):
        if info.source[j] < 0:
            continue
        pb = ob.pose.bones[name]
        pb.rotation_mode = "QUATERNION"
        q = basis[0, j]
        pb.rotation_quaternion = (q[3], q[0], q[1], q[2])
        if j == info.root:
            pb.location = tuple(loc[0])


# --- the import -----------------------------------------------------------------------------------
@dataclass
class ImportReport:
    take_id: str
    fps: Fraction
    armatures: dict[str, str] = field(default_factory=dict)  # performer -> object name
    cameras: dict[str, str] = field(default_factory=dict)  # engine camera -> object name
    markers: list[tuple[str, int]] = field(default_factory=list)
    frame_range: tuple[int, int] = (0, 0)
    shape_keys: dict[str, dict[str, str]] = field(default_factory=dict)  # performer -> {channel: shape key}

    def summary(self) -> str:
        mouths = f", shape keys for {', '.join(self.shape_keys)}" if self.shape_keys else ""
        return (f"take {self.take_id}: {len(self.armatures)} performers, {len(self.cameras)} cameras, "
                f"{len(self.markers)} markers, frames {self.frame_range[0]}-{self.frame_range[1]} at {self.fps} fps{mouths}")


# Shape-key names tried for each blend channel, in order (VRM, VRChat, VRoid/Fcl): the mapping
# table a rig can override with ``shape_keys={channel: key name}``.
SHAPE_KEY_ALIASES: dict[str, tuple[str, ...]] = {
    "A": ("A", "vrc.v_aa", "Fcl_MTH_A", "MTH_A", "aa"),
    "I": ("I", "vrc.v_ih", "Fcl_MTH_I", "MTH_I", "ih"),
    "U": ("U", "vrc.v_ou", "Fcl_MTH_U", "MTH_U", "ou"),
    "E": ("E", "vrc.v_e", "Fcl_MTH_E", "MTH_E", "e"),
    "O": ("O", "vrc.v_oh", "Fcl_MTH_O", "MTH_O", "oh"),
}
# Lip sync's Oculus viseme channels (``viseme_aa`` ...) drive VRChat's viseme shape keys
# (``vrc.v_aa`` ...); where a stream has them, they take those keys before the A..O aliases do.
SHAPE_KEY_ALIASES.update({f"{VISEME_PREFIX}{v}": (f"{VISEME_PREFIX}{v}", vrchat_key(v)) for v in OCULUS_VISEMES})
# The generated mannequin gets these keys, so a take's mouth animation shows on it too:
# (channel, how far the head's lower vertices move along Blender -Z, along X)
MANNEQUIN_MOUTH = {"A": (0.03, 1.0), "I": (0.008, 1.12), "U": (0.012, 0.85), "E": (0.018, 1.08), "O": (0.022, 0.9)}


def _mannequin_mouth_keys(mesh_ob: bpy.types.Object) -> None:
    """Shape keys A I U E O on the mannequin's head box: its lower half opens and widens."""
    head = mesh_ob.vertex_groups.get("Head")
    if head is None or mesh_ob.data.shape_keys is not None:
        return
    idx = [v.index for v in mesh_ob.data.vertices if any(g.group == head.index for g in v.groups)]
    if not idx:
        return
    co = np.array([tuple(mesh_ob.data.vertices[i].co) for i in idx])
    low = co[:, 2] <= co[:, 2].mean()
    centre_x = co[:, 0].mean()
    mesh_ob.shape_key_add(name="Basis")
    for name, (drop, widen) in MANNEQUIN_MOUTH.items():
        key = mesh_ob.shape_key_add(name=name)
        for i, c, is_low in zip(idx, co, low):
            if is_low:
                key.data[i].co = (centre_x + (c[0] - centre_x) * widen, c[1], c[2] - drop)


def keyframe_shape_keys(meshes: list[bpy.types.Object], take: Take, performer: str,
                        shape_keys: dict[str, str] | None = None) -> dict[str, str]:
    """Animate shape keys from the performer's blend streams (``blend/<performer>-mouth`` from lip
    sync, or any blend stream whose meta names the performer); returns channel -> shape key."""
    store = take.store
    streams = [st for st in store.streams() if st.kind == "blend" and
               (st.meta.get("performer") == performer or st.name == f"blend/{performer}-mouth")]
    done: dict[str, str] = {}
    for st in streams:
        track = store.read(st.name)
        if len(track) == 0:
            continue
        frames = take_frames(take, track.t_ns)
        channels = list(st.meta.get("channels", []))
        visemes_first = sorted(range(len(channels)), key=lambda c: not channels[c].startswith(VISEME_PREFIX))
        for ob in meshes:
            keys = ob.data.shape_keys if ob.type == "MESH" else None
            if keys is None:
                continue
            claimed: set[str] = set()
            for c in visemes_first:
                channel = channels[c]
                mapped = (shape_keys or {}).get(channel)
                wanted = (mapped,) + tuple(n for n in SHAPE_KEY_ALIASES.get(channel, (channel,)) if n not in claimed)
                name = next((n for n in wanted if n and n in keys.key_blocks), None)
                if name is None:
                    continue
                claimed.add(name)
                keys.animation_data_create()
                act = bpy.data.actions.get(f"{take.id} {performer} shape keys") or bpy.data.actions.new(f"{take.id} {performer} shape keys")
                keys.animation_data.action = act
                _keys(keys, act, f'key_blocks["{name}"].value', 0, frames, np.clip(track.values[:, c], 0.0, 1.0))
                done[channel] = name
    return done


def set_scene_fps(scene: bpy.types.Scene, fps: Fraction) -> None:
    base = max(1, round(float(fps)))
    scene.render.fps = base
    scene.render.fps_base = base / float(fps)


def take_frames(take: Take, stamps: np.ndarray) -> np.ndarray:
    """Take frame indices (0 = timecode_in) of consecutive frame stamps."""
    store = take.store
    f0 = int(store.frames_of(np.asarray(stamps[:1]))[0]) - store.start_frame
    return f0 + np.arange(len(stamps))


def import_take(take_path: str | Path, scene: bpy.types.Scene | None = None, *, performers: list[str] | None = None,
                rig: str | None = None, bone_map: dict[str, str] | None = None, mannequin: bool = True,
                shape_keys: dict[str, str] | None = None) -> ImportReport:
    """Import a take's performers, engine cameras and markers into ``scene``; re-importing the
    same take replaces what the last import made."""
    # 1. check inputs
    take = Take.open(take_path)
    scene = scene or bpy.context.scene
    store = take.store
    names = store.performers()
    if performers:
        missing = [p for p in performers if p not in names]
        if missing:
            raise TakeImportError(f"take {take.id} has no performer {missing[0]!r}; it has {names}")
        names = list(performers)
    cam_streams = [s.name for s in store.streams() if s.kind == "camera"]
    if not names and not cam_streams:
        raise TakeImportError(f"take {take.id} has no performers and no cameras to import", hint="record mocap into it first")
    rig_ob = None
    if rig is not None:
        rig_ob = bpy.data.objects.get(rig)
        if rig_ob is None or rig_ob.type != "ARMATURE":
            raise TakeImportError(f"no armature named {rig!r} in the scene to retarget onto")
        if len(names) != 1:
            raise TakeImportError(f"retargeting onto {rig!r} needs exactly one performer; pick one of {names} with --performer")
    report = ImportReport(take.id, take.fps)
    set_scene_fps(scene, take.fps)
    col = bpy.data.collections.get(f"Take {take.id}") or bpy.data.collections.new(f"Take {take.id}")
    if col.name not in scene.collection.children:
        scene.collection.children.link(col)
    lo, hi = None, None
    # 2. performers
    for name in names:
        stamps, poses = performer_frames(take, name)
        frames = take_frames(take, stamps)
        if rig_ob is not None:
            ob = rig_ob
            info = RigInfo.read(ob, bone_map)
        else:
            for old in [o for o in bpy.data.objects if o.get(PERFORMER_TAG) == name and o.get(TAKE_TAG) == take.id]:
                for child in list(old.children):
                    bpy.data.objects.remove(child, do_unlink=True)
                bpy.data.objects.remove(old, do_unlink=True)
            ob = create_armature(name, col, mannequin=mannequin)
            info = RigInfo.read(ob)
        ob[PERFORMER_TAG] = name
        ob[TAKE_TAG] = take.id
        keyframe_rig(ob, info, frames, poses, f"{take.id} {name}")
        report.armatures[name] = ob.name
        meshes = [c for c in ob.children if c.type == "MESH"]
        for m in meshes:
            if m.get(MESH_TAG) == name:
                _mannequin_mouth_keys(m)
        mapped = keyframe_shape_keys(meshes, take, name, shape_keys)
        if mapped:
            report.shape_keys[name] = mapped
        lo = int(frames[0]) if lo is None else min(lo, int(frames[0]))
        hi = int(frames[-1]) if hi is None else max(hi, int(frames[-1]))
    # 3. engine cameras
    for stream in cam_streams:
        cname = stream.split("/", 1)[1]
        track = store.read(stream)
        if len(track) == 0:
            continue
        at = frame_times(int(track.t_ns[0]), int(track.t_ns[-1]), take.fps)
        vals = resample_poses(track.t_ns, track.values[:, None, :], at)[:, 0, :]
        frames = take_frames(take, at)
        ob = next((o for o in bpy.data.objects if o.get(CAMERA_TAG) == cname and o.get(TAKE_TAG) == take.id), None)
        if ob is None:
            data = bpy.data.cameras.new(f"engine {cname}")
            ob = bpy.data.objects.new(f"engine {cname}", data)
            col.objects.link(ob)
        ob[CAMERA_TAG] = cname
        ob[TAKE_TAG] = take.id
        ob.rotation_mode = "QUATERNION"
        ob.data.sensor_fit = "HORIZONTAL"
        pos_b = _to_b(vals[:, 0:3])
        q_gl = quat.multiply(vals[:, 3:7].astype(np.float64), np.broadcast_to(ENGINE_CAMERA_TO_OPENGL, (len(at), 4)))
        q_b = _continuous(quat.normalize(quat.multiply(np.broadcast_to(_R, (len(at), 4)), q_gl)))
        ob.animation_data_create()
        act = bpy.data.actions.get(f"{take.id} camera {cname}") or bpy.data.actions.new(f"{take.id} camera {cname}")
        ob.animation_data.action = act
        for k in range(3):
            _keys(ob, act, "location", k, frames, pos_b[:, k])
        wxyz = q_b[:, [3, 0, 1, 2]]
        for k in range(4):
            _keys(ob, act, "rotation_quaternion", k, frames, wxyz[:, k])
        ch = {c: i for i, c in enumerate(CAMERA_CHANNELS)}
        focal, sensor = vals[:, ch["focal_mm"]], vals[:, ch["sensor_w_mm"]]
        ob.data.animation_data_create()
        dact = bpy.data.actions.get(f"{take.id} lens {cname}") or bpy.data.actions.new(f"{take.id} lens {cname}")
        ob.data.animation_data.action = dact
        if np.all(focal > 0):
            _keys(ob.data, dact, "lens", 0, frames, focal)
        if np.all(sensor > 0):
            ob.data.sensor_width = float(sensor[0])
        report.cameras[cname] = ob.name
        lo = int(frames[0]) if lo is None else min(lo, int(frames[0]))
        hi = int(frames[-1]) if hi is None else max(hi, int(frames[-1]))
    # 4. markers and the frame range
    wanted = [(str(ev["payload"].get("name", "marker")), int(ev["frame"]) - store.start_frame) for ev in store.events(kind="marker")]
    for m in [mk for mk in scene.timeline_markers if (mk.name, mk.frame) in wanted]:
        scene.timeline_markers.remove(m)  # a re-import replaces its markers
    for label, f in wanted:
        scene.timeline_markers.new(label, frame=f)
        report.markers.append((label, f))
    scene.frame_start, scene.frame_end = lo or 0, hi if hi is not None else 0
    scene.frame_set(scene.frame_start)
    scene["machinima_take"] = str(Path(take.path).resolve())
    report.frame_range = (scene.frame_start, scene.frame_end)
    return report


def canonical_bone_world(ob: bpy.types.Object, bone: str) -> tuple[np.ndarray, np.ndarray]:
    """(position, rotation xyzw) of a pose bone of a canonical armature in canonical world space,
    as Blender evaluates it now (used by tests and the pose map)."""
    pb = ob.pose.bones[bone]
    m = ob.matrix_world @ pb.matrix
    rest = ob.matrix_world @ pb.bone.matrix_local
    w_b = (m.to_quaternion() @ rest.to_quaternion().inverted())
    p_b = np.array(m.translation)
    p_c, q_c = skeleton.blender_to_canonical(p_b, _xyzw(w_b))
    return p_c, q_c


__all__ = ["import_take", "create_armature", "RigInfo", "pose_basis", "apply_pose", "keyframe_rig", "canonical_bone_world",
           "ImportReport"]

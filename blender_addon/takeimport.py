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

import bpy
import numpy as np

from machinima import quat, skeleton
from machinima.mouth import OCULUS_VISEMES, VISEME_PREFIX, vrchat_key
from machinima.export import performer_frames
from machinima.store import CAMERA_CHANNELS
from machinima.take import Take
from machinima.tracks import frame_times, resample_poses

from .armature import MESH_TAG, PERFORMER_TAG, create_armature
from .build import to_blender
from .errors import TakeImportError
from .rigpose import TO_BLENDER_ROT, RigInfo, apply_pose, continuous, key_fcurve, keyframe_rig, pose_basis, xyzw

__all__ = ["CAMERA_TAG", "ENGINE_CAMERA_TO_OPENGL", "MESH_TAG", "PERFORMER_TAG", "TAKE_TAG", "ImportReport", "RigInfo", "apply_pose",
           "canonical_bone_world", "create_armature", "import_take", "keyframe_rig", "keyframe_shape_keys", "pose_basis",
           "set_scene_fps", "take_frames"]

TAKE_TAG = "machinima_take"
CAMERA_TAG = "machinima_engine_camera"
# Engine cameras (``camera/<name>`` streams) store the engine camera's transform as the bridge
# receives it from Unity/Unreal, mirrored into canonical space: the camera looks along its local
# +Z with +Y up. Blender (and the passes) look down local -Z: turn 180 degrees about local Y.
ENGINE_CAMERA_TO_OPENGL = np.array([0.0, 1.0, 0.0, 0.0])


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
                key_fcurve(keys, act, f'key_blocks["{name}"].value', 0, frames, np.clip(track.values[:, c], 0.0, 1.0))
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
        pos_b = to_blender(vals[:, 0:3])
        q_gl = quat.multiply(vals[:, 3:7].astype(np.float64), np.broadcast_to(ENGINE_CAMERA_TO_OPENGL, (len(at), 4)))
        q_b = continuous(quat.normalize(quat.multiply(np.broadcast_to(TO_BLENDER_ROT, (len(at), 4)), q_gl)))
        ob.animation_data_create()
        act = bpy.data.actions.get(f"{take.id} camera {cname}") or bpy.data.actions.new(f"{take.id} camera {cname}")
        ob.animation_data.action = act
        for k in range(3):
            key_fcurve(ob, act, "location", k, frames, pos_b[:, k])
        wxyz = q_b[:, [3, 0, 1, 2]]
        for k in range(4):
            key_fcurve(ob, act, "rotation_quaternion", k, frames, wxyz[:, k])
        ch = {c: i for i, c in enumerate(CAMERA_CHANNELS)}
        focal, sensor = vals[:, ch["focal_mm"]], vals[:, ch["sensor_w_mm"]]
        ob.data.animation_data_create()
        dact = bpy.data.actions.get(f"{take.id} lens {cname}") or bpy.data.actions.new(f"{take.id} lens {cname}")
        ob.data.animation_data.action = dact
        if np.all(focal > 0):
            key_fcurve(ob.data, dact, "lens", 0, frames, focal)
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
    p_c, q_c = skeleton.blender_to_canonical(p_b, xyzw(w_b))
    return p_c, q_c

"""Render passes for post into ``<take>/passes/`` (bpy), in the format of ``machinima.passes``.

How each pass is made (the same on Blender 4.2 to 5.x: no compositor, no multilayer EXR):
- rgb: the chosen engine (cycles, eevee, workbench) renders the scene as lit.
- depth + ids: one Cycles render, 1 sample, a 0.01-pixel box filter, no bounces, with a view-layer
  material override that emits (planar camera depth, object index, 0): the EXR holds exact depth
  in metres at each pixel centre and the id of the object seen there. The world emits
  (BACKGROUND_DEPTH, 0, 0).
- normal: the same with an override that emits the camera-space normal (OpenGL axes: +X right,
  +Y up, +Z towards the camera).
- mask/<name>: from the id map: one per performer (its mannequin or mapped rig meshes) and per
  object group of the set (``group = "..."`` in the set file).
- pose: the take's bones (forward kinematics, canonical space) projected through the camera,
  drawn OpenPose-style; camera.json: K and world_to_camera per frame.

Reruns resume: a frame whose files all exist, rendered with the same settings, is skipped.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import bpy
import numpy as np

from machinima.passes import BACKGROUND_DEPTH, CameraFrame, PassSet

from .build import node_tree
from .errors import RenderError
from .posemap import camera_frame, draw_pose_map, openpose_keypoints
from .takeimport import MESH_TAG, PERFORMER_TAG, TAKE_TAG

PASSES = ("rgb", "depth", "normal", "mask", "pose")
ENGINES = {"cycles": "CYCLES", "eevee": "BLENDER_EEVEE", "workbench": "BLENDER_WORKBENCH"}


@dataclass
class RenderSettings:
    passes: tuple[str, ...] = ("rgb", "depth", "mask", "pose")
    width: int = 960
    height: int = 540
    engine: str = "cycles"
    frames: tuple[int, int] | None = None  # inclusive; None = the scene's range
    step: int = 1
    samples: int = 16
    camera: str | None = None  # object name; None = the scene camera

    def check(self) -> None:
        bad = [p for p in self.passes if p not in PASSES]
        if bad or not self.passes:
            raise RenderError(f"unknown pass {bad[0]!r}" if bad else "no passes asked for", hint=f"passes: {', '.join(PASSES)}")
        if self.engine not in ENGINES:
            raise RenderError(f"unknown engine {self.engine!r}", hint=f"engines: {', '.join(ENGINES)}")
        if not (1 <= self.width <= 16384 and 1 <= self.height <= 16384):
            raise RenderError(f"resolution {self.width}x{self.height} is out of range (1..16384)")
        if self.step < 1:
            raise RenderError(f"--step must be 1 or more, got {self.step}")
        if self.samples < 1:
            raise RenderError(f"--samples must be 1 or more, got {self.samples}")
        if self.frames and self.frames[1] < self.frames[0]:
            raise RenderError(f"frame range {self.frames[0]}:{self.frames[1]} ends before it starts")


def parse_res(text: str) -> tuple[int, int]:
    try:
        w, h = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise RenderError(f"resolution {text!r} is not WIDTHxHEIGHT, e.g. 960x540") from None
    return w, h


def parse_frames(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    try:
        a, b = text.split(":")
        return int(a), int(b)
    except ValueError:
        raise RenderError(f"frame range {text!r} is not A:B, e.g. 0:47") from None


@dataclass
class RenderReport:
    out: Path
    frames: list[int] = field(default_factory=list)
    rendered: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    seconds: float = 0.0
    per_pass_s: dict[str, float] = field(default_factory=dict)

    def summary(self) -> str:
        rate = self.seconds / max(1, len(self.rendered))
        return (f"{len(self.rendered)} frames rendered, {len(self.skipped)} already done, into {self.out} "
                f"({rate:.2f} s/frame)")


# --- scene state helpers ------------------------------------------------------------------------------
class _Saved:
    """Remember attributes and put them back (data renders must not change the artist's scene)."""

    def __init__(self) -> None:
        self.items: list[tuple[Any, str, Any]] = []

    def set(self, owner: Any, attr: str, value: Any) -> None:
        self.items.append((owner, attr, getattr(owner, attr)))
        setattr(owner, attr, value)

    def restore(self) -> None:
        for owner, attr, value in reversed(self.items):
            try:
                setattr(owner, attr, value)
            except (AttributeError, TypeError, ReferenceError):
                pass
        self.items.clear()


def _engine_id(name: str) -> str:
    ident = ENGINES[name]
    items = {e.identifier for e in bpy.types.RenderSettings.bl_rna.properties["engine"].enum_items}
    if ident == "BLENDER_EEVEE" and ident not in items and "BLENDER_EEVEE_NEXT" in items:
        return "BLENDER_EEVEE_NEXT"  # Blender 4.2-4.4
    return ident


def _override_material(kind: str) -> bpy.types.Material:
    name = f"machinima {kind} pass"
    mat = bpy.data.materials.get(name)
    if mat is not None:
        return mat
    mat = bpy.data.materials.new(name)
    nt = node_tree(mat)
    nt.nodes.clear()
    out = nt.nodes.new("ShaderNodeOutputMaterial")
    em = nt.nodes.new("ShaderNodeEmission")
    em.inputs["Strength"].default_value = 1.0
    nt.links.new(em.outputs[0], out.inputs["Surface"])
    comb = nt.nodes.new("ShaderNodeCombineXYZ")
    nt.links.new(comb.outputs[0], em.inputs["Color"])
    if kind == "depth":
        cam = nt.nodes.new("ShaderNodeCameraData")
        info = nt.nodes.new("ShaderNodeObjectInfo")
        nt.links.new(cam.outputs["View Z Depth"], comb.inputs[0])
        nt.links.new(info.outputs["Object Index"], comb.inputs[1])
    else:
        geo = nt.nodes.new("ShaderNodeNewGeometry")
        vt = nt.nodes.new("ShaderNodeVectorTransform")
        vt.vector_type, vt.convert_from, vt.convert_to = "NORMAL", "WORLD", "CAMERA"
        nt.links.new(geo.outputs["Normal"], vt.inputs[0])
        sep = nt.nodes.new("ShaderNodeSeparateXYZ")
        nt.links.new(vt.outputs[0], sep.inputs[0])
        # Cycles' camera space is +X right, +Y up, +Z forward (into the scene): flip Z for OpenGL axes
        neg_z = nt.nodes.new("ShaderNodeMath")
        neg_z.operation = "MULTIPLY"
        neg_z.inputs[1].default_value = -1.0
        nt.links.new(sep.outputs[0], comb.inputs[0])
        nt.links.new(sep.outputs[2], neg_z.inputs[0])
        nt.links.new(sep.outputs[1], comb.inputs[1])
        nt.links.new(neg_z.outputs[0], comb.inputs[2])
    return mat


def _data_world(value: tuple[float, float, float]) -> bpy.types.World:
    name = f"machinima data world {value}"
    world = bpy.data.worlds.get(name) or bpy.data.worlds.new(name)
    nt = node_tree(world)
    bg = next((n for n in nt.nodes if n.type == "BACKGROUND"), None) or nt.nodes.new("ShaderNodeBackground")
    out = next((n for n in nt.nodes if n.type == "OUTPUT_WORLD"), None) or nt.nodes.new("ShaderNodeOutputWorld")
    nt.links.new(bg.outputs[0], out.inputs["Surface"])
    bg.inputs["Color"].default_value = (*value, 1.0)
    bg.inputs["Strength"].default_value = 1.0
    return world


def _render_to(scene: bpy.types.Scene, path: Path) -> None:
    scene.render.filepath = str(path)
    bpy.ops.render.render(write_still=True, scene=scene.name)
    if not path.exists():
        raise RenderError(f"Blender rendered nothing to {path}; check the console for Blender's own error")


def _read_exr(path: Path) -> np.ndarray:
    from machinima.imageseq import read_image

    return read_image(path)


def _data_render(scene: bpy.types.Scene, kind: str, tmp: Path, frame: int) -> np.ndarray:
    saved = _Saved()
    try:
        r = scene.render
        saved.set(r, "engine", "CYCLES")
        c = scene.cycles
        for attr, val in (("samples", 1), ("use_denoising", False), ("max_bounces", 0), ("filter_width", 0.01),
                          ("pixel_filter_type", "BOX"), ("use_adaptive_sampling", False), ("device", "CPU"),
                          ("film_transparent_glass", False)):
            if hasattr(c, attr):
                saved.set(c, attr, val)
        saved.set(r, "film_transparent", False)
        saved.set(r, "use_motion_blur", False)
        saved.set(r, "use_compositing", False)  # the artist's compositor must not touch data
        saved.set(r, "use_sequencer", False)
        saved.set(r, "use_single_layer", True)
        vs = scene.view_settings
        saved.set(vs, "view_transform", "Standard")
        saved.set(vs, "look", "None")
        saved.set(vs, "exposure", 0.0)
        saved.set(vs, "gamma", 1.0)
        saved.set(bpy.context.view_layer if bpy.context.scene == scene else scene.view_layers[0], "material_override",
                  _override_material(kind))
        saved.set(scene, "world", _data_world((BACKGROUND_DEPTH, 0.0, 0.0) if kind == "depth" else (0.0, 0.0, 0.0)))
        if scene.camera and scene.camera.type == "CAMERA":
            saved.set(scene.camera.data.dof, "use_dof", False)
        im = r.image_settings
        saved.set(im, "file_format", "OPEN_EXR")
        saved.set(im, "color_depth", "32")
        saved.set(im, "color_mode", "RGB")
        if hasattr(im, "exr_codec"):
            saved.set(im, "exr_codec", "ZIP")
        path = tmp / f"{kind}_{frame}.exr"
        _render_to(scene, path)
        return _read_exr(path)
    finally:
        saved.restore()


def _rgb_render(scene: bpy.types.Scene, settings: RenderSettings, tmp: Path, frame: int) -> np.ndarray:
    from machinima.imageseq import read_image

    saved = _Saved()
    try:
        r = scene.render
        saved.set(r, "engine", _engine_id(settings.engine))
        if settings.engine == "cycles":
            saved.set(r, "use_persistent_data", True)  # keep the BVH between frames of a shot
            saved.set(scene.cycles, "samples", settings.samples)
            saved.set(scene.cycles, "device", "CPU")
            saved.set(scene.cycles, "use_denoising", False)
        elif settings.engine == "eevee" and hasattr(scene.eevee, "taa_render_samples"):
            saved.set(scene.eevee, "taa_render_samples", settings.samples)
        elif settings.engine == "workbench":
            saved.set(scene.display.shading, "color_type", "MATERIAL")
            saved.set(scene.display.shading, "light", "STUDIO")
        saved.set(r, "film_transparent", False)
        im = r.image_settings
        saved.set(im, "file_format", "PNG")
        saved.set(im, "color_mode", "RGB")
        saved.set(im, "color_depth", "8")
        path = tmp / f"rgb_{frame}.png"
        _render_to(scene, path)
        return read_image(path)
    finally:
        saved.restore()


def scene_camera_frame(scene: bpy.types.Scene, cam_ob: bpy.types.Object) -> CameraFrame:
    r = scene.render
    w = int(r.resolution_x * r.resolution_percentage / 100)
    h = int(r.resolution_y * r.resolution_percentage / 100)
    d = cam_ob.data
    if d.type != "PERSP":
        raise RenderError(f"camera {cam_ob.name!r} is {d.type}; passes need a perspective camera")
    return camera_frame(np.array(cam_ob.matrix_world), width=w, height=h, lens_mm=d.lens, sensor_mm=d.sensor_width,
                        sensor_fit=d.sensor_fit, sensor_height_mm=d.sensor_height, shift=(d.shift_x, d.shift_y),
                        clip=(d.clip_start, d.clip_end))


def _mask_sources(scene: bpy.types.Scene) -> dict[str, tuple[str, list[bpy.types.Object]]]:
    """mask name -> (kind, mesh objects)."""
    from .build import group_members

    out: dict[str, tuple[str, list[bpy.types.Object]]] = {}
    for ob in scene.objects:
        if ob.type == "ARMATURE" and ob.get(PERFORMER_TAG):
            name = str(ob[PERFORMER_TAG])
            meshes = [c for c in scene.objects if c.type == "MESH" and (c.get(MESH_TAG) == name or c.parent == ob or
                      any(m.type == "ARMATURE" and m.object == ob for m in c.modifiers))]
            out[name] = ("performer", meshes)
    for g, obs in group_members(scene).items():
        name = g if g not in out else f"group_{g}"
        out[name] = ("group", obs)
    return out


# --- the pipeline -------------------------------------------------------------------------------------
def render_passes(out_dir: str | Path, settings: RenderSettings, scene: bpy.types.Scene | None = None, *,
                  take_poses: dict[str, tuple[np.ndarray, np.ndarray]] | None = None, fps: str = "24",
                  progress: bool = True) -> RenderReport:
    """Render ``settings.passes`` of ``scene`` into ``out_dir`` (a take's passes folder).

    ``take_poses``: performer -> (take frame indices, canonical poses (N, 55, 7)) for the pose map.
    """
    # 1. check inputs
    settings.check()
    scene = scene or bpy.context.scene
    cam_ob = bpy.data.objects.get(settings.camera) if settings.camera else scene.camera
    if settings.camera and cam_ob is None:
        cams = [o.name for o in scene.objects if o.type == "CAMERA"]
        raise RenderError(f"no camera named {settings.camera!r}; cameras: {cams}")
    if cam_ob is None or cam_ob.type != "CAMERA":
        raise RenderError("the scene has no camera", hint="add [[cameras]] to the set file or pass --camera")
    if "pose" in settings.passes and not take_poses:
        raise RenderError("the pose pass needs a take with performers", hint="render a take, or leave 'pose' out of --passes")
    frames_range = settings.frames or (scene.frame_start, scene.frame_end)
    frames = list(range(frames_range[0], frames_range[1] + 1, settings.step))
    out = Path(out_dir)
    # 2. prepare the scene: resolution, camera, object ids for the masks
    saved = _Saved()
    saved.set(scene.render, "resolution_x", settings.width)
    saved.set(scene.render, "resolution_y", settings.height)
    saved.set(scene.render, "resolution_percentage", 100)
    saved.set(scene.render, "pixel_aspect_x", 1.0)
    saved.set(scene.render, "pixel_aspect_y", 1.0)
    saved.set(scene, "camera", cam_ob)
    masks = _mask_sources(scene) if "mask" in settings.passes else {}
    ids: dict[str, list[int]] = {}
    next_id = 1
    for name, (_, obs) in masks.items():
        ids[name] = []
        for ob in obs:
            if ob.pass_index == 0 or ob.pass_index in {i for v in ids.values() for i in v}:
                saved.set(ob, "pass_index", next_id)
                next_id += 1
            ids[name].append(ob.pass_index)
    # what changes the pixels (not the frame range: rendering a shot in chunks adds to one pass set)
    look = {k: v for k, v in asdict(settings).items() if k not in ("frames", "step")}
    params = {"settings": look, "camera": cam_ob.name, "masks": sorted(masks), "version": 1}
    params_hash = stable_hash(params)
    ps = PassSet.open(out) if (out / "passes.json").exists() else None
    if ps is None or ps.meta.get("render", {}).get("hash") != params_hash or ps.size != (settings.width, settings.height):
        ps = PassSet.replace(out, width=settings.width, height=settings.height, fps=fps)  # other settings: the old set moves aside
    ps.meta["engine"] = settings.engine
    ps.meta["render"] = {"hash": params_hash, **params}
    for name in masks:
        ps.meta.setdefault("masks", {})[name] = masks[name][0]
    try:
        cams = ps.cameras()
    except Exception:
        cams = {}
    report = RenderReport(out, frames)
    kps = {name: (np.asarray(f), openpose_keypoints(p)) for name, (f, p) in (take_poses or {}).items()} if "pose" in settings.passes else {}

    def done(f: int) -> bool:
        want = [n for n in settings.passes if n != "mask"] + [f"mask/{m}" for m in masks]
        return f in cams and f in ps.frames and all(ps.path(n, f).exists() for n in want)

    # 3. the frame loop (resumable, interruptible)
    bar = _Bar(progress, f"passes {','.join(settings.passes)}", len(frames))
    t_start = time.perf_counter()
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".render-", dir=out) as tmpd:  # beside the passes, same disk
            tmp = Path(tmpd)
            for f in frames:
                if done(f):
                    report.skipped.append(f)
                    bar.advance(1)
                    continue
                scene.frame_set(f)
                cam = scene_camera_frame(scene, cam_ob)
                t = time.perf_counter()
                if "rgb" in settings.passes:
                    ps.write("rgb", f, _rgb_render(scene, settings, tmp, f))
                    _add(report, "rgb", t)
                if "depth" in settings.passes or "mask" in settings.passes:
                    t = time.perf_counter()
                    data = _data_render(scene, "depth", tmp, f)
                    if "depth" in settings.passes:
                        ps.write("depth", f, np.ascontiguousarray(data[..., 0].astype(np.float32)))
                    idmap = np.rint(data[..., 1]).astype(np.int64)
                    for name, id_list in ids.items():
                        ps.write(f"mask/{name}", f, (np.isin(idmap, id_list) * 255).astype(np.uint8), mask_kind=masks[name][0])
                    _add(report, "depth+mask", t)
                if "normal" in settings.passes:
                    t = time.perf_counter()
                    ps.write("normal", f, _data_render(scene, "normal", tmp, f).astype(np.float32))
                    _add(report, "normal", t)
                if "pose" in settings.passes:
                    t = time.perf_counter()
                    pts = []
                    for frames_k, kp in kps.values():
                        k = int(np.clip(np.searchsorted(frames_k, f), 0, len(frames_k) - 1))
                        if frames_k[k] == f:
                            pts.append(kp[k])
                    ps.write("pose", f, draw_pose_map(cam, pts))
                    _add(report, "pose", t)
                cams[f] = cam
                ps.write_cameras(cams)
                ps.save()
                report.rendered.append(f)
                bar.advance(1)
    except KeyboardInterrupt:
        ps.save()
        raise RenderError(f"interrupted after {len(report.rendered)} frames", hint="run the same command again to resume") from None
    finally:
        bar.close()
        saved.restore()
        ps.save()
    report.seconds = time.perf_counter() - t_start
    return report


def stable_hash(obj: Any) -> str:
    import hashlib
    import json

    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


class _Bar:
    """A rich progress bar when rich is there and wanted (Blender's own Python may lack rich)."""

    def __init__(self, enabled: bool, description: str, total: int) -> None:
        self.progress = None
        if enabled:
            try:
                from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
            except ImportError:
                return
            self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
            self.progress.start()
            self.task = self.progress.add_task(description, total=total)

    def advance(self, n: int) -> None:
        if self.progress is not None:
            self.progress.advance(self.task, n)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()


def _add(report: RenderReport, name: str, t: float) -> None:
    report.per_pass_s[name] = report.per_pass_s.get(name, 0.0) + time.perf_counter() - t


def render_take(take_path: str | Path, settings: RenderSettings, *, set_path: str | Path | None = None,
                blend: str | Path | None = None, progress: bool = True) -> RenderReport:
    """One command from a set file (or a .blend) and a take to passes in the take folder."""
    from machinima.export import performer_frames
    from machinima.take import Take

    from .build import build_set
    from .takeimport import import_take, take_frames

    # 1. inputs
    take = Take.open(take_path)
    settings.check()
    if blend:
        if not Path(blend).exists():
            raise RenderError(f"no .blend at {blend}")
        bpy.ops.wm.open_mainfile(filepath=str(blend))
    else:
        bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    # 2. set, then take
    if set_path:
        build_set(set_path, scene)
    import_take(take.path, scene)
    if settings.camera is None:
        engine_cams = [o for o in scene.objects if o.type == "CAMERA" and o.get(TAKE_TAG) == take.id]
        if engine_cams:
            settings.camera = sorted(engine_cams, key=lambda o: o.name)[0].name
    poses = {}
    for name in take.store.performers():
        stamps, p = performer_frames(take, name)
        poses[name] = (take_frames(take, stamps), p)
    # 3. render
    return render_passes(take.passes_dir(), settings, scene, take_poses=poses, fps=str(take.fps), progress=progress)


__all__ = ["RenderSettings", "render_passes", "render_take", "scene_camera_frame", "parse_res", "parse_frames"]

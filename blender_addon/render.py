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
- light: the diffuse direct + indirect passes of the rgb Cycles render (linear light on each
  surface, ``passconv``), from a multi-layer EXR of the same render.
- motion: Cycles' Vector pass of the depth render (exact at pixel centres), as backward flow in
  image coordinates (``passconv.motion_from_vector``).
- Cycles' rgb is denoised with OpenImageDenoise (it ships in Blender) unless ``denoise=False``.

Reruns resume: a frame whose files all exist, rendered with the same settings, is skipped. A
frame's files are written when all its renders are done, camera.json last: a frame cut short by
Ctrl-C (``interrupt.exit_on_interrupt``) is rendered again on the next run.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import bpy
import numpy as np

from machinima.passes import CameraFrame, PassSet

from .errors import RenderError
from .passconv import LIGHT_INFO, MOTION_INFO, light_from_diffuse, motion_from_vector
from .posemap import camera_frame, draw_pose_map, openpose_keypoints
from .renderframe import ENGINES, Saved, data_render, look_render
from .takeimport import MESH_TAG, PERFORMER_TAG, TAKE_TAG

PASSES = ("rgb", "depth", "normal", "mask", "pose", "light", "motion")


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
    denoise: bool = True  # Cycles: OpenImageDenoise on the rgb pass (albedo + normal guides)

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
        if "light" in self.passes and self.engine != "cycles":
            raise RenderError("the light pass comes from Cycles' diffuse light passes", hint="use --engine cycles, or leave 'light' out of --passes")

    def warnings(self) -> list[str]:
        """What the user should know before a long render (printed by the CLI, nothing refused)."""
        out = []
        if "motion" in self.passes and self.step > 1:
            # Blender's Vector pass is the motion to the scene frame before, which --step N does not render
            out.append(f"motion: with --step {self.step} each frame's motion pass is the motion to the frame before it, which is "
                       f"not rendered; stylize estimates the motion between the rendered frames instead (render without "
                       f"--step for the exact motion)")
        return out


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
    saved = Saved()
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
                if "rgb" in settings.passes or "light" in settings.passes:
                    rgb, layers = look_render(scene, settings.engine, settings.samples, settings.denoise, tmp, f,
                                              light="light" in settings.passes)
                    if "rgb" in settings.passes:
                        ps.write("rgb", f, rgb)
                    if "light" in settings.passes:
                        ps.write("light", f, light_from_diffuse(layers["DiffDir"], layers.get("DiffInd")))
                        ps.meta["passes"]["light"].update(LIGHT_INFO)
                    _add(report, "rgb", t)
                if {"depth", "mask", "motion"} & set(settings.passes):
                    t = time.perf_counter()
                    data, vector = data_render(scene, "depth", tmp, f, vector="motion" in settings.passes)
                    if "depth" in settings.passes:
                        ps.write("depth", f, np.ascontiguousarray(data[..., 0].astype(np.float32)))
                    idmap = np.rint(data[..., 1]).astype(np.int64)
                    for name, id_list in ids.items():
                        ps.write(f"mask/{name}", f, (np.isin(idmap, id_list) * 255).astype(np.uint8), mask_kind=masks[name][0])
                    if vector is not None:  # the take's first frame has no previous frame: zeros
                        flow = motion_from_vector(vector) if f > scene.frame_start else np.zeros(vector.shape[:2] + (2,), np.float32)
                        ps.write("motion", f, flow)
                        ps.meta["passes"]["motion"].update(MOTION_INFO)
                    _add(report, "depth+mask", t)
                if "normal" in settings.passes:
                    t = time.perf_counter()
                    ps.write("normal", f, data_render(scene, "normal", tmp, f)[0].astype(np.float32))
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

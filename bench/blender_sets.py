"""Benchmark of the Blender add-on (real bpy, CPU): set building, pass rendering, take import.

    .venv/bin/python bench/blender_sets.py [--quick] [--eevee] [--denoise-only]

Prints one JSON object on stdout:
- build: a 200-piece set built from a set file (s), rebuilt unchanged, rebuilt after one edit;
  baseline: the same 200 boxes added one by one with bpy.ops.mesh.primitive_cube_add (what a
  quick script does).
- render: s/frame at 960x540 per engine for the rgb pass (Cycles 4 samples, Workbench; EEVEE only
  with --eevee: about a minute for a first frame on this CPU), and the data passes (depth+ids,
  normals, masks, pose map) which cost the same whatever the engine.
- denoise: Cycles rgb of the example diner at 8 samples (the demo's) with and without
  OpenImageDenoise, and at 64 samples without: s/frame and the noise (8-bit levels, Immerkaer's
  estimate) on the set's flat surfaces (pixels whose normals are constant around them); the
  light and motion passes' cost on top.
- import: a 1-minute take (30 fps, one performer, 55 bones) imported and keyframed (s);
  baseline: keyframe_insert per bone and frame, timed on 60 frames and scaled to the minute.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "blender_addon"))


@contextmanager
def quiet():
    """Blender prints render progress on fd 1 from C: keep stdout for the JSON."""
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(devnull)
        os.close(saved)


def big_set(n: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    kits = ["box", "column", "stairs", "arch", "table", "chair", "screen", "sphere"]
    props = []
    for i in range(n):
        props.append({"id": f"p{i}", "kit": kits[i % len(kits)], "position": [float(x) for x in rng.uniform(-20, 20, 3) * [1, 0, 1]],
                      "rotation": [0, float(rng.uniform(0, 360)), 0], "material": "m%d" % (i % 4), "group": "g%d" % (i % 3)})
    return {"set": {"name": "bench"}, "materials": {f"m{k}": {"color": [0.2 * k, 0.5, 0.7]} for k in range(4)},
            "floor": {"size": [50, 50]}, "props": props,
            "lights": [{"id": "sun", "type": "sun", "position": [5, 10, 5], "target": [0, 0, 0]}],
            "cameras": [{"id": "cam", "position": [0, 2, 12], "target": [0, 1, 0], "lens": 35}]}


def bench_build(n: int, tmp: Path) -> dict:
    import bpy

    from blender_addon.build import build_set

    path = tmp / "big.json"
    doc = big_set(n)
    path.write_text(json.dumps(doc))
    bpy.ops.wm.read_factory_settings(use_empty=True)
    t = time.perf_counter()
    build_set(path)
    first = time.perf_counter() - t
    t = time.perf_counter()
    rep = build_set(path)
    again = time.perf_counter() - t
    assert len(rep.unchanged) == n + 3
    doc["props"][0]["position"] = [1.0, 0.0, 1.0]
    path.write_text(json.dumps(doc))
    t = time.perf_counter()
    rep = build_set(path)
    edit = time.perf_counter() - t
    assert rep.updated == ["props/p0"]
    bpy.ops.wm.read_factory_settings(use_empty=True)
    t = time.perf_counter()
    for p in doc["props"]:
        x, y, z = p["position"]
        bpy.ops.mesh.primitive_cube_add(size=1, location=(x, -z, y))
    naive = time.perf_counter() - t
    return {"pieces": n, "build_s": round(first, 3), "rebuild_unchanged_s": round(again, 4), "rebuild_one_edit_s": round(edit, 4),
            "baseline_ops_cube_add_s": round(naive, 3)}


def diner_with_performer(tmp: Path) -> dict:
    """The example diner with a performer in the scene; returns the take's poses for the pose pass."""
    import bpy

    from blender_addon.build import build_set
    from blender_addon.setfile import EXAMPLE_SET
    from blender_addon.takeimport import import_take, take_frames
    from conftest import make_take, random_poses
    from machinima.export import performer_frames
    from machinima.take import Take

    bpy.ops.wm.read_factory_settings(use_empty=True)
    build_set(EXAMPLE_SET)
    take_path = make_take(tmp / "takes", {"ana": random_poses(2, spread=0.3)}, fps=24)
    import_take(take_path)
    take = Take.open(take_path)
    stamps, poses = performer_frames(take, "ana")
    return {"ana": (take_frames(take, stamps), poses)}


def bench_render(res: tuple[int, int], engines: list[str], tmp: Path) -> dict:
    from blender_addon.render import RenderSettings, render_passes

    tp = diner_with_performer(tmp)
    out: dict = {"resolution": f"{res[0]}x{res[1]}", "rgb_s_per_frame": {}}
    for engine in engines:
        s = RenderSettings(passes=("rgb",), width=res[0], height=res[1], engine=engine, samples=4, frames=(0, 0))
        rep = render_passes(tmp / f"rgb_{engine}", s, take_poses=tp, fps="24", progress=False)
        out["rgb_s_per_frame"][engine] = round(rep.seconds, 3)
    s = RenderSettings(passes=("depth", "normal", "mask", "pose"), width=res[0], height=res[1], frames=(0, 0))
    rep = render_passes(tmp / "data", s, take_poses=tp, fps="24", progress=False)
    out["data_passes_s_per_frame"] = round(rep.seconds, 3)
    out["data_passes_breakdown_s"] = {k: round(v, 3) for k, v in rep.per_pass_s.items()}
    out["all_passes_cycles_s_per_frame"] = round(out["rgb_s_per_frame"].get("cycles", 0) + rep.seconds, 3)
    out["denoise"] = bench_denoise(res, tp, tmp)
    return out


def bench_denoise(res: tuple[int, int], tp: dict, tmp: Path) -> dict:
    """s/frame and noise on flat surfaces: 8 samples with and without OpenImageDenoise, 64 without."""
    from blender_addon.render import RenderSettings, render_passes
    from composite.grain import measure_noise
    from machinima.passes import PassSet

    s = RenderSettings(passes=("normal",), width=res[0], height=res[1], frames=(0, 0))
    render_passes(tmp / "normals", s, take_poses=tp, fps="24", progress=False)
    normal = PassSet.open(tmp / "normals").read("normal", 0)
    import cv2

    spread = sum(cv2.dilate(normal[..., c], np.ones((5, 5), np.uint8)) - cv2.erode(normal[..., c], np.ones((5, 5), np.uint8)) for c in range(3))
    flat = ((spread < 1e-3) & (np.abs(normal).sum(-1) > 0.5)).astype(np.uint8) * 255  # on one plane, not the sky
    out: dict = {"flat_fraction": round(float((flat > 0).mean()), 3)}
    for name, samples, denoise in (("8_samples", 8, False), ("8_samples_oidn", 8, True), ("64_samples", 64, False)):
        s = RenderSettings(passes=("rgb",), width=res[0], height=res[1], samples=samples, denoise=denoise, frames=(0, 0))
        cpu = time.process_time()
        rep = render_passes(tmp / f"noise_{name}", s, take_poses=tp, fps="24", progress=False)
        rgb = PassSet.open(tmp / f"noise_{name}").read("rgb", 0)
        out[name] = {"s_per_frame": round(rep.seconds, 2), "cpu_s_per_frame": round(time.process_time() - cpu, 2),
                     "noise_levels": round(float(measure_noise(rgb, flat).mean()), 2)}
    s = RenderSettings(passes=("rgb", "light", "depth", "motion"), width=res[0], height=res[1], samples=8, frames=(0, 0))
    cpu = time.process_time()
    rep = render_passes(tmp / "light_motion", s, take_poses=tp, fps="24", progress=False)
    out["rgb_light_depth_motion_8_samples_oidn"] = {"s_per_frame": round(rep.seconds, 2), "cpu_s_per_frame": round(time.process_time() - cpu, 2)}
    return out


def bench_import(seconds: int, tmp: Path) -> dict:
    import bpy

    from blender_addon.takeimport import create_armature, import_take
    from conftest import make_take, random_poses
    from machinima import skeleton

    fps = 30
    n = seconds * fps
    take = make_take(tmp / "itakes", {"ana": random_poses(n, seed=2)}, fps=fps)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    t = time.perf_counter()
    rep = import_take(take)
    ours = time.perf_counter() - t
    assert rep.frame_range == (0, n - 1)
    # baseline: keyframe_insert per bone per frame (timed on 60 frames)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    ob = create_armature("base", mannequin=False)
    m = 60
    poses = random_poses(m, seed=3)
    t = time.perf_counter()
    for f in range(m):
        for i, name in enumerate(skeleton.BONES):
            pb = ob.pose.bones[name]
            q = poses[f, i, 3:7]
            pb.rotation_quaternion = (q[3], q[0], q[1], q[2])
            pb.keyframe_insert("rotation_quaternion", frame=f)
    base = (time.perf_counter() - t) * n / m
    return {"take_seconds": seconds, "frames": n, "import_s": round(ours, 3), "baseline_keyframe_insert_s_scaled": round(base, 2),
            "speedup": round(base / ours, 1)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="smaller set, lower resolution, 10 s take")
    ap.add_argument("--eevee", action="store_true", help="also time EEVEE (slow on a CPU without GPU)")
    ap.add_argument("--denoise-only", action="store_true", help="only the noise/denoise figures (960x540, or 480x270 with --quick)")
    args = ap.parse_args()
    os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")
    engines = ["workbench", "cycles"] + (["eevee"] if args.eevee else [])
    result: dict = {"bench": "blender_sets", "quick": args.quick, "load_avg_1min_start": round(os.getloadavg()[0], 2)}
    with tempfile.TemporaryDirectory() as d, quiet():
        tmp = Path(d)
        t0 = time.perf_counter()
        import bpy

        result["bpy_version"] = bpy.app.version_string
        result["bpy_import_s"] = round(time.perf_counter() - t0, 2)
        res = (480, 270) if args.quick else (960, 540)
        if args.denoise_only:
            result["denoise"] = {"resolution": f"{res[0]}x{res[1]}", **bench_denoise(res, diner_with_performer(tmp), tmp)}
        else:
            result["build"] = bench_build(50 if args.quick else 200, tmp)
            result["render"] = bench_render(res, engines, tmp)
            result["import"] = bench_import(10 if args.quick else 60, tmp)
    result["load_avg_1min_end"] = round(os.getloadavg()[0], 2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()

"""Benchmark: the real composite and the real face-swap merge at 1080p, in-process and on Ray.

    .venv/bin/python bench/ray_scaling.py [--quick] [--steps composite,merge]

For each step, four variants, each warmed the same way (one warm-up run of the same step on a
few frames into another folder, in the same process or on the same Ray cluster, so imports and
worker processes are up) and then timed on a fresh step folder:

- ``in_process``: the step's own local runner, one frame at a time, pinned to one core's worth of
  threads (``machinima.distributed.limits.pin_threads(1)``: OpenCV, torch, frame-I/O pools);
- ``ray_1``: ``--ray`` on a local cluster of 1 CPU (one worker), each task pinned the same way
  (the scheduler pins every chunk to its task's ``num_cpus``);
- ``ray_2``: the same on 2 CPUs (two workers, each pinned to one core's worth).

Without the pinning a single worker already keeps more than one of this machine's 2 cores busy
(OpenCV's threads, read-ahead and write-behind), and "2 workers against 1" measures two
processes fighting for the same cores, not scaling.

Figures, for the whole step and for its frame loop alone (``*_loop_*``: what Ray parallelises;
face tracking, the composite's preparation and the driver's checks stay serial): frames/s; the overhead Ray adds per task, ``(ray_1 - in_process) / tasks``, also as a
share of the task's own time; scaling efficiency ``ray_1 / (2 * ray_2)``, and the same for the
loop once the workers have loaded (``loop_efficiency_after_load``: each worker's load is paid
once per worker, side by side); the per-worker load time (the composite prepared, the network
loaded) reported apart. Outputs are checked
byte-identical to the in-process run. The composite scene is the composite demo at 1920x1080
(an H.264 plate, rgb/depth/light passes); the merge source is a 1080p clip of a moving face
(matplotlib's grace_hopper.jpg) with a tiny DF network built here (no download).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

W, H = 1920, 1080


def _files(folder: Path) -> dict[str, bytes]:
    """The frames of an output folder, whatever format the step wrote (QOI, PNG, EXR)."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file() and not p.name.startswith(".")}


# --- composite ----------------------------------------------------------------------------------
def composite_scene(tmp: Path, frames: int):
    from composite.demo_scene import make_demo
    from machinima.provenance import record_decision

    take, plate, pos = make_demo(tmp / "comp", width=W, height=H, frames=frames)
    record_decision(take, False, "benchmark: pixel-identical outputs (the watermark's manifest id is random per frame)")
    return take, plate, pos


def run_composite_variant(scene, step_id: str, ray: str | None, chunk: int):
    from composite.pipeline import CompositeSettings, run_composite
    from composite.placement import PlacementSettings

    take, plate, pos = scene
    s = CompositeSettings(plate=Path(plate), matte="green", placement=PlacementSettings(position=pos), step_id=step_id, video=False, workers=1)
    t0 = time.perf_counter()
    res = run_composite(take, s, progress=False, ray=ray, chunk_size=chunk)
    return time.perf_counter() - t0, res.report.seconds, res.report, res.out_dir / "rgb"


def run_composite_warm(scene, step_id: str, ray: str | None, chunk: int):
    from composite.pipeline import CompositeSettings, run_composite
    from composite.placement import PlacementSettings

    take, plate, pos = scene
    s = CompositeSettings(plate=Path(plate), matte="green", placement=PlacementSettings(position=pos), step_id=step_id, video=False,
                          workers=1, frames=(0, 4))
    run_composite(take, s, progress=False, ray=ray, chunk_size=1)


# --- merge ----------------------------------------------------------------------------------------
def merge_scene(tmp: Path, frames: int):
    import cv2
    import matplotlib.cbook as cbook
    import torch
    from PIL import Image

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "faceswap"))
    from faceswap_testdata import moving_clip, write_clip

    from faceswap.extract import extract
    from faceswap.model import ModelConfig
    from faceswap.train import TrainConfig, Trainer

    with cbook.get_sample_data("grace_hopper.jpg") as fh:
        grace = np.ascontiguousarray(np.asarray(Image.open(fh).convert("RGB")))
    root = tmp / "fs"
    write_clip(root / "gh", moving_clip(grace, 4))
    extract(root / "gh", root / "faces", face_type="whole", size=64, progress=False)
    torch.set_num_threads(1)
    Trainer(root / "m", src=root / "faces", dst=root / "faces", model_config=ModelConfig(arch="df", res=64, e_dims=8, ae_dims=32, d_dims=8, d_mask_dims=4),
            train_config=TrainConfig(batch=2, lr=1e-3, save_every=1000, log_every=1), rights={"override": "benchmark"}).train(2, progress=False)
    face = cv2.resize(grace, (480, 560), interpolation=cv2.INTER_AREA)
    clip = []
    for i, f in enumerate(moving_clip(face, frames, shift=(3.0, 1.0), zoom=0.005)):
        canvas = np.full((H, W, 3), 90, np.uint8)
        x, y = 700 + 4 * i, 260
        canvas[y:y + f.shape[0], x:x + f.shape[1]] = f
        clip.append(canvas)
    write_clip(root / "clip", clip)
    return root / "clip", root / "m", root


def run_merge_variant(scene, step_id: str, ray: str | None, chunk: int, frames: int | None = None):
    from faceswap.merge import MergeOptions, merge
    from machinima.provenance import record_decision

    clip, model, root = scene
    out = root / step_id
    out.mkdir(parents=True, exist_ok=True)
    record_decision(out, False, "benchmark: pixel-identical outputs")
    src = clip
    if frames is not None:  # the warm-up: a few frames of the same clip
        src = root / f"{step_id}-src"
        src.mkdir(exist_ok=True)
        for p in sorted(clip.glob("*.png"))[:frames]:
            shutil.copy(p, src / p.name)
    t0 = time.perf_counter()
    r = merge(src, model, out=out, options=MergeOptions(engine="torch", device="cpu", batch=1), production="bench", override="benchmark",
              rights_store=root / "rights", video=False, progress=False, ray=ray, chunk_size=chunk)
    return time.perf_counter() - t0, r.seconds_swap, r, out / "rgb"


# --- the runs -------------------------------------------------------------------------------------
def bench_step(name: str, scene, frames: int, chunk: int) -> dict:
    import ray
    import torch  # noqa: F401 - imported first, so pin_threads caps it too

    from machinima.distributed.limits import pin_threads

    # the in-process run under the limits each Ray task gets (a task declares 1 CPU)
    out: dict = {"frames": frames, "chunk": chunk, "tasks": -(-frames // chunk), "threads_per_worker": pin_threads(1),
                 "loadavg_start": round(os.getloadavg()[0], 2)}
    if name == "composite":
        run, warm = (lambda sid, addr: run_composite_variant(scene, sid, addr, chunk)), (lambda sid, addr: run_composite_warm(scene, sid, addr, chunk))
    else:
        run, warm = (lambda sid, addr: run_merge_variant(scene, sid, addr, chunk)), (lambda sid, addr: run_merge_variant(scene, sid, addr, 1, frames=4))
    warm("warm-local", None)
    t_local, loop_local, _, local_dir = run("local", None)
    out["in_process_s"] = round(t_local, 3)
    out["in_process_loop_s"] = round(loop_local, 3)
    ref = _files(local_dir)
    for cpus in (1, 2):
        ray.init(address="local", num_cpus=cpus, include_dashboard=False, log_to_driver=False)
        try:
            warm(f"warm-ray{cpus}", "local")
            t, loop, rep, d = run(f"ray{cpus}", "local")
        finally:
            ray.shutdown()
        workers = rep.workers
        out[f"ray_{cpus}_s"] = round(t, 3)
        out[f"ray_{cpus}_loop_s"] = round(loop, 3)
        out[f"ray_{cpus}_load_s"] = round(sum(w["load_s"] for w in workers), 3)
        out[f"ray_{cpus}_workers"] = len(workers)
        out[f"ray_{cpus}_time_by_worker"] = [{k: round(w[k], 3) for k in ("tasks", "frames", "queue_s", "load_s", "compute_s", "write_s")} for w in workers]
        out[f"ray_{cpus}_identical"] = _files(d) == ref and len(ref) == frames
    tasks = out["tasks"]
    for k in ("in_process", "ray_1", "ray_2"):
        out[f"{k}_fps"] = round(frames / out[f"{k}_s"], 2)
    per_task = (out["ray_1_s"] - out["in_process_s"]) / tasks
    out["overhead_per_task_ms"] = round(per_task * 1000, 1)
    out["overhead_share_of_task"] = round(per_task / (out["in_process_s"] / tasks), 3)
    out["overhead_per_task_excl_load_ms"] = round((out["ray_1_s"] - out["ray_1_load_s"] - out["in_process_s"]) / tasks * 1000, 1)
    out["efficiency_1_to_2"] = round(out["ray_1_s"] / (2 * out["ray_2_s"]), 3)
    # the frame loop alone (what Ray parallelises; tracking, preparing and the driver's checks are serial)
    loop_task = (out["ray_1_loop_s"] - out["in_process_loop_s"]) / tasks
    out["loop_overhead_per_task_ms"] = round(loop_task * 1000, 1)
    out["loop_overhead_share_of_task"] = round(loop_task / (out["in_process_loop_s"] / tasks), 3)
    out["loop_efficiency_1_to_2"] = round(out["ray_1_loop_s"] / (2 * out["ray_2_loop_s"]), 3)
    # the same once each worker has loaded (the composite prepared, the network read): two workers
    # load side by side, so the wall time they lose to it is the longer of the two loads
    load_2 = max((w["load_s"] for w in out["ray_2_time_by_worker"]), default=0.0)
    out["loop_efficiency_after_load"] = round((out["ray_1_loop_s"] - out["ray_1_load_s"]) / (2 * max(1e-6, out["ray_2_loop_s"] - load_2)), 3)
    out["loadavg_end"] = round(os.getloadavg()[0], 2)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="16 frames a step (default 48)")
    ap.add_argument("--frames", type=int, default=None)
    ap.add_argument("--chunk", type=int, default=None,
                    help="frames per task (default: composite frames / 8; merge frames / 4, as its frames are ~4x faster: >= 0.5 s a task)")
    ap.add_argument("--steps", default="composite,merge")
    a = ap.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    frames = a.frames or (16 if a.quick else 48)
    chunks = {"composite": a.chunk or max(1, frames // 8), "merge": a.chunk or max(1, frames // 4)}
    tmp = Path(tempfile.mkdtemp(prefix="ray_bench_"))
    result: dict = {"benchmark": "ray_scaling", "resolution": f"{W}x{H}", "cpu_count": os.cpu_count(), "machine": platform.machine(),
                    "loadavg_before": os.getloadavg()[0]}
    try:
        for name in [s.strip() for s in a.steps.split(",") if s.strip()]:
            t0 = time.perf_counter()
            scene = composite_scene(tmp, frames) if name == "composite" else merge_scene(tmp, frames)
            print(f"{name}: scene ready in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
            result[name] = bench_step(name, scene, frames, chunks[name])
            print(f"{name}: {json.dumps(result[name])}", file=sys.stderr)
        result["loadavg_after"] = os.getloadavg()[0]
        print(json.dumps(result, indent=2))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Face-swap benchmark: extract fps, train it/s (64 and 128 px, CPU), merge fps at 1080p with the
network excluded and included (torch, onnxruntime), against a naive per-frame baseline
(detect + align + blend over the whole frame, no tracking, no batching) in the same run.

    .venv/bin/python bench/faceswap.py [--quick] [--threads N] [--device cpu|cuda] [--identity 500,1000,... [--identity-only]]

Prints one JSON object. Frames are made from matplotlib's grace_hopper.jpg on a 1920x1080
canvas, moving and scaling (no downloads). Merge figures are for frames in memory (decode and
PNG encode are listed separately as io_*), so they measure the pipeline, not the disk.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def photo() -> np.ndarray:
    import matplotlib.cbook as cbook
    from PIL import Image

    with cbook.get_sample_data("grace_hopper.jpg") as fh:
        return np.asarray(Image.open(fh).convert("RGB"))


def frames_1080p(n: int) -> list[np.ndarray]:
    """The photo (face about 300 px wide) drifting and zooming over a 1080p background."""
    import cv2

    g = photo()
    bg = cv2.resize(g[:120, :120], (1920, 1080), interpolation=cv2.INTER_LINEAR)
    out = []
    for i in range(n):
        s = 1.6 + 0.004 * i
        m = np.float32([[s, 0, 600 + 4 * i], [0, s, 80 + 1.5 * i]])
        f = bg.copy()
        cv2.warpAffine(g, m, (1920, 1080), dst=f, borderMode=cv2.BORDER_TRANSPARENT)
        out.append(f)
    return out


def timed(fn, *a, **k):
    t = time.perf_counter()
    r = fn(*a, **k)
    return r, time.perf_counter() - t


def bench_extract(tmp: Path, frames: list[np.ndarray]) -> dict:
    from faceswap.extract import extract
    from machinima.imageseq import write_image

    d = tmp / "clip"
    for i, f in enumerate(frames):
        write_image(d / f"{i:06d}.png", f)
    r = extract(d, tmp / "fs_a", face_type="whole", size=128, progress=False)
    r2 = extract(d, tmp / "fs_b", face_type="whole", size=128, progress=False, redetect_every=1)
    return {"extract_fps": round(r.fps, 2), "extract_fps_detect_every_frame": round(r2.fps, 2), "extract_faces": r.added,
            "extract_note": "1080p PNG frames from disk, whole face at 128 px, into a faceset"}


def bench_train(tmp: Path, res: int, iters: int, device: str) -> dict:
    from faceswap.model import ModelConfig
    from faceswap.train import TrainConfig, Trainer

    t = Trainer(tmp / f"m{res}", src=tmp / "fs_a", dst=tmp / "fs_b", model_config=ModelConfig(arch="df", res=res),
                train_config=TrainConfig(batch=8, save_every=10**9, device=device), rights={"override": "bench"})
    t.step()  # warm-up
    t0 = time.perf_counter()
    for _ in range(iters):
        t.step()
    dt = time.perf_counter() - t0
    t.save()
    return {f"train_its_{res}": round(iters / dt, 3), f"train_ms_per_it_{res}": round(1000 * dt / iters, 1)}


def run_ours(frames, swapper, res, opts):
    """Tracking + batched ROI-only compositing, frames in memory (painted in place, as merge
    does with frames fresh from disk; the caller passes copies)."""
    from faceswap.backends import get_backend
    from faceswap.merge import Compositor, smooth_tracks
    from faceswap.tracker import FaceFinder, interpolate

    be = get_backend("mediapipe")
    t0 = time.perf_counter()
    c0 = time.process_time()
    finder = FaceFinder(be, redetect_every=opts.redetect_every)
    for i, f in enumerate(frames):
        finder(i, f)
    per_frame = {i: {} for i in range(len(frames))}
    for t in finder.tracker.tracks.values():
        interpolate(t)
        for i, lm in t.frames.items():
            per_frame[i][t.id] = lm
    used = smooth_tracks(per_frame, opts, 24.0)
    t1 = time.perf_counter()
    comp = Compositor(swapper, res, "whole", opts)
    outs = []
    for i in range(0, len(frames), opts.batch):
        idx = list(range(i, min(len(frames), i + opts.batch)))
        outs += comp.frames([frames[j] for j in idx], [used[j] for j in idx], inplace=True)
    t2 = time.perf_counter()
    c2 = time.process_time()
    be.close()
    n = len(frames)
    return {"fps": round(n / (t2 - t0), 2), "cpu_fps": round(n / max(c2 - c0, 1e-9), 2), "track_ms": round(1000 * (t1 - t0) / n, 2),
            "swap_blend_ms": round(1000 * (t2 - t1) / n, 2), "detections": finder.detections}, outs


def run_naive(frames, swapper, res, blend="alpha"):
    """Per frame: full detection, align, network one face at a time, warp back over the whole frame, blend the whole frame."""
    import cv2

    from faceswap.align import face_transform
    from faceswap.backends import get_backend
    from faceswap.masks import erode_blur, hull_mask

    be = get_backend("mediapipe")
    t0 = time.perf_counter()
    c0 = time.process_time()
    for f in frames:
        h, w = f.shape[:2]
        for face in be.detect(f):
            m = face_transform(face.landmarks, "whole", res)
            aligned = cv2.warpAffine(f, m, (res, res))
            if swapper is None:
                rgb, mask = aligned.astype(np.float32) / 255, np.ones((res, res), np.float32)
            else:
                y = swapper(aligned.astype(np.float32).transpose(2, 0, 1)[None] / 255)[0]
                rgb, mask = y[:3].transpose(1, 2, 0), y[3]
            from faceswap.align import transform_points

            mask = erode_blur(np.minimum(mask, hull_mask(transform_points(face.landmarks, m), (res, res), "whole")), 0, 8)
            big = cv2.warpAffine((rgb * 255).astype(np.uint8), m, (w, h), flags=cv2.WARP_INVERSE_MAP)
            bm = cv2.warpAffine(mask, m, (w, h), flags=cv2.WARP_INVERSE_MAP)[..., None]
            f = (big.astype(np.float32) * bm + f.astype(np.float32) * (1 - bm)).astype(np.uint8)
    dt = time.perf_counter() - t0
    dc = time.process_time() - c0
    be.close()
    return round(len(frames) / dt, 2), round(len(frames) / max(dc, 1e-9), 2)


def bench_identity(tmp: Path, checkpoints: list[int], budget_s: float) -> dict:
    """The demo's pair (machinima.demo's plate: scikit-image's astronaut walking on green; the
    source: matplotlib's Grace Hopper), extracted as the demo does (whole face, 128 px), a model
    trained with the CPU preset at 64 px; at each checkpoint the plate is merged and the merged
    face measured with dlib's embeddings against the source and against the plate before the
    merge. Beside it, in the same run: no swap, and the source's photo pasted through the same
    merge (the trivial swap)."""
    from rich.console import Console

    from faceswap import truth as T
    from faceswap.backends import get_backend
    from faceswap.extract import extract
    from faceswap.identity import IdentityMeter
    from faceswap.merge import MergeOptions
    from faceswap.swapcheck import identity_figures, merge_and_measure, source_embedding
    from faceswap.model import ModelConfig
    from faceswap.train import PRESETS, TrainConfig, Trainer
    from machinima.demo import Demo
    from machinima.imageseq import list_frames, read_image, write_image

    demo = tmp / "demo"
    Demo(out=demo, console=Console(quiet=True)).plate()
    extract(demo / "source-face", tmp / "id_src", size=128, progress=False)
    extract(demo / "plate", tmp / "id_dst", size=128, progress=False)
    plate = [read_image(p) for _, p in sorted(list_frames(demo / "plate").items())]
    for i in (0, 12):
        write_image(tmp / "id_eval" / f"{i:06d}.png", plate[i])
    originals = [read_image(p) for _, p in sorted(list_frames(tmp / "id_eval").items())]
    sources = [read_image(p) for _, p in sorted(list_frames(demo / "source-face").items())][::8]
    meter, be = IdentityMeter(), get_backend("mediapipe")
    src_emb = source_embedding(meter, be, sources)
    opts = MergeOptions()  # what the demo's merge uses (rct colour, seamless blend, zero-lag)
    measure = dict(override="bench", rights_store=tmp / "rights", options=opts)
    no_swap = identity_figures(meter, be, originals, originals, src_emb)
    lm = be.detect(sources[0])[0].landmarks
    paste = merge_and_measure(tmp / "id_eval", tmp / "id_paste", meter, be, src_emb, swapper=T.FixedFace(sources[0], lm, "whole", 64),
                              **{**measure, "options": MergeOptions(res=64, face_type="whole")})
    model_cfg = ModelConfig(**PRESETS["cpu"]["model"])
    train_cfg = TrainConfig(**{**PRESETS["cpu"]["train"], "save_every": 10**9})
    t = Trainer(tmp / "id_m", src=tmp / "id_src", dst=tmp / "id_dst", model_config=model_cfg, train_config=train_cfg,
                rights={"override": "bench"})
    curve, cpu, wall, met = [], 0.0, 0.0, None
    for it in checkpoints:
        c0, w0 = time.process_time(), time.perf_counter()
        t.train(it, progress=False)
        cpu, wall = cpu + time.process_time() - c0, wall + time.perf_counter() - w0
        fig = merge_and_measure(tmp / "id_eval", tmp / f"id_out_{it}", meter, be, src_emb, model=t.dir, **measure)
        curve.append({"iteration": it, "train_cpu_s": round(cpu, 1), "train_wall_s": round(wall, 1), **fig.to_doc()})
        print(json.dumps({"identity_progress": curve[-1], "load_avg_1min": round(os.getloadavg()[0], 2)}), file=sys.stderr, flush=True)
        if met is None and fig.to_source < 0.6 < fig.to_destination:
            met = it
        if cpu > budget_s:
            break
    be.close()
    return {"identity_curve": curve, "identity_no_swap": no_swap.to_doc(), "identity_paste_source_photo": paste.to_doc(),
            "identity_goal": "merged -> source < 0.6 and merged -> destination > 0.6 (dlib: same person < 0.6)",
            "identity_goal_first_met_at_iteration": met, "identity_preset": "cpu (faceswap.train.PRESETS)",
            "identity_settings": {"model": asdict(model_cfg), "train": asdict(train_cfg)},
            "identity_note": "the demo's plate (astronaut) and source (Grace Hopper); 2 plate frames measured per checkpoint"}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (0 = torch's default; 1 is fastest on a busy 2-core box)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--identity", default="", metavar="ITERS,ITERS,...",
                    help="also train the demo pair with the CPU preset and measure identity with dlib at these iterations")
    ap.add_argument("--identity-only", action="store_true", help="skip the speed figures")
    ap.add_argument("--identity-budget-s", type=float, default=1200.0, help="stop the identity curve past this much training CPU time")
    args = ap.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from faceswap.merge import MergeOptions
    from faceswap.onnx_export import OrtSwapper, TorchSwapper, export_onnx
    from faceswap.train import pick_device

    device = pick_device(args.device)
    n_merge = 24 if args.quick else 72
    n_extract = 8 if args.quick else 24
    iters = 1 if args.quick else 3
    out: dict = {"bench": "faceswap", "machine": f"{platform.machine()} {os.cpu_count()} cpu", "device": device,
                 "torch_threads": torch.get_num_threads(), "quick": args.quick}
    if args.identity_only:
        with tempfile.TemporaryDirectory() as td:
            out["load_avg_1min_start"] = round(os.getloadavg()[0], 2)
            out.update(bench_identity(Path(td), [int(x) for x in args.identity.split(",")], args.identity_budget_s))
            out["load_avg_1min_end"] = round(os.getloadavg()[0], 2)
        print(json.dumps(out))
        return
    frames = frames_1080p(n_merge)
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        out.update(bench_extract(tmp, frames[:n_extract]))
        out.update(bench_train(tmp, 64, iters, device))
        out.update(bench_train(tmp, 128, iters, device))
        model = tmp / "m128"
        export_onnx(model)
        # io, for reference: decode + encode of one 1080p PNG
        from machinima.imageseq import read_image, write_image

        _, t_w = timed(write_image, tmp / "io.png", frames[0])
        _, t_r = timed(read_image, tmp / "io.png")
        out["io_png_write_ms_1080p"], out["io_png_read_ms_1080p"] = round(1000 * t_w, 1), round(1000 * t_r, 1)
        res = 128
        alpha = MergeOptions(engine="none", blend="alpha", color="rct", smooth="one-euro", batch=8)
        seam = MergeOptions(engine="none", blend="seamless", color="rct", smooth="one-euro", batch=8)
        r, _ = run_ours([f.copy() for f in frames], None, res, alpha)
        out["merge_fps_no_network_alpha"] = r["fps"]
        out["merge_cpu_fps_no_network_alpha"] = r["cpu_fps"]
        out["merge_detail_no_network_alpha"] = r
        r, _ = run_ours([f.copy() for f in frames], None, res, seam)
        out["merge_fps_no_network_seamless"] = r["fps"]
        out["baseline_naive_fps_no_network"], out["baseline_naive_cpu_fps_no_network"] = run_naive(frames, None, res)
        n_net = frames[: max(8, n_merge // 3)]
        tsw = TorchSwapper(model, device=device)
        r, _ = run_ours([f.copy() for f in n_net], tsw, res, alpha)
        out["merge_fps_torch_alpha"] = r["fps"]
        osw = OrtSwapper(model, threads=args.threads or None)
        r, _ = run_ours([f.copy() for f in n_net], osw, res, alpha)
        out["merge_fps_onnxruntime_alpha"] = r["fps"]
        out["baseline_naive_fps_torch"], _ = run_naive(n_net, tsw, res)
        out["model"] = "DF 128 px, e/ae/d dims 64/256/64 (defaults), random weights after a few iterations"
        out["goal_merge_no_network_25fps"] = out["merge_fps_no_network_alpha"] >= 25
        out["note"] = ("fps = wall clock on this (shared, busy) machine; cpu_fps = frames per CPU-second of this process, "
                       "what one idle core gives when the process is single-threaded")
        out["load_avg_1min"] = round(os.getloadavg()[0], 2)
        if args.identity:
            out.update(bench_identity(tmp, [int(x) for x in args.identity.split(",")], args.identity_budget_s))
        out["speedup_vs_naive_no_network"] = round(out["merge_fps_no_network_alpha"] / max(out["baseline_naive_fps_no_network"], 1e-9), 2)
    print(json.dumps(out))


if __name__ == "__main__":
    main()

"""Benchmark: the stylize runner vs the plain diffusers per-frame loop, same model, same frames.

    .venv/bin/python bench/stylize.py [--quick] [--frames N] [--res PX]

CPU section (always): tiny random-weight models (stylize.tiny), a synthetic take whose passes
hold a translating texture + exact depth. The baseline is what a user following the diffusers
docs writes: for each frame read the PNG and depth, make the control, call
StableDiffusionControlNetImg2ImgPipeline, save the PNG. Ours: ``stylize.runner.run_source``
(PostStep ledger, resume keys, controls, colour match, propagation) on the same pipeline object.
Figures: frames/s, runner overhead % at cadence 1 with the same work, speedup of each cadence
mode and of batching, and each mode's flicker (warp error, lower is steadier).

Temporal section (always): a real photo (tests/data/chelsea_small.png) moved along a known
camera path, written as a take with the exact motion pass; each run is the runner disk to disk.
Figures: warp error of consecutive outputs under the *exact* motion (0..255, lower is steadier)
for the classical engine and tiny diffusion at cadence 1 and 4 (propagate), keyframe init on
and off, beside the per-frame baseline (cadence 1, init off: independent frames) and the input's
own error (what bilinear resampling leaves), plus propagation with DIS instead of the motion pass.

GPU section (only where CUDA is available): SD 1.5-shaped random weights at 512 px, fp16,
20 steps x strength 0.5, CFG 7.5: plain loop vs runner with batch 8 (+ channels_last).
Prints ONE JSON object on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def texture(h: int, w: int, seed: int = 0) -> np.ndarray:
    import cv2

    rng = np.random.default_rng(seed)
    t = cv2.GaussianBlur(rng.random((h, w, 3)).astype(np.float32), (0, 0), 3.0)
    return ((t - t.min()) / (t.max() - t.min()) * 255).astype(np.uint8)


def make_take(root: Path, n: int, size: int, *, frames: list | None = None, motion: list | None = None) -> Path:
    """A take of a texture sliding 2 px a frame (or ``frames``), with depth and, given, the motion pass."""
    from machinima.passes import PassSet
    from machinima.take import Take
    from stylize.motion import write_motion

    take = Take.create(root, production="bench", scene="1", shot="1", fps=24)
    take.finalize()
    take.close()
    ps = PassSet.create(take.passes_dir(), width=size, height=size, fps="24", engine="bench")
    big = texture(size, size + 2 * n + 4)
    xx = np.indices((size, size))[1]
    for f in range(n):
        ps.write("rgb", f, frames[f] if frames is not None else np.ascontiguousarray(big[:, 2 * f:2 * f + size]))
        ps.write("depth", f, (2.0 + 3.0 * xx / size + 0.02 * f).astype(np.float32))
        if motion is not None:
            write_motion(ps.path("motion", f, "exr"), motion[f])
    if motion is not None:
        ps.meta["passes"]["motion"] = {"format": "exr", "channels": ["dx", "dy"], "units": "px", "direction": "backward"}
    ps.save()
    return take.path


def look_doc(mode: str, every: int = 4, init_blend: float = 0.0, color: bool = False, steps: int = 4, strength: float = 0.6,
             guidance: float = 1.0) -> dict:
    return {"name": f"bench-{mode}", "engine": "diffusion", "prompt": "a painted street", "seed": 1,
            "model": {"base": "random", "steps": steps, "strength": strength, "guidance": guidance},
            "controls": [{"kind": "depth"}],
            "cadence": {"mode": mode, "every": every, "init_blend": init_blend, "color_match": color, "detect_cuts": False}}


def plain_loop(pipe, take: Path, out: Path, frames: list[int], kw: dict) -> float:
    """What the diffusers docs lead a user to write: one frame per call, PNG in, PNG out."""
    import torch

    from machinima.imageseq import read_image, write_image
    from stylize.controls import depth_control, depth_range

    ps = take / "passes"
    out.mkdir(parents=True, exist_ok=True)
    t0, c0 = time.perf_counter(), time.process_time()
    near, far = depth_range([read_image(ps / "depth" / f"{frames[0]:06d}.exr")])
    for f in frames:
        img = read_image(ps / "rgb" / f"{f:06d}.png")
        ctl = depth_control(read_image(ps / "depth" / f"{f:06d}.exr"), near, far)
        to_t = lambda a: torch.from_numpy(a).permute(2, 0, 1)[None].float().div(255).to(pipe.device, pipe.unet.dtype)  # noqa: E731
        with torch.inference_mode():
            res = pipe(image=to_t(img), control_image=to_t(ctl), generator=torch.Generator("cpu").manual_seed(1), output_type="np", **kw).images[0]
        write_image(out / f"{f:06d}.png", (np.clip(res, 0, 1) * 255 + 0.5).astype(np.uint8))
    return time.perf_counter() - t0, time.process_time() - c0


def runner(look, engine, take: Path, out: Path) -> tuple[float, Any, float]:
    """(wall seconds, result, CPU seconds of this process)."""
    from stylize.runner import run_source
    from stylize.sources import PassSource

    t0, c0 = time.perf_counter(), time.process_time()
    res = run_source(PassSource(take / "passes"), look, engine, out, progress=False, video=False)
    return time.perf_counter() - t0, res, time.process_time() - c0


def flicker_of(step: Path, take: Path, n: int) -> float:
    from machinima.imageseq import read_image
    from stylize.qc import flicker

    outs = {f: read_image(step / "frames" / f"{f:06d}.png") for f in range(n)}
    ins = {f: read_image(take / "passes" / "rgb" / f"{f:06d}.png") for f in range(n)}
    return flicker(outs, ins, [[0, n - 1]])["mean"]


def cpu_section(n: int, res: int, tmp: Path) -> dict:
    import torch

    from stylize.look import Look
    from stylize.tiny import tiny_components, tiny_engine

    torch.set_num_threads(1)
    take = make_take(tmp / "takes", n, res)
    comps = tiny_components(1)
    figures: dict = {"device": "cpu", "torch_threads": 1, "frames": n, "res": res, "model": "tiny random (UNet 32/64, 2-block VAE, 1 ControlNet)",
                     "steps": 4, "strength": 0.6, "guidance": 1.0}
    base = Look.from_doc(look_doc("every"))
    eng = tiny_engine(base, comps)
    pipe = eng.pipe
    emb = eng.embeddings("a painted street", "")
    kw = dict(prompt_embeds=emb["prompt_embeds"], negative_prompt_embeds=emb["negative_prompt_embeds"], num_inference_steps=4,
              strength=0.6, guidance_scale=1.0, controlnet_conditioning_scale=1.0)
    frames = list(range(n))
    plain_loop(pipe, take, tmp / "warm", frames[:2], kw)  # warm-up both paths
    runner(Look.from_doc(look_doc("every")), eng, take, tmp / "warm-runner")
    plain_t, run_t, plain_c, run_c = [], [], [], []
    for i in range(3):  # interleaved, best of 3: a shared machine's noise hits both alike
        w, c = plain_loop(pipe, take, tmp / f"plain{i}", frames, kw)
        plain_t.append(w)
        plain_c.append(c)
        w, _, c = runner(Look.from_doc(look_doc("every")), eng, take, tmp / f"every-same{i}")
        run_t.append(w)
        run_c.append(c)
    t_plain, t_run = min(plain_t), min(run_t)
    figures["plain_fps"] = round(n / t_plain, 2)
    figures["runner_every_same_work_fps"] = round(n / t_run, 2)
    figures["runner_overhead_pct"] = round((t_run / t_plain - 1) * 100, 1)
    # CPU seconds are what a busy shared machine distorts least (one torch thread: no spin-waits)
    figures["plain_cpu_s_per_frame"] = round(min(plain_c) / n, 4)
    figures["runner_cpu_s_per_frame"] = round(min(run_c) / n, 4)
    figures["runner_overhead_cpu_pct"] = round((min(run_c) / min(plain_c) - 1) * 100, 1)
    modes = {
        "every_coherent": (look_doc("every", init_blend=0.3, color=True), 1),
        "every_batch4": (look_doc("every"), 4),
        "hold_4": (look_doc("hold", every=4, color=True), 1),
        "propagate_4": (look_doc("propagate", every=4, init_blend=0.3, color=True), 1),
        "propagate_8_batch4": (look_doc("propagate", every=8, init_blend=0.3, color=True), 4),
    }
    figures["modes"] = {}
    for name, (doc, batch) in modes.items():
        look = Look.from_doc(doc)
        e = tiny_engine(look, comps, runtime={"dtype": "fp32", "batch": batch, "device": "cpu"})
        t, r, c = runner(look, e, take, tmp / name)
        figures["modes"][name] = {"fps": round(n / t, 2), "speedup_vs_plain": round(t_plain / t, 2),
                                  "cpu_speedup_vs_plain": round(min(plain_c) / c, 2), "keyframes": r.plan["keyframes"],
                                  "flicker": flicker_of(tmp / name, take, n)}
    figures["flicker_every_independent"] = flicker_of(tmp / "every-same0", take, n)
    return figures


def temporal_section(n: int, res: int, tmp: Path) -> dict:
    """Warp error under the exact motion, per engine, cadence and keyframe init (see the docstring)."""
    import torch

    from machinima.imageseq import read_image
    from stylize.engines import ClassicalEngine
    from stylize.look import Look
    from stylize.runner import run_source
    from stylize.sources import PassSource
    from stylize.tiny import tiny_components, tiny_engine
    from stylize.truth import motion_pass, moving_picture, temporal_error

    torch.set_num_threads(1)
    photo = read_image(Path(__file__).resolve().parents[1] / "tests" / "data" / "chelsea_small.png")[..., :3]
    size = (res, res)
    frames, motion = moving_picture(photo, n, size), motion_pass(n, size)
    take = make_take(tmp / "temporal", n, res, frames=frames, motion=motion)
    src = PassSource(take / "passes")
    comps = tiny_components(0)
    out: dict = {"frames": n, "res": res, "motion": "pan (1.5, 0.7) px + zoom 1 %/frame of a real photo, exact motion pass",
                 "input_warp_error": round(temporal_error(frames, motion), 3)}
    runs = {"per_frame_baseline": ("every", False, "auto"), "cadence1_init": ("every", True, "auto"),
            "cadence4": ("propagate", False, "auto"), "cadence4_init": ("propagate", True, "auto"),
            "cadence4_init_dis": ("propagate", True, "dis")}
    for engine in ("classical", "tiny_diffusion"):
        res_e: dict = {}
        for name, (mode, init, flow) in runs.items():
            doc = {"name": f"{engine}-{name}", "engine": "classical", "classical": {"sigma_s": 20.0}, "seed": 5, "prompt": "a cat",
                   "cadence": {"mode": mode, "every": 4, "init_blend": 0.3 if init else 0.0, "init_noise": init, "flow": flow,
                               "color_match": False, "detect_cuts": False}}
            if engine == "tiny_diffusion":
                doc.update(engine="diffusion", model={"base": "tiny", "steps": 4, "strength": 0.6, "guidance": 1.0})
            look = Look.from_doc(doc)
            eng = tiny_engine(look, comps, runtime={"dtype": "fp32", "batch": 1, "device": "cpu"}) if engine != "classical" else ClassicalEngine(look)
            eng.batch = 1
            t0 = time.perf_counter()
            r = run_source(src, look, eng, tmp / "temporal-out" / f"{engine}-{name}", progress=False, video=False)
            dt = time.perf_counter() - t0
            outs = [read_image(r.out_dir / "frames" / f"{f:06d}.png") for f in range(n)]
            res_e[name] = {"warp_error": round(temporal_error(outs, motion), 3), "s_per_frame_disk_to_disk": round(dt / n, 4),
                           "flow": json.loads((r.out_dir / "params.json").read_text())["params"]["flow"]["method"]}
        c1, c4 = res_e["cadence1_init"]["warp_error"], res_e["cadence4_init"]["warp_error"]
        res_e["cadence4_over_cadence1"] = round(c4 / c1, 3)
        res_e["init_lowers_cadence1_pct"] = round((1 - c1 / res_e["per_frame_baseline"]["warp_error"]) * 100, 1)
        res_e["init_lowers_cadence4_pct"] = round((1 - c4 / res_e["cadence4"]["warp_error"]) * 100, 1)
        out[engine] = res_e
    return out


def every_2nd_section(n: int, res: int, tmp: Path) -> dict:
    """The same moving photo as a take rendered every 2nd frame (``blender render --step 2``, the
    demo's): classical look, the engine as the runner makes it; warp error between the frames
    there are, under the exact motion between them. The motion pass cannot span the holes, so
    the flow is estimated (DIS); the per-frame baseline is what the runner did before frames 2
    apart were neighbours (every frame its own segment)."""
    from machinima.imageseq import read_image
    from machinima.passes import PassSet
    from stylize.engines import ClassicalEngine
    from stylize.look import Look
    from stylize.runner import run_source
    from stylize.sources import PassSource
    from stylize.truth import flow_between, motion_pass, moving_picture, temporal_error

    photo = read_image(Path(__file__).resolve().parents[1] / "tests" / "data" / "chelsea_small.png")[..., :3]
    size = (res, res)
    frames = moving_picture(photo, n, size)
    take = make_take(tmp / "every2nd", n, res, frames=frames, motion=motion_pass(n, size))
    ps = PassSet.open(take / "passes")
    for name in ("rgb", "depth", "motion"):
        for f, p in ps.frame_files(name).items():
            if f % 2:
                p.unlink()
    kept = list(range(0, n, 2))
    ps.meta["frames"] = kept
    ps.save()
    exact = [np.zeros((*size, 2), np.float32)] + [flow_between(b, a, size) for a, b in zip(kept, kept[1:])]
    out: dict = {"frames": kept, "input_warp_error": round(temporal_error(frames[::2], exact), 3)}
    runs = {"per_frame_baseline": ("every", False), "cadence1_init": ("every", True), "cadence4": ("propagate", False),
            "cadence4_init": ("propagate", True)}
    for name, (mode, init) in runs.items():
        look = Look.from_doc({"name": f"every2nd-{name}", "engine": "classical", "classical": {"sigma_s": 20.0},
                              "cadence": {"mode": mode, "every": 4, "init_blend": 0.3 if init else 0.0, "init_noise": init,
                                          "color_match": False, "detect_cuts": False}})
        r = run_source(PassSource(take / "passes"), look, ClassicalEngine(look), tmp / "every2nd-out" / name, progress=False, video=False)
        outs = [read_image(r.out_dir / "frames" / f"{f:06d}.png") for f in kept]
        out[name] = {"warp_error": round(temporal_error(outs, exact), 3), "keyframes": r.plan["keyframes"],
                     "flow": json.loads((r.out_dir / "params.json").read_text())["params"]["flow"]["method"]}
    out["cadence4_over_cadence1"] = round(out["cadence4_init"]["warp_error"] / out["cadence1_init"]["warp_error"], 3)
    return out


def gpu_section(n: int, tmp: Path, *, smoke: bool = False) -> dict:
    """``smoke``: the same code on CPU with tiny models at 32 px (checks the path, not the speed)."""
    import torch

    from stylize.engines import DiffusionEngine
    from stylize.look import Look
    from stylize.tiny import sd15_components, tiny_components

    dev, dt, res = ("cpu", "fp32", 32) if smoke else ("cuda", "fp16", 512)
    if smoke:
        torch.set_num_threads(1)
    comps = tiny_components(1) if smoke else sd15_components(1)
    take = make_take(tmp / "gpu-takes", n, res)
    doc = look_doc("every", steps=20, strength=0.5, guidance=7.5)
    doc["runtime"] = {"memory": "24gb"}
    sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
    out: dict = {"device": torch.cuda.get_device_name() if dev == "cuda" else "cpu (smoke)", "frames": n, "res": res,
                 "steps": 20, "strength": 0.5, "guidance": 7.5}
    dim = comps["cross_dim"]
    embed = lambda t: torch.randn(1, 77, dim, generator=torch.Generator().manual_seed(len(t)))  # noqa: E731
    look = Look.from_doc(doc)
    eng = DiffusionEngine.from_components(look, unet=comps["unet"], vae=comps["vae"], controlnets=comps["controlnets"], embed=embed,
                                          runtime={"dtype": dt, "batch": 1, "device": dev})
    emb = eng.embeddings("a painted street", "")
    kw = dict(prompt_embeds=emb["prompt_embeds"], negative_prompt_embeds=emb["negative_prompt_embeds"], num_inference_steps=20,
              strength=0.5, guidance_scale=7.5, controlnet_conditioning_scale=1.0)
    plain_loop(eng.pipe, take, tmp / "gwarm", [0], kw)
    sync()
    t_plain = plain_loop(eng.pipe, take, tmp / "gplain", list(range(n)), kw)[0]
    out["plain_fps"] = round(n / t_plain, 2)
    for name, mode, batch in (("every_batch8", "every", 8), ("propagate_4_batch8", "propagate", 8)):
        d = look_doc(mode, steps=20, strength=0.5, guidance=7.5, init_blend=0.3 if mode == "propagate" else 0.0)
        d["runtime"] = {"memory": "24gb"}
        lk = Look.from_doc(d)
        e = DiffusionEngine(eng.pipe, lk, embed=embed, runtime={"dtype": dt, "batch": batch, "device": dev, "channels_last": True})
        runner(lk, e, take, tmp / f"g{name}-warm")
        sync()
        t, r, _ = runner(lk, e, take, tmp / f"g{name}")
        out[name] = {"fps": round(n / t, 2), "speedup_vs_plain": round(t_plain / t, 2), "keyframes": r.plan["keyframes"]}
    if dev == "cuda":
        out["peak_mem_gb"] = round(torch.cuda.max_memory_allocated() / 1e9, 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--frames", type=int, default=None)
    ap.add_argument("--res", type=int, default=64)
    ap.add_argument("--gpu-smoke", action="store_true", help="run the GPU section's code on CPU with tiny models")
    ap.add_argument("--temporal-only", action="store_true", help="only the temporal section (warp error under the exact motion)")
    args = ap.parse_args()
    n = args.frames or (12 if args.quick else 24)
    import logging

    logging.getLogger("diffusers").setLevel(logging.ERROR)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    result: dict = {"bench": "stylize", "loadavg_start": [round(x, 2) for x in os.getloadavg()]}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as td:
        if not args.gpu_smoke:
            if not args.temporal_only:
                result["cpu"] = cpu_section(n, args.res, Path(td))
            result["temporal"] = temporal_section(n, 64, Path(td))
            result["temporal_every_2nd_frame"] = every_2nd_section(2 * n + 1, 64, Path(td))
        import torch

        if args.gpu_smoke:
            result["gpu_smoke"] = gpu_section(4, Path(td), smoke=True)
        if torch.cuda.is_available():
            result["gpu"] = gpu_section(16 if args.quick else 48, Path(td))
        else:
            result["gpu"] = "skipped: no CUDA device"
    result["seconds"] = round(time.perf_counter() - t0, 1)
    result["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(result))


if __name__ == "__main__":
    main()

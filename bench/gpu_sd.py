"""Stylize figures for bench/gpu_figures.py: the plain diffusers per-frame loop vs the runner.

Same models (SD 1.5 shapes, random weights: real cost, noise pictures), same frames (512 px
PNGs on disk, a translating texture), same settings: 20 steps x 0.5 strength, CFG 7.5, one
canny ControlNet, prompt embeddings of 77 tokens. Both sides run disk to disk: read the PNG,
make the control, diffuse, write the PNG. The runner is ``stylize.runner.run_source`` (ledger,
resume keys, batching, cadence) with the look's runtime ``memory = "24gb"`` (fp16, 8 frames a
call, channels_last) and, in the compiled section, ``compile = true``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

STEPS, STRENGTH, CFG = 20, 0.5, 7.5
PROMPT, NEGATIVE = "a painted street at dusk", "blurry, low quality"
GOAL_FPS, GOAL_SPEEDUP, GOAL_CADENCE_FPS = 18.0, 7.6, 60.0


def sizes(run: Any) -> dict[str, int]:
    if run.smoke:  # the path, not the speed: 4 steps x 0.5
        return {"res": 32, "batch": 2, "plain": 3, "every": 4, "cadence": 9, "steps": 4}
    # 125 frames at cadence 4: keyframes 0, 4 ... 124 = 32 = four full batches (no odd shape to compile)
    return {"res": 512, "batch": 8, "plain": 13, "every": 64, "cadence": 125, "steps": STEPS}


def models(run: Any, shared: dict[str, Any]) -> dict[str, Any]:
    """The components, built once on the device (random init there: seconds, not a minute)."""
    if "sd" not in shared:
        import torch

        from stylize.tiny import sd15_components, tiny_components

        with torch.device(run.dev):
            comps = tiny_components(1) if run.smoke else sd15_components(1)
        dt = torch.float16 if run.dev == "cuda" else torch.float32
        for m in (comps["unet"], comps["vae"], *comps["controlnets"]):
            m.to(run.dev, dt).eval()
        shared["sd"] = comps
        shared["sd_dtype"] = dt
    return shared["sd"]


def frames(run: Any, shared: dict[str, Any]) -> Path:
    """A folder of numbered PNGs: a blurred-noise texture moving 2 px a frame (real edges for canny)."""
    if "sd_frames" not in shared:
        from gpu_figures import bench_module
        from machinima.imageseq import write_image

        s = sizes(run)
        n, size = max(s["every"], s["cadence"], s["plain"]), s["res"]
        big = bench_module("stylize").texture(size, size + 2 * n + 4)
        folder = run.tmp / "sd-frames"
        for f in range(n):
            write_image(folder / f"{f:06d}.png", np.ascontiguousarray(big[:, 2 * f:2 * f + size]))
        shared["sd_frames"] = folder
    return shared["sd_frames"]


def look_doc(mode: str, s: dict[str, int], *, compile: bool, coherent: bool) -> dict[str, Any]:
    """``coherent``: the look's defaults (keyframe init from the previous stylized keyframe,
    colour matching, cut detection); else the plain loop's work and nothing more."""
    cadence: dict[str, Any] = {"mode": mode, "every": 4}
    if not coherent:
        cadence.update(init_blend=0.0, color_match=False, detect_cuts=False)
    return {"name": f"gpu-{mode}", "engine": "diffusion", "prompt": PROMPT, "negative": NEGATIVE, "seed": 1,
            "model": {"base": "random", "steps": s["steps"], "strength": STRENGTH, "guidance": CFG},
            "controls": [{"kind": "canny"}], "cadence": cadence,
            "runtime": {"memory": "24gb", "batch": s["batch"], "compile": compile}}


def engine(look: Any, comps: dict[str, Any]) -> Any:
    from stylize.engines import DiffusionEngine, hash_embedder

    return DiffusionEngine.from_components(look, unet=comps["unet"], vae=comps["vae"], controlnets=comps["controlnets"],
                                           embed=hash_embedder(comps["cross_dim"], length=77))


def plain_fps(run: Any, comps: dict[str, Any], folder: Path, s: dict[str, int]) -> float:
    """What the diffusers docs lead a user to write: per frame read, control, one pipeline call, write."""
    import torch
    from diffusers import DDIMScheduler, StableDiffusionControlNetImg2ImgPipeline

    from machinima.imageseq import read_image, write_image
    from stylize.controls import image_control
    from stylize.engines import hash_embedder

    dt = torch.float16 if run.dev == "cuda" else torch.float32
    pipe = StableDiffusionControlNetImg2ImgPipeline(
        vae=comps["vae"], text_encoder=None, tokenizer=None, unet=comps["unet"], controlnet=comps["controlnets"][0],
        scheduler=DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, clip_sample=False,
                                set_alpha_to_one=False, steps_offset=1),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    embed = hash_embedder(comps["cross_dim"], length=77)
    pe, ne = embed(PROMPT).to(run.dev, dt), embed(NEGATIVE).to(run.dev, dt)
    out = run.tmp / "sd-plain"

    def tensor(a: np.ndarray) -> Any:
        return torch.from_numpy(a).permute(2, 0, 1)[None].float().div(255).to(run.dev, dt)

    def one(f: int) -> None:
        img = read_image(folder / f"{f:06d}.png")
        ctl = image_control("canny", img)
        with torch.inference_mode():
            res = pipe(prompt_embeds=pe, negative_prompt_embeds=ne, image=tensor(img), control_image=tensor(ctl),
                       num_inference_steps=s["steps"], strength=STRENGTH, guidance_scale=CFG,
                       generator=torch.Generator("cpu").manual_seed(1), output_type="np").images[0]
        write_image(out / f"{f:06d}.png", (np.clip(res, 0, 1) * 255 + 0.5).astype(np.uint8))

    n = s["plain"]
    one(0)  # warm-up: kernels, allocator
    _, secs = run.timed(lambda: [one(f) for f in range(1, n)])
    return round((n - 1) / secs, 2)


def probe(run: Any, comps: dict[str, Any], s: dict[str, int]) -> dict[str, Any]:
    """Kernel figures: one UNet+ControlNet step on a batch's CFG pairs, the VAE per frame (both layouts)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    unet, cn, vae = comps["unet"], comps["controlnets"][0], comps["vae"]
    batch, res = s["batch"], s["res"]
    dt = next(unet.parameters()).dtype
    lat = res // int(2 ** (len(vae.config.block_out_channels) - 1))
    g = torch.Generator(run.dev).manual_seed(0)
    x = torch.randn(2 * batch, 4, lat, lat, device=run.dev, dtype=dt, generator=g)
    e = torch.randn(2 * batch, 77, comps["cross_dim"], device=run.dev, dtype=dt, generator=g)
    c = torch.rand(2 * batch, 3, res, res, device=run.dev, dtype=dt, generator=g)
    t = torch.tensor(500, device=run.dev)

    def step() -> None:
        d, m = cn(x, t, e, c, return_dict=False)
        unet(x, t, e, down_block_additional_residuals=d, mid_block_additional_residual=m)

    out: dict[str, Any] = {"batch_frames": batch}
    reps = 2 if run.smoke else 5
    with torch.inference_mode():
        with FlopCounterMode(display=False) as fc:
            step()
        flop_frame = fc.get_total_flops() / batch
        _, secs = run.timed(lambda: [step() for _ in range(reps)])
        ms = secs / reps * 1e3
        out.update(step_ms=round(ms, 2), step_tflop_per_frame=round(flop_frame / 1e12, 3),
                   step_tflops=round(flop_frame * batch / (ms / 1e3) / 1e12, 1),
                   denoise_ms_per_frame=round(ms / batch * s["steps"] * STRENGTH, 2))
        img = torch.rand(batch, 3, res, res, device=run.dev, dtype=dt, generator=g) * 2 - 1
        for layout, fmt in (("contiguous", torch.contiguous_format), ("channels_last", torch.channels_last)):
            vae.to(memory_format=fmt)
            z = vae.encode(img.contiguous(memory_format=fmt)).latent_dist.mean
            vae.decode(z)
            _, enc = run.timed(lambda: vae.encode(img.contiguous(memory_format=fmt)).latent_dist.mean)
            _, dec = run.timed(lambda: vae.decode(z).sample)
            out[f"vae_{layout}_ms_per_frame"] = {"encode": round(enc / batch * 1e3, 2), "decode": round(dec / batch * 1e3, 2)}
        vae.to(memory_format=torch.contiguous_format)
    return out


def runner(run: Any, look: Any, eng: Any, folder: Path, out: str, n: int) -> dict[str, Any]:
    """The runner disk to disk over frames 0..n-1, with where its time went."""
    from stylize.runner import run_source
    from stylize.sources import FolderSource

    res, secs = run.timed(lambda: run_source(FolderSource(folder), look, eng, run.tmp / out, frames=list(range(n)),
                                             progress=False, video=False))
    st = res.stats
    return {"frames": n, "keyframes": res.plan["keyframes"], "seconds": round(secs, 2), "fps": round(n / secs, 2),
            "engine_fps": round(st["diffused"] / st["engine_s"], 2) if st["engine_s"] else None,
            "engine_share": round(st["engine_s"] / secs, 3), "flow_share": round(st["flow_s"] / secs, 3),
            "propagated": st["propagated"]}


def eager(run: Any, shared: dict[str, Any]) -> None:
    """Plain loop, kernel probe, the runner batched (not compiled), cadence 4."""
    from stylize.look import Look

    put, s = run.fig.put, sizes(run)
    comps = models(run, shared)
    folder = frames(run, shared)
    put("sd.settings", {"res": s["res"], "steps": s["steps"], "strength": STRENGTH, "cfg": CFG, "controlnets": 1, "control": "canny",
                        "dtype": str(shared["sd_dtype"]).replace("torch.", ""), "batch": s["batch"], "prompt_tokens": 77,
                        "model": "tiny random" if run.smoke else "SD 1.5 shapes, random weights"})
    shared["plain_fps"] = put("sd.plain_fps", plain_fps(run, comps, folder, s))
    put("sd.probe", probe(run, comps, s))
    look = Look.from_doc(look_doc("every", s, compile=False, coherent=False))
    eng = engine(look, comps)
    runner(run, look, eng, folder, "sd-warm", s["batch"])
    r = runner(run, look, eng, folder, "sd-eager", s["every"])
    r["speedup_vs_plain"] = round(r["fps"] / shared["plain_fps"], 2)
    put("sd.runner_eager", r)
    cad = Look.from_doc(look_doc("propagate", s, compile=False, coherent=True))
    put("sd.cadence4_eager", runner(run, cad, eng, folder, "sd-cadence", s["cadence"]))
    put("sd.peak_gib", run.peak_gib())


def compiled(run: Any, shared: dict[str, Any]) -> None:
    """The runner with compile = true (UNet, ControlNet, VAE encoder and decoder): compile time,
    every frame (same work as the plain loop, then the look's coherent defaults), cadence 4."""
    import time

    from stylize.look import Look

    put, s = run.fig.put, sizes(run)
    if not run.compile:
        put("compiled.skipped", "COMPILE=0")
        return
    comps = models(run, shared)
    folder = frames(run, shared)
    if run.dev == "cuda":
        import torch

        torch.cuda.reset_peak_memory_stats()  # this section's own peak, not the LoRA section's
    look = Look.from_doc(look_doc("every", s, compile=True, coherent=False))
    eng = engine(look, comps)
    t0 = time.perf_counter()
    runner(run, look, eng, folder, "c-warm", s["batch"])
    put("compiled.first_batch_s", round(time.perf_counter() - t0, 1))  # compiling, mostly
    r = runner(run, look, eng, folder, "c-every", s["every"])
    plain = shared.get("plain_fps")
    r["speedup_vs_plain"] = round(r["fps"] / plain, 2) if plain else None
    put("compiled.runner", r)
    cad = runner(run, Look.from_doc(look_doc("propagate", s, compile=True, coherent=True)), eng, folder, "c-cadence",
                 s["cadence"])
    put("compiled.cadence4", cad)
    if run.left() > 30:
        put("compiled.runner_coherent", runner(run, Look.from_doc(look_doc("every", s, compile=True, coherent=True)),
                                               eng, folder, "c-coherent", s["every"]))
    put("compiled.peak_gib", run.peak_gib())
    put("sd.goals", {"runner_fps": {"goal": GOAL_FPS, "got": r["fps"], "met": r["fps"] >= GOAL_FPS},
                     "speedup_vs_plain": {"goal": GOAL_SPEEDUP, "got": r["speedup_vs_plain"],
                                          "met": bool(r["speedup_vs_plain"] and r["speedup_vs_plain"] >= GOAL_SPEEDUP)},
                     "cadence4_fps": {"goal": GOAL_CADENCE_FPS, "got": cad["fps"], "met": cad["fps"] >= GOAL_CADENCE_FPS}})

"""AnimateDiff video-to-video (and its ControlNet variant) for whole takes, in sliding context
windows blended inside the denoising loop: one motion, no seams, any length.

    animate_take(take, look, motion)
      1. check inputs: the look (sd15, img2img), the motion settings, the take's frames and passes
      2. build the engine: base model + motion adapter (+ motion LoRAs, LoRAs, ControlNets), all
         from local paths; a missing one -> one message saying what to put where
      3. split the frames into segments (the look's shots: motion never runs across a cut)
      4. run the segments through ``machinima.poststep.PostStep``: a finished run skips, a rerun
         recomputes unfinished segments exactly (windows and noise are pure functions of the seed)
      5. encode the finished frames to ``<step-id>.mp4``

    AnimateDiffEngine.video(frames, controls, prompts=..., seed=..., strength=...)
      1. check inputs (frame shapes, one prompt per frame, window <= what the adapter supports)
      2. resize to the model's multiple, timesteps from steps x strength
      3. encode the frames to latents (VAE, in chunks), add the seed's noise for the whole take
      4. prompt embeddings per frame (per-shot prompts work inside a window), controls per frame
      5. denoise: at every step, plan the windows (``ContextWindows``), predict each window's
         noise (UNetMotionModel + ControlNets, CFG), blend the predictions across overlaps with
         normalized weights, then one scheduler step on the whole take
      6. decode (VAE, in chunks) and resize back

The diffusers pipeline (``AnimateDiffVideoToVideoPipeline`` or
``AnimateDiffVideoToVideoControlNetPipeline``) holds the components and does the loading (local
folders and single files, LoRA adapters, prompt encoding); the loop here replaces its
``__call__`` because that one denoises all frames in one window.
"""

from __future__ import annotations

import inspect
import json
import time
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from . import controls as C
from .context_windows import FUSE_METHODS, ContextWindows
from .errors import ControlError, LookError, ModelMissingError, SourceError, StylizeError
from .models import fingerprint, load_controlnets, load_loras, load_model, load_pipeline, need_model
from .look import LoraSpec, Look, find_look
from .sources import Source
from machinima.poststep import StopFlag

STEP_KIND = "animatediff"
OUTPUT = "frames"
BETA_SCHEDULES = ("linear", "scaled_linear")
ADAPTER_EXPECT = ("a diffusers MotionAdapter folder (config.json + diffusion_pytorch_model.safetensors, e.g. "
                  "animatediff-motion-adapter-v1-5-3), or an original mm_sd15_*.ckpt/.safetensors file with "
                  "adapter_config = a folder holding its config.json")


# --- settings: the look's [animatediff] table ----------------------------------------------------
@dataclass
class MotionSpec:
    motion_adapter: str = ""       # folder or single file (under models_dir when relative)
    adapter_config: str = ""       # folder with config.json, for a single-file adapter
    context_length: int = 16       # frames per window (the adapter was trained on 16)
    context_overlap: int = 4       # frames shared by neighbouring windows
    context_shift: bool = True     # move the window grid every step
    looped: bool = False           # the take is a loop: last frames blend into the first
    fuse: str = "pyramid"          # flat | pyramid | gauss
    window_batch: int = 1          # windows per UNet call (GPU memory vs speed)
    decode_chunk: int = 8          # frames per VAE call
    beta_schedule: str = "linear"  # AnimateDiff was trained with linear betas
    motion_loras: list[LoraSpec] = field(default_factory=list)

    def windows(self) -> ContextWindows:
        return ContextWindows(self.context_length, self.context_overlap, shift=self.context_shift,
                              looped=self.looped, fuse=self.fuse)

    def describe(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("decode_chunk")  # speed only
        d.pop("window_batch")
        return d


def parse_animate_look(doc: Any, where: str = "look") -> tuple[Look, MotionSpec]:
    """A look document with an ``[animatediff]`` table -> (Look, MotionSpec). Sans-I/O."""
    if not isinstance(doc, dict):
        raise LookError(f"{where}: a look is a table of settings")
    doc = dict(doc)
    raw = doc.pop("animatediff", None)
    if not isinstance(raw, dict):
        raise LookError(f"{where}: an AnimateDiff look needs an animatediff table (TOML header: animatediff in brackets) with motion_adapter = path",
                        hint="the shipped look animatediff-sd15 has one: `machinima examples copy animatediff-sd15 .`")
    look = Look.from_doc(doc, where)
    raw = dict(raw)
    loras = raw.pop("motion_loras", [])
    if not isinstance(loras, list):
        raise LookError(f"{where}: animatediff.motion_loras must be a list of tables")
    known = {f for f in MotionSpec.__dataclass_fields__ if f != "motion_loras"}
    for key, value in raw.items():
        if key not in known:
            raise LookError(f"{where}: animatediff: unknown setting {key!r}; known: {', '.join(sorted(known | {'motion_loras'}))}")
        default = getattr(MotionSpec, key)
        if type(value) is not type(default):
            raise LookError(f"{where}: animatediff.{key} must be {type(default).__name__}, got {value!r}")
    spec = MotionSpec(**raw)
    for i, x in enumerate(loras):
        if not isinstance(x, dict) or not isinstance(x.get("path"), str) or set(x) - {"path", "weight"}:
            raise LookError(f"{where}: animatediff.motion_loras #{i + 1} needs path = file (and optional weight)")
        spec.motion_loras.append(LoraSpec(x["path"], float(x.get("weight", 1.0))))
    check_look(look, spec, where)
    return look, spec


def check_look(look: Look, spec: MotionSpec, where: str = "look") -> None:
    if look.engine != "diffusion":
        raise LookError(f"{where}: AnimateDiff needs engine = 'diffusion' (a local SD 1.5 model as model.base)")
    if look.model.family != "sd15":
        raise LookError(f"{where}: AnimateDiff video-to-video runs on SD 1.5 models; model.family is {look.model.family!r}")
    if look.model.mode != "img2img":
        raise LookError(f"{where}: AnimateDiff here is video-to-video: set model.mode = 'img2img'")
    if look.model.ip_adapter:
        raise LookError(f"{where}: IP-Adapter is not wired into the AnimateDiff loop; remove model.ip_adapter")
    if spec.fuse not in FUSE_METHODS:
        raise LookError(f"{where}: animatediff.fuse {spec.fuse!r} is not one of {', '.join(FUSE_METHODS)}")
    if spec.beta_schedule not in BETA_SCHEDULES:
        raise LookError(f"{where}: animatediff.beta_schedule must be one of {', '.join(BETA_SCHEDULES)}")
    if spec.window_batch < 1 or spec.decode_chunk < 1:
        raise LookError(f"{where}: animatediff.window_batch and animatediff.decode_chunk must be >= 1")
    spec.windows()  # length/overlap checks


def load_animate_look(path: str | Path) -> tuple[Look, MotionSpec]:
    p = find_look(path)
    try:
        doc = tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise LookError(f"{p}: {exc}") from None
    look, spec = parse_animate_look(doc, str(p))
    if look.name == "look":
        look.name = p.stem
    return look, spec


# --- small helpers ---------------------------------------------------------------------------------
def _scheduler(name: str, config: Any, beta_schedule: str):
    import diffusers as d

    cls = {"ddim": d.DDIMScheduler, "euler": d.EulerDiscreteScheduler, "euler_a": d.EulerAncestralDiscreteScheduler,
           "dpm": d.DPMSolverMultistepScheduler, "unipc": d.UniPCMultistepScheduler, "lcm": d.LCMScheduler,
           "pndm": d.PNDMScheduler}[name]
    extra: dict[str, Any] = {"beta_schedule": beta_schedule, "timestep_spacing": "linspace", "steps_offset": 1}
    if name == "ddim":
        extra["clip_sample"] = False
    return cls.from_config(config, **extra)


def _dtype(name: str):
    import torch

    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[name]


def _runtime(look: Look) -> dict[str, Any]:
    presets = {"cpu": "fp32", "8gb": "fp16", "12gb": "fp16", "24gb": "fp16"}
    rt = look.runtime
    return {"device": rt.device, "dtype": presets[rt.memory] if rt.dtype == "auto" else rt.dtype,
            "cpu_offload": rt.cpu_offload if rt.cpu_offload is not None else rt.memory == "8gb",
            "vae_tiling": bool(rt.vae_tiling), "channels_last": bool(rt.channels_last)}


def load_motion_adapter(path: Path, config_dir: Path | None = None, dtype: Any = None):
    """A MotionAdapter from a diffusers folder, or a single original file + its config folder."""
    from diffusers import MotionAdapter

    if path.is_dir():
        if not (path / "config.json").exists():
            raise ModelMissingError(f"motion adapter folder {path} has no config.json", hint=f"put {ADAPTER_EXPECT}")
        return load_model(MotionAdapter.from_pretrained, path, dtype=dtype, local_files_only=True)
    cfg_dir = config_dir or (path.parent if (path.parent / "config.json").exists() else None)
    if cfg_dir is None:
        raise ModelMissingError(f"the single-file motion adapter {path.name} needs its config",
                                hint="set animatediff.adapter_config = a folder with the adapter's config.json "
                                     "(from the matching diffusers animatediff-motion-adapter folder), or use that folder")
    return load_model(MotionAdapter.from_single_file, path, config=str(cfg_dir), dtype=dtype, local_files_only=True)


# --- the engine ----------------------------------------------------------------------------------------
class AnimateDiffEngine:
    """A motion-model video-to-video engine over whole frame sequences."""

    def __init__(self, pipe: Any, look: Look, motion: MotionSpec, *, embed: Callable[[str], Any] | None = None,
                 models: dict[str, Any] | None = None, runtime: dict[str, Any] | None = None) -> None:
        import torch

        self.pipe, self.look, self.motion = pipe, look, motion
        self.models = dict(models or {})
        rt = dict(runtime or _runtime(look))
        dev = rt.get("device", "auto")
        self.device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if dev == "auto" else dev)
        dt = rt.get("dtype", "fp32")
        if self.device.type == "cpu" and dt == "fp16":
            dt = "fp32"  # no fast fp16 kernels on CPUs
        self.dtype = _dtype(dt)
        self.runtime = rt
        self._embed = embed
        self._cache: dict[str, Any] = {}
        pipe.set_progress_bar_config(disable=True)
        pipe.scheduler = _scheduler(look.model.scheduler, pipe.scheduler.config, motion.beta_schedule)
        if rt.get("cpu_offload") and self.device.type == "cuda":
            pipe.to(dtype=self.dtype)
            pipe.enable_model_cpu_offload()
            self.device = torch.device("cuda")
        else:
            pipe.to(self.device)
            if self.dtype != torch.float32:
                pipe.to(dtype=self.dtype)
        if rt.get("channels_last"):
            pipe.unet.to(memory_format=torch.channels_last)
        if rt.get("vae_tiling"):
            pipe.vae.enable_tiling()
        self.controlnets = self._controlnet_list()
        self.max_frames = int(getattr(pipe.unet.config, "motion_max_seq_length", 32) or 32)

    def _controlnet_list(self) -> list[Any]:
        cn = getattr(self.pipe, "controlnet", None)
        if cn is None:
            return []
        return list(cn.nets) if hasattr(cn, "nets") else [cn]

    # --- construction ---------------------------------------------------------------------------
    @classmethod
    def from_components(cls, look: Look, motion: MotionSpec, *, unet: Any, motion_adapter: Any, vae: Any,
                        controlnets: Sequence[Any] = (), embed: Callable[[str], Any] | None = None,
                        scheduler: Any = None, runtime: dict[str, Any] | None = None,
                        lora_dir: str | Path | None = None) -> "AnimateDiffEngine":
        """From models built in code (tests, benchmarks); without a text encoder pass ``embed``."""
        from diffusers import AnimateDiffVideoToVideoControlNetPipeline, AnimateDiffVideoToVideoPipeline, DDIMScheduler

        if len(controlnets) != len(look.controls):
            raise LookError(f"the look has {len(look.controls)} controls but {len(controlnets)} ControlNets were given")
        scheduler = scheduler or DDIMScheduler(beta_start=0.00085, beta_end=0.012, clip_sample=False)
        kw: dict[str, Any] = dict(vae=vae, text_encoder=None, tokenizer=None, unet=unet, motion_adapter=motion_adapter, scheduler=scheduler)
        if controlnets:
            kw["controlnet"] = list(controlnets) if len(controlnets) > 1 else controlnets[0]
            pipe = AnimateDiffVideoToVideoControlNetPipeline(**kw)
        else:
            pipe = AnimateDiffVideoToVideoPipeline(**kw)
        engine = cls(pipe, look, motion, embed=embed, models={"base": "built in code"}, runtime=runtime)
        engine._load_loras(lambda rel, what, expect: Path(lora_dir or ".") / rel)
        return engine

    @classmethod
    def from_look(cls, look: Look, motion: MotionSpec, config: Any = None) -> "AnimateDiffEngine":
        """Every model from local paths; a missing one -> ModelMissingError saying what to put where."""
        from diffusers import AnimateDiffVideoToVideoControlNetPipeline, AnimateDiffVideoToVideoPipeline

        from machinima.config import load_config

        cfg = config or load_config()
        rt = _runtime(look)
        dtype = _dtype("fp32" if rt["dtype"] == "fp16" and not _cuda(rt) else rt["dtype"])
        need = lambda rel, what, expect: need_model(cfg, rel, what, expect)  # noqa: E731
        m = look.model
        models: dict[str, Any] = {}
        # the motion adapter first: it is the piece people forget
        ad_path = need(motion.motion_adapter, "motion adapter (animatediff.motion_adapter)", ADAPTER_EXPECT)
        ad_cfg = need(motion.adapter_config, "motion adapter config", "a folder with config.json") if motion.adapter_config else None
        adapter = load_motion_adapter(ad_path, ad_cfg, dtype)
        models["motion_adapter"] = {"path": str(ad_path), "fingerprint": fingerprint(ad_path)}
        base = need(m.base, f"base model {m.base!r}", "an SD 1.5 diffusers folder with model_index.json, or a .safetensors/.ckpt checkpoint")
        models["base"] = {"path": str(base), "fingerprint": fingerprint(base)}
        cns = load_controlnets(look, need, dtype, models)
        pcls = AnimateDiffVideoToVideoControlNetPipeline if cns else AnimateDiffVideoToVideoPipeline
        kw: dict[str, Any] = {"motion_adapter": adapter, "dtype": dtype, "local_files_only": True}
        if cns:
            kw["controlnet"] = cns if len(cns) > 1 else cns[0]
        pipe = load_pipeline(pcls, base, m.config, need, kw)
        if getattr(pipe, "text_encoder", None) is None:
            raise ModelMissingError(f"{base} has no text encoder", hint="use a full SD 1.5 folder (text_encoder/ and tokenizer/)")
        if m.vae:
            from diffusers import AutoencoderKL

            p = need(m.vae, f"VAE {m.vae!r}", "a diffusers AutoencoderKL folder or a .safetensors file")
            pipe.vae = load_model(AutoencoderKL.from_single_file if p.is_file() else AutoencoderKL.from_pretrained, p,
                             dtype=dtype, local_files_only=True)
            models["vae"] = {"path": str(p), "fingerprint": fingerprint(p)}
        engine = cls(pipe, look, motion, models=models, runtime=rt)
        engine._load_loras(need)
        return engine

    def _load_loras(self, need: Callable[[str, str, str], Path]) -> None:
        """Image LoRAs ([[model.loras]]) and motion LoRAs ([[animatediff.motion_loras]]), one adapter each."""
        todo = [("lora", "LoRA", x) for x in self.look.model.loras] + [("motion_lora", "motion LoRA", x) for x in self.motion.motion_loras]
        load_loras(self.pipe, [(f"{kind}{i}", what, x) for i, (kind, what, x) in enumerate(todo)], need, self.models,
                   "SD 1.5 + motion model")

    def describe(self) -> dict[str, Any]:
        return {"engine": "animatediff", "pipeline": type(self.pipe).__name__, "models": self.models,
                "device": str(self.device), "dtype": str(self.dtype).replace("torch.", ""),
                "max_frames": self.max_frames}

    # --- prompts ---------------------------------------------------------------------------------------
    def embeddings(self, prompt: str, negative: str):
        """(negative, positive) embeddings, each (1, tokens, dim), cached per pair."""
        key = json.dumps([prompt, negative])
        if key not in self._cache:
            if self._embed is not None:
                pe, ne = self._embed(prompt), self._embed(negative)
            else:
                pe, ne = self.pipe.encode_prompt(prompt, self.device, 1, True, negative_prompt=negative)
            self._cache[key] = (ne.to(self.device, self.dtype), pe.to(self.device, self.dtype))
        return self._cache[key]

    def size_multiple(self) -> int:
        n_down = len(getattr(self.pipe.unet.config, "down_block_types", (1,)))
        return int(self.pipe.vae_scale_factor) * (2 ** max(0, n_down - 1))

    # --- the video ---------------------------------------------------------------------------------------
    def video(self, frames: Sequence[np.ndarray], controls: Sequence[Sequence[np.ndarray]] = (), *,
              prompts: Sequence[tuple[str, str]], seed: int, strength: float | None = None,
              on_step: Callable[[int, int, int], None] | None = None) -> list[np.ndarray]:
        """Stylize a whole sequence (HxWx3 uint8 frames); ``controls[c][i]`` is control ``c`` of
        frame ``i``; ``prompts[i]`` = (prompt, negative) of frame ``i``. ``on_step(done, total,
        windows)`` after each denoising step."""
        import torch

        m = self.look.model
        strength = m.strength if strength is None else float(strength)
        ctx = self.motion.windows()
        n = len(frames)
        # 1. check inputs
        if n == 0:
            raise SourceError("no frames to animate")
        shape = np.asarray(frames[0]).shape
        for i, f in enumerate(frames):
            a = np.asarray(f)
            if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] < 3 or a.shape != shape:
                raise SourceError(f"frame {i} must be HxWx3 uint8 like frame 0 {shape}, got {a.shape} {a.dtype}")
        if len(prompts) != n:
            raise StylizeError(f"{len(prompts)} prompts for {n} frames: give one (prompt, negative) per frame")
        if len(controls) != len(self.look.controls) or any(len(c) != n for c in controls):
            raise ControlError(f"need {len(self.look.controls)} control sequences of {n} frames each")
        if min(ctx.length, n) > self.max_frames:
            raise LookError(f"animatediff.context_length {ctx.length} is longer than this motion adapter supports ({self.max_frames})",
                            hint="use 16 (what the SD 1.5 adapters were trained on)")
        if not 0.0 < strength <= 1.0:
            raise LookError(f"strength must be in (0, 1], got {strength}")
        # 2. sizes and timesteps
        h0, w0 = shape[:2]
        mult = self.size_multiple()
        W = self.look.runtime.width or max(mult, int(round(w0 / mult)) * mult)
        H = self.look.runtime.height or max(mult, int(round(h0 / mult)) * mult)
        sch = self.pipe.scheduler
        sch.set_timesteps(m.steps, device=self.device)
        t_start = m.steps - min(int(m.steps * strength), m.steps)
        timesteps = sch.timesteps[t_start * sch.order:]
        if len(timesteps) == 0:
            raise LookError(f"strength {strength} x steps {m.steps} leaves no denoising step", hint="raise model.strength or model.steps")
        if hasattr(sch, "set_begin_index"):
            sch.set_begin_index(t_start * sch.order)
        gen = torch.Generator("cpu").manual_seed(int(seed))
        with torch.inference_mode():
            # 3. latents: encode, then the seed's noise for the whole take (windows share it)
            video = self._to_tensor(frames, H, W) * 2.0 - 1.0
            latents = self._encode(video)                                   # (1, C, N, h, w)
            noise = torch.randn(latents.shape, generator=gen, dtype=torch.float32).to(self.device, self.dtype)
            latents = sch.add_noise(latents, noise, timesteps[:1])
            # 4. prompt embeddings and controls, per frame
            pairs = [self.embeddings(p, q) for p, q in prompts]
            neg = torch.cat([a for a, _ in pairs])                          # (N, tokens, dim)
            pos = torch.cat([b for _, b in pairs])
            ctl = [self._to_tensor(c, H, W) for c in controls]              # each (N, 3, H, W) in [0, 1]
            extra = {"generator": gen} if "generator" in inspect.signature(sch.step).parameters else {}
            # 5. denoise, blending the windows' predictions at every step
            for i, t in enumerate(timesteps):
                plan = ctx.blend_plan(n, i)
                scaled = sch.scale_model_input(latents, t)
                pred = torch.zeros_like(latents)
                for g in range(0, len(plan), self.motion.window_batch):
                    group = plan[g:g + self.motion.window_batch]
                    eps = self._predict(scaled, t, [w for w, _ in group], neg, pos, ctl, i / len(timesteps), (i + 1) / len(timesteps))
                    for j, (w, wt) in enumerate(group):
                        idx = torch.tensor(w, device=self.device)
                        weight = torch.as_tensor(wt, device=self.device, dtype=eps.dtype)[None, :, None, None]
                        pred[0].index_add_(1, idx, eps[j] * weight)
                latents = sch.step(pred, t, latents, **extra).prev_sample
                if on_step is not None:
                    on_step(i + 1, len(timesteps), len(plan))
            # 6. decode
            out = self._decode(latents)
        if out[0].shape[:2] != (h0, w0):
            import cv2

            out = [cv2.resize(x, (w0, h0), interpolation=cv2.INTER_CUBIC) for x in out]
        return out

    def _predict(self, scaled: Any, t: Any, windows: list[tuple[int, ...]], neg: Any, pos: Any, ctl: list[Any],
                 frac0: float, frac1: float) -> Any:
        """Noise prediction for a group of equal-length windows: (k, C, L, h, w)."""
        import torch

        m = self.look.model
        cfg = m.guidance > 1.0
        k, L = len(windows), len(windows[0])
        x = torch.stack([scaled[0][:, list(w)] for w in windows])          # (k, C, L, h, w)
        flat = [f for w in windows for f in w]
        emb = torch.cat([neg[flat], pos[flat]]) if cfg else pos[flat]      # (b*k*L, tokens, dim)
        x_in = torch.cat([x, x]) if cfg else x
        kw: dict[str, Any] = {}
        if self.controlnets:
            frames_in = x_in.transpose(1, 2).reshape(-1, *x_in.shape[1:2], *x_in.shape[3:])  # (b*k*L, C, h, w)
            down, mid = None, None
            for spec, net, images in zip(self.look.controls, self.controlnets, ctl):
                on = not (frac0 < spec.start or frac1 > spec.end)
                if not on or spec.weight == 0:
                    continue
                cond = images[flat]
                cond = torch.cat([cond, cond]) if cfg else cond
                d, md = net(frames_in, t, encoder_hidden_states=emb, controlnet_cond=cond,
                            conditioning_scale=spec.weight, return_dict=False)
                down = d if down is None else [a + b for a, b in zip(down, d)]
                mid = md if mid is None else mid + md
            if down is not None:
                kw = {"down_block_additional_residuals": down, "mid_block_additional_residual": mid}
        eps = self.pipe.unet(x_in, t, encoder_hidden_states=emb, **kw).sample
        if cfg:
            e_neg, e_pos = eps.chunk(2)
            eps = e_neg + m.guidance * (e_pos - e_neg)
        assert eps.shape[0] == k and eps.shape[2] == L
        return eps

    def _to_tensor(self, images: Sequence[np.ndarray], H: int, W: int):
        import cv2
        import torch

        arr = np.stack([np.asarray(x)[..., :3] if np.asarray(x).shape[:2] == (H, W)
                        else cv2.resize(np.ascontiguousarray(np.asarray(x)[..., :3]), (W, H), interpolation=cv2.INTER_AREA)
                        for x in images])
        return (torch.from_numpy(arr).permute(0, 3, 1, 2).float() / 255.0).to(self.device, self.dtype)

    def _encode(self, video: Any):
        import torch

        vae = self.pipe.vae
        dtype = vae.dtype
        upcast = dtype == torch.float16 and getattr(vae.config, "force_upcast", False)
        if upcast:  # the SD 1.5 VAE encoder overflows in fp16 (as diffusers' AnimateDiff does, encode in fp32)
            vae.to(dtype=torch.float32)
        chunks = []
        try:
            for s in range(0, video.shape[0], self.motion.decode_chunk):
                d = vae.encode(video[s:s + self.motion.decode_chunk].to(vae.dtype)).latent_dist
                chunks.append(d.mean)  # the mean, not a sample: the seed's noise is the only randomness
        finally:
            if upcast:
                vae.to(dtype=dtype)
        lat = torch.cat(chunks).to(self.dtype) * vae.config.scaling_factor
        return lat.permute(1, 0, 2, 3)[None]                                 # (1, C, N, h, w)

    def _decode(self, latents: Any) -> list[np.ndarray]:
        vae = self.pipe.vae
        lat = latents[0].permute(1, 0, 2, 3) / vae.config.scaling_factor       # (N, C, h, w)
        out = []
        for s in range(0, lat.shape[0], self.motion.decode_chunk):
            img = vae.decode(lat[s:s + self.motion.decode_chunk].to(vae.dtype)).sample.float()
            img = ((img.clamp(-1, 1) + 1) * 127.5 + 0.5).to("cpu").numpy().astype(np.uint8).transpose(0, 2, 3, 1)
            out.extend(np.ascontiguousarray(x) for x in img)
        return out


def _cuda(rt: dict[str, Any]) -> bool:
    import torch

    return torch.cuda.is_available() and str(rt.get("device", "auto")) in ("auto", "cuda") or str(rt.get("device", "")).startswith("cuda")


# --- takes ---------------------------------------------------------------------------------------------
@dataclass
class Segment:
    frames: list[int]
    seed: int
    strength: float
    shot: str | None


def plan_segments(look: Look, frames: Sequence[int], step: int = 1) -> list[Segment]:
    """Maximal runs of consecutive chosen frames inside one shot (or outside all shots);
    ``step``: the source's frame step (passes every 2nd frame: frames 2 apart are consecutive)."""
    segs: list[Segment] = []
    for f in frames:
        shot = look.shot_of(f)
        name = shot.name if shot else None
        if segs and segs[-1].shot == name and 0 < f - segs[-1].frames[-1] <= step:
            segs[-1].frames.append(f)
            continue
        seed = shot.seed if shot and shot.seed is not None else look.seed
        strength = shot.strength if shot and shot.strength is not None else look.model.strength
        segs.append(Segment([f], int(seed), float(strength), name))
    return segs


def control_images(look: Look, source: Source, frames: Sequence[int]) -> list[list[np.ndarray]]:
    """Control ``c`` of every frame: exact passes (depth, pose, normal, masks) or from the image."""
    out = []
    for c in look.controls:
        if c.kind == "depth":
            near, far = c.options.get("near"), c.options.get("far")
            if near is None or far is None:
                probe = [frames[0], frames[len(frames) // 2], frames[-1]]
                near, far = C.depth_range([source.raw("depth", f) for f in probe])
            seq = [C.depth_control(source.raw("depth", f), float(near), float(far)) for f in frames]
        elif c.kind == "pose":
            seq = [_rgb(source.raw("pose", f)) for f in frames]
        elif c.kind == "normal":
            seq = [C.normal_control(source.raw("normal", f)) for f in frames]
        elif c.kind == "mask":
            seq = [C.mask_control(source.raw(f"mask/{c.options.get('mask', '')}", f)) for f in frames]
        else:
            seq = [C.image_control(c.kind, source.image(f), c.options) for f in frames]
        out.append(seq)
    return out


def _rgb(x: np.ndarray) -> np.ndarray:
    a = np.asarray(x)
    if a.dtype != np.uint8:
        a = (np.clip(a, 0, 1) * 255 + 0.5).astype(np.uint8)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    return np.ascontiguousarray(a[..., :3])


@dataclass
class AnimateResult:
    report: Any
    out_dir: Path
    video: Path | None
    segments: list[dict[str, Any]]
    frames_note: str | None = None  # passes every Nth frame or a range: what was done with the others


def animate_source(source: Source, look: Look, motion: MotionSpec, engine: AnimateDiffEngine, out_dir: str | Path, *,
                   frames: Sequence[int] | None = None, progress: bool = True, video: bool = True,
                   fps: str | None = None) -> AnimateResult:
    """Steps 3-5 for any source: segments -> PostStep (resumable) -> mp4."""
    from machinima.imageseq import read_image
    from machinima.poststep import PostStep, StepReport, stable_hash, write_video  # write_video: disclosed like the frames
    from machinima.sparse import describe, movie_frames, movie_note

    from .motion import source_step

    out_dir = Path(out_dir)
    chosen = list(frames if frames is not None else source.frames)
    if not chosen:
        raise SourceError("no frames selected")
    # 3. segments, and the key of each frame: everything in its segment shapes it
    sstep = source_step(source.frames)  # passes every Nth frame: the frames there are, N apart, make one video
    segs = plan_segments(look, chosen, sstep)
    names = sorted({n for c in look.controls for n in ([c.kind] if c.kind in ("depth", "pose", "normal") else
                                                        [f"mask/{c.options.get('mask', '')}"] if c.kind == "mask" else [])})
    seg_of: dict[int, Segment] = {}
    key_of: dict[int, dict[str, Any]] = {}
    for s in segs:
        k = {"segment": [s.frames[0], s.frames[-1]], "seed": s.seed, "strength": s.strength,
             "inputs": stable_hash([source.fingerprint(f, names) for f in s.frames]),
             "prompts": stable_hash([look.prompt_for(f) for f in s.frames])}
        for f in s.frames:
            seg_of[f], key_of[f] = s, k
    described = engine.describe()
    params = {"look": look.global_params(), "animatediff": motion.describe(), "engine": described}
    summary = [{"frames": [s.frames[0], s.frames[-1]], "shot": s.shot, "seed": s.seed, "strength": s.strength,
                "windows_per_step": round(motion.windows().windows_per_step(len(s.frames)), 2)} for s in segs]
    step = PostStep(out_dir, STEP_KIND, params, inputs={"source": source.describe(), "segments": summary, "look_name": look.name},
                    notes=["AnimateDiff video-to-video in sliding context windows blended at every denoising step; "
                           "a segment (shot) is made whole: Ctrl-C stops after the denoising step in hand and "
                           "the next run redoes that segment"])
    # 4. segment by segment: skip finished ones, make the rest whole, record each frame
    report = StepReport(step.step_id, out_dir)
    keys = {f: step.frame_key(f, key_of[f]) for f in chosen}
    t_start = time.perf_counter()
    try:
        with _StopFlag() as stop, _Bar(progress, f"animatediff {look.name}") as bar:
            for s in segs:
                todo = [f for f in s.frames if not step.is_done(f, keys[f])]
                report.skipped += [f for f in s.frames if f not in set(todo)]
                if not todo:
                    continue
                stop.check(report, len(chosen))
                bar.segment(s)
                t0 = time.perf_counter()

                def on_step(done: int, total: int, windows: int) -> None:
                    bar.step(done, total, windows)
                    stop.check(report, len(chosen))

                res = engine.video([source.image(f) for f in s.frames], control_images(look, source, s.frames),
                                   prompts=[look.prompt_for(f) for f in s.frames], seed=s.seed, strength=s.strength,
                                   on_step=on_step)
                dt = (time.perf_counter() - t0) / len(s.frames)
                for f, img in zip(s.frames, res):
                    if f in todo:
                        step.record(f, keys[f], {OUTPUT: img}, dt)
                        report.done.append(f)
    finally:
        report.seconds = time.perf_counter() - t_start
        step.write_params(frames_total=len(chosen), frames_done=len(step.frames_done()),
                          last_run={"done": len(report.done), "skipped": len(report.skipped), "seconds": round(report.seconds, 3)})
    # 5. the video, once every chosen frame is there
    vid = None
    if video:
        outs = step.outputs_of(OUTPUT)
        if outs and all(f in outs for f in chosen):
            vid = write_video(out_dir / f"{out_dir.name}.mp4", (read_image(outs[f]) for f in movie_frames(chosen, sstep)),
                              fps=fps or source.fps)  # each frame held until the next: the take's timing
    have = list(source.frames)
    note = (movie_note(have) if video and sstep > 1 else None) or describe(have)
    return AnimateResult(report, out_dir, vid, summary, note)


def animate_take(take: str | Path, look: Look, motion: MotionSpec, *, frames: tuple[int, int] | None = None,
                 step_id: str | None = None, input_folder: str | Path | None = None, engine: AnimateDiffEngine | None = None,
                 config: Any = None, progress: bool = True, video: bool = True) -> AnimateResult:
    """A take (its rgb pass, or a folder of plates) -> ``<take>/post/<step-id>/`` + mp4."""
    import re

    from machinima.take import Take

    from .sources import FolderSource, PassSource

    # 1. check inputs
    check_look(look, motion)
    t = Take.open(take)
    source: Source = FolderSource(input_folder, fps=t.manifest.fps) if input_folder else PassSource(t.passes_dir())
    chosen = [f for f in source.frames if frames is None or frames[0] <= f <= frames[1]]
    if not chosen:
        raise SourceError("no frames selected", hint=f"the source has frames {source.frames[0]}..{source.frames[-1]}")
    sid = step_id or "animatediff-" + (re.sub(r"[^A-Za-z0-9]+", "-", look.name).strip("-").lower() or "look")
    # 2. the engine
    engine = engine or AnimateDiffEngine.from_look(look, motion, config)
    return animate_source(source, look, motion, engine, t.post_dir(sid), frames=chosen, progress=progress, video=video,
                          fps=t.manifest.fps)


class _StopFlag(StopFlag):
    """Ctrl-C -> a flag checked after every denoising step (a second Ctrl-C stops at once)."""

    def check(self, report: Any, total: int) -> None:
        if self.stop:
            from machinima.poststep import Interrupted

            raise Interrupted(f"stopped: {len(report.done) + len(report.skipped)}/{total} frames done "
                              "(the segment in hand is redone on the next run)", hint="run the same command again to resume")



class _Bar:
    """One rich progress display: denoising steps of the segment in hand."""

    def __init__(self, enabled: bool, description: str) -> None:
        self._p = None
        self.description = description
        if enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._p = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                               TextColumn("{task.fields[info]}"), TimeElapsedColumn())
            self._task = self._p.add_task(description, total=None, info="")

    def __enter__(self) -> "_Bar":
        if self._p is not None:
            self._p.start()
        return self

    def segment(self, seg: Segment) -> None:
        if self._p is not None:
            self._p.update(self._task, description=f"{self.description} frames {seg.frames[0]}-{seg.frames[-1]}",
                           completed=0, total=None)

    def step(self, done: int, total: int, windows: int) -> None:
        if self._p is not None:
            self._p.update(self._task, completed=done, total=total, info=f"{windows} windows/step")

    def __exit__(self, *exc: object) -> None:
        if self._p is not None:
            self._p.stop()


# --- tiny random models (tests, benchmarks, smoke runs: they prove plumbing and speed, not looks) -----
def tiny_motion_components(n_controls: int = 0, *, seed: int = 0, max_frames: int = 32) -> dict[str, Any]:
    """The tiny UNet/VAE/ControlNets of ``stylize.tiny`` + a tiny random MotionAdapter -> UNetMotionModel."""
    import torch
    from diffusers import MotionAdapter, UNetMotionModel

    from .tiny import tiny_components

    comps = tiny_components(n_controls, seed=seed)
    torch.manual_seed(seed + 100)
    adapter = MotionAdapter(block_out_channels=(32, 64), motion_layers_per_block=1, motion_transformer_layers_per_block=1,
                            motion_mid_block_layers_per_block=1, motion_num_attention_heads=2, motion_norm_num_groups=8,
                            motion_max_seq_length=max_frames, use_motion_mid_block=False)
    with torch.no_grad():  # diffusers zero-inits the motion output projections: randomize so motion matters
        for name, p in adapter.named_parameters():
            if "proj_out" in name:
                p.normal_(0, 0.05)
    comps["unet"] = UNetMotionModel.from_unet2d(comps["unet"], adapter)
    comps["motion_adapter"] = adapter
    return comps


def tiny_engine(look: Look, motion: MotionSpec, comps: dict[str, Any] | None = None, **kw: Any) -> AnimateDiffEngine:
    from .engines import hash_embedder

    comps = comps or tiny_motion_components(len(look.controls))
    return AnimateDiffEngine.from_components(look, motion, unet=comps["unet"], motion_adapter=comps["motion_adapter"], vae=comps["vae"],
                                             controlnets=comps["controlnets"][: len(look.controls)],
                                             embed=hash_embedder(comps["cross_dim"]), **kw)

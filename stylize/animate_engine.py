"""The AnimateDiff video-to-video engine: loads base model, motion adapter, LoRAs and ControlNets
from local paths (one message says what to put where), then stylizes a whole frame sequence in
sliding context windows whose noise predictions are blended at every denoising step (see the
numbered steps of ``AnimateDiffEngine.video`` in ``stylize.animatediff``'s docstring)."""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .animate_look import MotionSpec
from .errors import ControlError, LookError, ModelMissingError, SourceError, StylizeError
from .look import Look
from .models import fingerprint, load_controlnets, load_loras, load_model, load_pipeline, need_model
from .torch_setup import device_and_dtype, load_dtype, place_pipeline, scheduler_class

ADAPTER_EXPECT = ("a diffusers MotionAdapter folder (config.json + diffusion_pytorch_model.safetensors, e.g. "
                  "animatediff-motion-adapter-v1-5-3), or an original mm_sd15_*.ckpt/.safetensors file with "
                  "adapter_config = a folder holding its config.json")


# --- small helpers ---------------------------------------------------------------------------------
def _scheduler(name: str, config: Any, beta_schedule: str):
    """The look's scheduler with AnimateDiff's training settings (linear betas, linspace spacing)."""
    extra: dict[str, Any] = {"beta_schedule": beta_schedule, "timestep_spacing": "linspace", "steps_offset": 1}
    if name == "ddim":
        extra["clip_sample"] = False
    return scheduler_class(name).from_config(config, **extra)


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
        self.device, self.dtype = device_and_dtype(rt)
        self.runtime = rt
        self._embed = embed
        self._cache: dict[str, Any] = {}
        pipe.set_progress_bar_config(disable=True)
        pipe.scheduler = _scheduler(look.model.scheduler, pipe.scheduler.config, motion.beta_schedule)
        place_pipeline(pipe, self.device, self.dtype, bool(rt.get("cpu_offload")))
        if rt.get("cpu_offload") and self.device.type == "cuda":
            self.device = torch.device("cuda")
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
        dtype = load_dtype(rt)
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


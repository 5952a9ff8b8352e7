"""``DiffusionEngine``: diffusers' (ControlNet) img2img / txt2img pipelines for SD 1.5 and SDXL,
every model loaded from local paths, the noise of each frame given from outside (the pipeline
carries it along the motion), cross-frame attention on request (``AnchorAttnProcessor``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .engine_base import Engine, resolve_runtime
from .errors import LookError, ModelMissingError, StylizeError
from .look import ControlSpec, Look
from .models import fingerprint, load_controlnets, load_loras, load_model, load_pipeline, need_model
from .torch_setup import device_and_dtype, load_dtype, place_pipeline, scheduler_class


def _pipeline_class(family: str, mode: str, n_controls: int):
    import diffusers as d

    table = {
        ("sd15", "img2img", True): d.StableDiffusionControlNetImg2ImgPipeline,
        ("sd15", "img2img", False): d.StableDiffusionImg2ImgPipeline,
        ("sd15", "txt2img", True): d.StableDiffusionControlNetPipeline,
        ("sd15", "txt2img", False): d.StableDiffusionPipeline,
        ("sdxl", "img2img", True): d.StableDiffusionXLControlNetImg2ImgPipeline,
        ("sdxl", "img2img", False): d.StableDiffusionXLImg2ImgPipeline,
        ("sdxl", "txt2img", True): d.StableDiffusionXLControlNetPipeline,
        ("sdxl", "txt2img", False): d.StableDiffusionXLPipeline,
    }
    return table[(family, mode, n_controls > 0)]



class AnchorAttnProcessor:
    """Cross-frame self-attention: each frame's self-attention also sees the tokens of the batch's
    first frame (the anchor keyframe of the shot), so textures and colours stick to it
    (Rerender-A-Video / Text2Video-Zero style; own tokens are kept, anchor tokens added).
    ``groups`` = 2 when classifier-free guidance stacks [negative, positive] halves."""

    def __init__(self, groups: int = 1) -> None:
        self.groups = groups

    def __call__(self, attn: Any, hidden_states: Any, encoder_hidden_states: Any = None, attention_mask: Any = None,
                 temb: Any = None, *args: Any, **kwargs: Any) -> Any:
        import torch
        import torch.nn.functional as TF

        if encoder_hidden_states is not None or hidden_states.ndim != 3:
            from diffusers.models.attention_processor import AttnProcessor2_0

            return AttnProcessor2_0()(attn, hidden_states, encoder_hidden_states, attention_mask, temb)
        residual = hidden_states
        b, n, _ = hidden_states.shape
        g = self.groups if b % self.groups == 0 else 1
        q, k, v = attn.to_q(hidden_states), attn.to_k(hidden_states), attn.to_v(hidden_states)

        def with_anchor(x):
            x = x.view(g, b // g, n, -1)
            return torch.cat([x, x[:, :1].expand(-1, b // g, -1, -1)], dim=2).reshape(b, 2 * n, -1)

        k, v = with_anchor(k), with_anchor(v)
        hd = q.shape[-1] // attn.heads
        q, k, v = (t.view(b, -1, attn.heads, hd).transpose(1, 2) for t in (q, k, v))
        out = TF.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, -1, attn.heads * hd).to(q.dtype)
        out = attn.to_out[1](attn.to_out[0](out))
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor



class DiffusionEngine(Engine):
    """Diffusers (ControlNet) img2img / txt2img over batches of frames, prompt embeddings cached."""

    name = "diffusion"

    def __init__(self, pipe: Any, look: Look, *, embed: Callable[[str], Any] | None = None,
                 models: dict[str, Any] | None = None, runtime: dict[str, Any] | None = None) -> None:
        self.pipe = pipe
        self.look = look
        self.controls: list[ControlSpec] = [c for c in look.controls]
        self.models = dict(models or {})
        rt = runtime or resolve_runtime(look.runtime)
        self.runtime = rt
        self.device, self.dtype = device_and_dtype(rt)
        self.batch = int(rt.get("batch", 1))
        self._embed = embed
        self._cache: dict[tuple[str, str], dict[str, Any]] = {}
        self.sdxl = look.model.family == "sdxl"
        self._ip_image = None
        self._configure(rt)

    # 1. configure the pipeline for the device and memory preset
    def _configure(self, rt: dict[str, Any]) -> None:
        import torch

        pipe = self.pipe
        pipe.set_progress_bar_config(disable=True)
        pipe.scheduler = scheduler_class(self.look.model.scheduler).from_config(pipe.scheduler.config)
        place_pipeline(pipe, self.device, self.dtype, bool(rt.get("cpu_offload")))
        if rt.get("channels_last"):
            pipe.unet.to(memory_format=torch.channels_last)
            if getattr(pipe, "controlnet", None) is not None:
                pipe.controlnet.to(memory_format=torch.channels_last)
            # not the VAE: in channels_last it encoded and decoded 2.0 / 1.5 ms a frame slower on an
            # H200 (bench/gpu.sh, docs/performance.md)
        if rt.get("vae_slicing") and hasattr(pipe.vae, "enable_slicing"):
            pipe.vae.enable_slicing()
        if rt.get("vae_tiling") and hasattr(pipe.vae, "enable_tiling"):
            pipe.vae.enable_tiling()
        # SDPA (torch.nn.functional.scaled_dot_product_attention) is diffusers' default processor on torch 2.
        self.cross_frame = bool(self.look.cadence.cross_frame)
        if self.cross_frame:
            from diffusers.models.attention_processor import AttnProcessor2_0

            groups = 2 if self.look.model.guidance > 1.0 else 1
            procs = pipe.unet.attn_processors
            pipe.unet.set_attn_processor({name: AnchorAttnProcessor(groups) if name.endswith("attn1.processor") else AttnProcessor2_0()
                                          for name in procs})
        if rt.get("compile"):
            pipe.unet = torch.compile(pipe.unet, fullgraph=False)
            if getattr(pipe, "controlnet", None) is not None:
                pipe.controlnet = torch.compile(pipe.controlnet, fullgraph=False)
            # the VAE's halves too: img2img encodes every frame and every call decodes its batch,
            # about a fifth of a 20 x 0.5 frame on a GPU. Compiled in place: the pipeline calls
            # vae.encode / vae.decode, which are not forward().
            for part in ("encoder", "decoder"):
                m = getattr(pipe.vae, part, None)
                if isinstance(m, torch.nn.Module):
                    m.compile(fullgraph=False)

    # --- construction ------------------------------------------------------------------------
    @classmethod
    def from_components(cls, look: Look, *, unet: Any, vae: Any, controlnets: Sequence[Any] = (), scheduler: Any = None,
                        text_encoder: Any = None, tokenizer: Any = None, embed: Callable[[str], Any] | None = None,
                        runtime: dict[str, Any] | None = None) -> "DiffusionEngine":
        """An engine from models built in code (tests, benchmarks). Without a text encoder, pass
        ``embed(text) -> (1, L, D) tensor``."""
        from diffusers import DDIMScheduler

        if len(controlnets) != len(look.controls):
            raise LookError(f"the look has {len(look.controls)} controls but {len(controlnets)} ControlNets were given")
        scheduler = scheduler or DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                                               clip_sample=False, set_alpha_to_one=False, steps_offset=1)
        pcls = _pipeline_class(look.model.family, look.model.mode, len(controlnets))
        kw: dict[str, Any] = dict(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler)
        if look.model.family == "sd15":
            kw.update(safety_checker=None, feature_extractor=None, requires_safety_checker=False)
        else:
            kw.update(text_encoder_2=None, tokenizer_2=None)
        if controlnets:
            kw["controlnet"] = list(controlnets) if len(controlnets) > 1 else controlnets[0]
        pipe = pcls(**kw)
        engine = cls(pipe, look, embed=embed, models={"base": "built in code"}, runtime=runtime)
        engine._load_loras(None)
        return engine

    @classmethod
    def from_look(cls, look: Look, config: Any = None) -> "DiffusionEngine":
        """Load every model the look names from local paths; a missing one -> ModelMissingError."""
        import torch  # noqa: F401

        from machinima.config import load_config

        cfg = config or load_config()
        m = look.model
        rt = resolve_runtime(look.runtime)
        dtype = load_dtype(rt)
        need = lambda rel, what, expect: need_model(cfg, rel, what, expect)  # noqa: E731
        models: dict[str, Any] = {}
        base = need(m.base, f"base model {m.base!r}", "a diffusers folder with model_index.json, or a .safetensors/.ckpt checkpoint")
        models["base"] = {"path": str(base), "fingerprint": fingerprint(base)}
        cns = load_controlnets(look, need, dtype, models)
        pcls = _pipeline_class(m.family, m.mode, len(cns))
        kw: dict[str, Any] = {"dtype": dtype, "local_files_only": True}
        if cns:
            kw["controlnet"] = cns if len(cns) > 1 else cns[0]
        if m.family == "sd15":
            kw.update(safety_checker=None, requires_safety_checker=False)
        if base.is_dir() and m.family == "sd15" and (base / "model_index.json").exists():
            index = json.loads((base / "model_index.json").read_text())
            if not (index.get("text_encoder") or [None])[0]:
                raise ModelMissingError(f"{base} has no text encoder",
                                        hint="use a full diffusers folder (text_encoder/ and tokenizer/) or a checkpoint that contains one")
        pipe = load_pipeline(pcls, base, m.config, need, kw)
        if m.vae:
            from diffusers import AutoencoderKL

            p = need(m.vae, f"VAE {m.vae!r}", "a diffusers AutoencoderKL folder or a .safetensors file")
            load = AutoencoderKL.from_single_file if p.is_file() else AutoencoderKL.from_pretrained
            pipe.vae = load_model(load, p, dtype=dtype, local_files_only=True)
            models["vae"] = {"path": str(p), "fingerprint": fingerprint(p)}
        if m.tiny_vae:
            from diffusers import AutoencoderTiny

            p = need(m.tiny_vae, f"tiny VAE {m.tiny_vae!r}", "an AutoencoderTiny folder (e.g. taesd)")
            pipe.vae = load_model(AutoencoderTiny.from_pretrained, p, dtype=dtype, local_files_only=True)
            models["tiny_vae"] = {"path": str(p), "fingerprint": fingerprint(p)}
        if getattr(pipe, "text_encoder", None) is None:
            raise ModelMissingError(f"{base} has no text encoder", hint="use a full diffusers folder (text_encoder/ and tokenizer/) or a checkpoint that contains one")
        engine = cls(pipe, look, models=models, runtime=rt)
        engine._load_loras(cfg, need)
        if m.ip_adapter:
            p = need(m.ip_adapter, f"IP-Adapter weights {m.ip_adapter!r}", "the IP-Adapter file, with its image_encoder/ folder beside it")
            if not (p.parent / "image_encoder").is_dir():
                raise ModelMissingError(f"IP-Adapter image encoder not found at {p.parent / 'image_encoder'}",
                                        hint="put the CLIP vision encoder folder there (config.json + weights)")
            pipe.load_ip_adapter(str(p.parent), subfolder="", weight_name=p.name, image_encoder_folder="image_encoder", local_files_only=True)
            pipe.set_ip_adapter_scale(m.ip_adapter_weight)
            from machinima.imageseq import read_image

            engine._ip_image = read_image(need(m.ip_adapter_image, "IP-Adapter style image", "a PNG/JPEG style reference"))
            models["ip_adapter"] = {"path": str(p), "fingerprint": fingerprint(p), "weight": m.ip_adapter_weight}
        return engine

    def _load_loras(self, cfg: Any, need: Callable[..., Path] | None = None) -> None:
        load_loras(self.pipe, [(f"lora{i}", "LoRA", x) for i, x in enumerate(self.look.model.loras)], need, self.models,
                   f"{self.look.model.family} model")

    def describe(self) -> dict[str, Any]:
        m = self.look.model
        return {"engine": "diffusion", "family": m.family, "mode": m.mode, "pipeline": type(self.pipe).__name__,
                "models": self.models, "device": str(self.device), "dtype": str(self.dtype).replace("torch.", ""),
                "batch": self.batch, "cross_frame": self.cross_frame}

    # 2. prompts -> embeddings, once per (prompt, negative)
    def embeddings(self, prompt: str, negative: str) -> dict[str, Any]:
        key = (prompt, negative)
        if key not in self._cache:
            if self._embed is not None:
                pe, ne = self._embed(prompt), self._embed(negative)
                if isinstance(pe, tuple):  # SDXL: (embeds, pooled)
                    out = {"prompt_embeds": pe[0], "negative_prompt_embeds": ne[0],
                           "pooled_prompt_embeds": pe[1], "negative_pooled_prompt_embeds": ne[1]}
                else:
                    out = {"prompt_embeds": pe, "negative_prompt_embeds": ne}
            elif self.sdxl:
                pe, ne, pp, npp = self.pipe.encode_prompt(prompt=prompt, device=self.device, num_images_per_prompt=1,
                                                          do_classifier_free_guidance=True, negative_prompt=negative)
                out = {"prompt_embeds": pe, "negative_prompt_embeds": ne, "pooled_prompt_embeds": pp, "negative_pooled_prompt_embeds": npp}
            else:
                pe, ne = self.pipe.encode_prompt(prompt, self.device, 1, True, negative_prompt=negative)
                out = {"prompt_embeds": pe, "negative_prompt_embeds": ne}
            self._cache[key] = {k: v.to(self.device, self.dtype) for k, v in out.items()}
        return self._cache[key]

    def _size_multiple(self) -> int:
        # the VAE's factor is enough: the UNet pads odd latent sizes when it upsamples
        return int(self.pipe.vae_scale_factor)

    def work_size(self, h0: int, w0: int) -> tuple[int, int]:
        """(height, width) frames of h0 x w0 are diffused at (the look's size, or a multiple of the VAE's factor)."""
        mult = self._size_multiple()
        W = self.look.runtime.width or max(mult, int(round(w0 / mult)) * mult)
        H = self.look.runtime.height or max(mult, int(round(h0 / mult)) * mult)
        return H, W

    def noise(self, seed: int, height: int, width: int) -> np.ndarray:
        """Standard normal latent noise (C x H/f x W/f) drawn from ``seed`` on the CPU (the same
        on every device), the noise img2img adds to the frame and txt2img starts from."""
        import torch

        H, W = self.work_size(height, width)
        f = self._size_multiple()
        c = int(self.pipe.unet.config.in_channels)
        g = torch.Generator("cpu").manual_seed(int(seed))
        return torch.randn((c, H // f, W // f), generator=g, dtype=torch.float32).numpy()

    # 3. frames -> stylized frames (groups of equal strength and guidance share one call)
    def stylize(self, images, controls, *, prompts, seeds, strengths, noises=None, guidances=None):
        out: list[np.ndarray | None] = [None] * len(images)
        guid = [self.look.model.guidance if g is None else float(g) for g in (guidances or [None] * len(images))]
        noises = list(noises) if noises is not None else [None] * len(images)
        groups: dict[tuple[float, float], list[int]] = {}
        for i, s in enumerate(strengths):
            groups.setdefault((float(s), guid[i]), []).append(i)
        for (strength, guidance), idx in groups.items():
            if self.look.model.mode == "img2img" and int(self.look.model.steps * strength) < 1:
                for i in idx:  # less than one denoising step: the frame as it is (diffusers would fail)
                    out[i] = np.ascontiguousarray(np.asarray(images[i])[..., :3])
                continue
            res = self._call([images[i] for i in idx], [controls[i] for i in idx], [prompts[i] for i in idx],
                             [seeds[i] for i in idx], strength, guidance, [noises[i] for i in idx])
            for i, r in zip(idx, res):
                out[i] = r
        return out  # type: ignore[return-value]

    def _call(self, images, controls, prompts, seeds, strength, guidance, noises) -> list[np.ndarray]:
        import torch

        m = self.look.model
        h0, w0 = np.asarray(images[0]).shape[:2]
        H, W = self.work_size(h0, w0)

        def tensor(batch: list[np.ndarray]):
            import cv2

            arr = np.stack([cv2.resize(np.ascontiguousarray(np.asarray(x)[..., :3]), (W, H), interpolation=cv2.INTER_AREA)
                            if x.shape[:2] != (H, W) else np.asarray(x)[..., :3] for x in batch])
            return (torch.from_numpy(arr).permute(0, 3, 1, 2).float() / 255.0).to(self.device, self.dtype)

        embeds = [self.embeddings(p, n) for p, n in prompts]
        kw: dict[str, Any] = {k: torch.cat([e[k] for e in embeds]) for k in embeds[0]}
        kw.update(num_inference_steps=m.steps, guidance_scale=guidance, output_type="np",
                  generator=[torch.Generator("cpu").manual_seed(int(s)) for s in seeds])
        ctl = [tensor([c[spec.kind] for c in controls]) for spec in self.controls]
        if self.controls:
            multi = len(self.controls) > 1
            kw["controlnet_conditioning_scale"] = [c.weight for c in self.controls] if multi else self.controls[0].weight
            kw["control_guidance_start"] = [c.start for c in self.controls] if multi else self.controls[0].start
            kw["control_guidance_end"] = [c.end for c in self.controls] if multi else self.controls[0].end
        noise = None
        if all(n is not None for n in noises):
            noise = torch.from_numpy(np.stack([np.asarray(n, np.float32) for n in noises])).to(self.device, self.dtype)
        if m.mode == "img2img":
            kw["image"] = tensor(list(images))
            kw["strength"] = strength
            if self.controls:
                kw["control_image"] = ctl if len(ctl) > 1 else ctl[0]
        else:
            kw.update(height=H, width=W)
            if noise is not None:
                kw["latents"] = noise  # the pipeline scales it by the scheduler's init_noise_sigma
            if self.controls:
                kw["image"] = ctl if len(ctl) > 1 else ctl[0]
        if self._ip_image is not None:
            kw["ip_adapter_image"] = [self._ip_image] * len(images)
        with torch.inference_mode(), _given_noise(self.pipe.scheduler, noise if m.mode == "img2img" else None):
            res = self.pipe(**kw).images
        out = []
        for r in res:
            img = (np.clip(r, 0, 1) * 255 + 0.5).astype(np.uint8)
            if img.shape[:2] != (h0, w0):
                import cv2

                img = cv2.resize(img, (w0, h0), interpolation=cv2.INTER_CUBIC)
            out.append(img)
        return out



class _given_noise:
    """img2img pipelines draw the noise they add to the encoded frame inside ``prepare_latents``
    and take none as an argument: for one call, the scheduler's ``add_noise`` adds ours instead
    (the pipeline itself runs unchanged)."""

    def __init__(self, scheduler: Any, noise: Any) -> None:
        self.scheduler, self.noise = scheduler, noise

    def __enter__(self) -> None:
        if self.noise is None:
            return
        orig = self.scheduler.add_noise

        def add_noise(original_samples: Any, noise: Any, timesteps: Any) -> Any:
            if tuple(noise.shape) != tuple(self.noise.shape):
                raise StylizeError(f"carried noise has shape {tuple(self.noise.shape)}, the pipeline's is {tuple(noise.shape)}")
            return orig(original_samples, self.noise.to(noise.device, noise.dtype), timesteps)

        self.scheduler.add_noise = add_noise

    def __exit__(self, *exc: object) -> None:
        if self.noise is not None:
            del self.scheduler.add_noise  # the class's method again


"""What a LoRA training run leaves behind: sample images with fixed seeds, the loss curve, and the
LoRA itself (kohya-layout ``.safetensors`` with metadata, the diffusers layout beside it).
A mixin of ``lora.train.Trainer`` (it uses the trainer's models and state)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import numpy as np

from .checkpoints import state_dict_to
from .kohya import kohya_metadata, peft_to_kohya


class TrainOutputs:
    """Step 7 of ``lora.train`` and the sample images along the way."""

    def sample_images(self) -> Path | None:
        """Images from the sample prompts with fixed seeds -> samples/step-NNNNNN.png."""
        import torch
        from diffusers import DDIMScheduler, StableDiffusionPipeline

        from machinima.imageseq import contact_sheet, write_image

        prompts = [p.replace("{trigger}", self.trigger) for p in (self.cfg.sample_prompts or ((self.trigger,) if self.trigger else ()))]
        if not prompts:
            return None
        b = self.base
        vae_dev = next(b.vae.parameters()).device
        b.vae.to(self.device)
        if b.text_encoder is not None:
            b.text_encoder.to(self.device)
        pipe = StableDiffusionPipeline(vae=b.vae, text_encoder=b.text_encoder, tokenizer=b.tokenizer, unet=b.unet,
                                       scheduler=DDIMScheduler.from_config(b.scheduler.config, steps_offset=1), safety_checker=None,
                                       feature_extractor=None, requires_safety_checker=False)
        pipe.set_progress_bar_config(disable=True)
        b.unet.eval()
        imgs, labels = [], []
        amp = torch.autocast(self.device.type, dtype=self.weight_dtype) if self.mp != "no" else contextlib.nullcontext()
        try:
            with torch.no_grad(), amp:
                for p in prompts:
                    for seed in self.cfg.sample_seeds:
                        kw: dict[str, Any] = {}
                        if self.embed is not None:
                            kw = {"prompt_embeds": self._encode([p]), "negative_prompt_embeds": self._encode([""])}
                        else:
                            kw = {"prompt": p}
                        out = pipe(num_inference_steps=self.cfg.sample_steps, guidance_scale=self.cfg.sample_guidance,
                                   height=self.cfg.resolution, width=self.cfg.resolution, output_type="np",
                                   generator=torch.Generator("cpu").manual_seed(int(seed)), **kw).images[0]
                        imgs.append((np.clip(out, 0, 1) * 255).astype(np.uint8))
                        labels.append(f"{seed}")
        finally:
            b.unet.train()
            b.vae.to(vae_dev)
        path = self.work / "samples" / f"step-{self.step:06d}.png"
        write_image(path, contact_sheet(imgs, columns=len(self.cfg.sample_seeds), width=max(256, 128 * len(self.cfg.sample_seeds)), labels=labels))
        return path

    def write_loss_curve(self) -> Path:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 3.2), dpi=100)
        x = np.arange(1, len(self.losses) + 1)
        ax.plot(x, self.losses, lw=0.8, alpha=0.5, label="loss")
        if len(self.losses) >= 5:
            k = max(2, len(self.losses) // 20)
            ma = np.convolve(self.losses, np.ones(k) / k, mode="valid")
            ax.plot(x[k - 1:], ma, lw=1.6, label=f"mean of {k}")
        ax.set_xlabel("step")
        ax.set_ylabel("MSE")
        ax.set_title(f"{self.out.name}: loss")
        ax.legend(loc="upper right")
        fig.tight_layout()
        path = self.work / "loss.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(".loss.tmp.png")
        fig.savefig(tmp)
        plt.close(fig)
        os.replace(tmp, path)
        return path

    def lora_state_dicts(self) -> tuple[dict[str, Any], dict[str, Any]]:
        from peft.utils import get_peft_model_state_dict

        unet_sd = get_peft_model_state_dict(self.base.unet)
        te_sd = ({k.replace(".default.", "."): v for k, v in self.base.text_encoder.state_dict().items() if ".lora_" in k}
                 if self.cfg.train_text_encoder else {})
        return unet_sd, te_sd

    def save_outputs(self) -> Path:
        from diffusers import StableDiffusionPipeline
        from diffusers.utils import convert_state_dict_to_diffusers
        from safetensors.torch import save_file

        unet_sd, te_sd = self.lora_state_dicts()
        prec = self.cfg.save_precision
        kohya = peft_to_kohya(state_dict_to(unet_sd, prec), alpha=self.alpha, part="unet")
        if te_sd:
            kohya.update(peft_to_kohya(state_dict_to(te_sd, prec), alpha=self.alpha, part="text_encoder"))
        meta = kohya_metadata(rank=self.cfg.rank, alpha=self.alpha, steps=self.step, trigger=self.trigger, base_hash=self.base.hash,
                              dataset_hash=self.dataset_hash, resolution=self.cfg.resolution, name=self.out.stem,
                              extra={"rights": self.clearance.to_provenance(), "config": self.cfg.to_doc()})
        self.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.out.with_name(f".{self.out.name}.tmp")
        save_file(kohya, str(tmp), metadata=meta)
        os.replace(tmp, self.out)
        ddir = self.out.with_name(self.out.stem + ".diffusers")
        adapter_meta = {"r": self.cfg.rank, "lora_alpha": self.alpha, "target_modules": list(self.cfg.targets)}
        StableDiffusionPipeline.save_lora_weights(
            str(ddir), unet_lora_layers=convert_state_dict_to_diffusers(state_dict_to(unet_sd, prec)),
            text_encoder_lora_layers=convert_state_dict_to_diffusers(state_dict_to(te_sd, prec)) if te_sd else None,
            unet_lora_adapter_metadata=adapter_meta, safe_serialization=True)
        return self.out

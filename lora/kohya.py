"""LoRA key layouts: peft/diffusers <-> kohya (what sd-scripts writes and A1111 / ComfyUI read).

peft (diffusers' in-memory layout)::

    down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q.lora_A.weight   (r, in)
    down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q.lora_B.weight   (out, r)

kohya (one module name with dots turned into underscores, ``lora_unet_`` / ``lora_te_`` prefix)::

    lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_q.lora_down.weight
    lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_q.lora_up.weight
    lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_q.alpha      (scalar)

Both scale the update by ``alpha / rank``. diffusers reads the kohya layout back with
``diffusers.loaders.lora_conversion_utils._convert_non_diffusers_lora_to_diffusers``.
"""

from __future__ import annotations

from typing import Any

PREFIX = {"unet": "lora_unet_", "text_encoder": "lora_te_"}


def peft_to_kohya(state: dict[str, Any], *, alpha: float, part: str = "unet") -> dict[str, Any]:
    """One model's peft LoRA state dict (``...lora_A.weight``) -> kohya keys (with ``.alpha``)."""
    import torch

    out: dict[str, Any] = {}
    for key, value in state.items():
        if ".lora_A." in key:
            module, kind = key.split(".lora_A.")[0], "lora_down"
        elif ".lora_B." in key:
            module, kind = key.split(".lora_B.")[0], "lora_up"
        else:
            raise ValueError(f"not a peft LoRA key: {key}")
        if part == "text_encoder" and not module.startswith("text_model."):
            module = "text_model." + module  # transformers 5 flattens CLIPTextModel; kohya names keep text_model
        name = PREFIX[part] + module.replace(".", "_")
        out[f"{name}.{kind}.weight"] = value.detach().contiguous()
        out[f"{name}.alpha"] = torch.tensor(float(alpha))
    return out


def kohya_metadata(*, rank: int, alpha: float, steps: int, trigger: str, base_hash: str, dataset_hash: str,
                   resolution: int, name: str, extra: dict[str, Any] | None = None) -> dict[str, str]:
    """Metadata strings: kohya's ``ss_*`` keys (read by A1111's and ComfyUI's LoRA browsers), the
    modelspec keys, and ours (``machinima.*``)."""
    import json

    meta = {
        "ss_network_module": "networks.lora",
        "ss_network_dim": str(rank),
        "ss_network_alpha": str(alpha),
        "ss_steps": str(steps),
        "ss_max_train_steps": str(steps),
        "ss_base_model_version": "sd_v1",
        "ss_resolution": f"({resolution}, {resolution})",
        "ss_output_name": name,
        "ss_tag_frequency": json.dumps({name: {trigger: 1}} if trigger else {}),
        "sshs_model_hash": base_hash,
        "modelspec.architecture": "stable-diffusion-v1/lora",
        "modelspec.implementation": "https://github.com/huggingface/diffusers",
        "modelspec.title": name,
        "modelspec.trigger_phrase": trigger,
        "machinima.schema": "machinima.lora",
        "machinima.version": "1",
        "machinima.base_hash": base_hash,
        "machinima.dataset_hash": dataset_hash,
        "machinima.rank": str(rank),
        "machinima.alpha": str(alpha),
        "machinima.steps": str(steps),
        "machinima.trigger": trigger,
    }
    for k, v in (extra or {}).items():
        meta[f"machinima.{k}"] = v if isinstance(v, str) else json.dumps(v)
    return meta

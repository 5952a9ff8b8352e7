"""Memory presets for ``machinima lora train --preset``: what each turns on and what it costs.

Figures are for SD 1.5 at 512 px, rank 16 on the UNet's attention projections (see docs/lora.md).

=======  =====================================================================================
cpu      fp32 everywhere, batch 1, latents and prompt embeddings cached once. Slow (minutes a
         step at 512 px); for tests, smoke runs and tiny models.
8gb      fp16 frozen UNet/VAE/text encoder (LoRA weights stay fp32), gradient checkpointing
         (about 40% slower steps, about 35% less activation memory), batch 1, VAE and text
         encoder used once for the caches and then moved to the CPU.
12gb     fp16, gradient checkpointing, batch 2, caches as above.
24gb     fp16, no gradient checkpointing (fastest), batch 4, caches as above.
=======  =====================================================================================

No preset sets ``channels_last`` (TrainConfig): on an H200 it made 24gb steps slower (6.07
against 6.67 it/s, bench/gpu.sh, docs/performance.md). It stays an option for other GPUs.

Explicit flags (``--batch``, ``--grad-checkpointing/--no-grad-checkpointing``, ``--precision``)
win over the preset.
"""

from __future__ import annotations

from typing import Any

PRESETS: dict[str, dict[str, Any]] = {
    "cpu": {"device": "cpu", "mixed_precision": "no", "gradient_checkpointing": False, "batch_size": 1,
            "cache_latents": True, "offload_frozen": False},
    "8gb": {"device": "cuda", "mixed_precision": "fp16", "gradient_checkpointing": True, "batch_size": 1,
            "cache_latents": True, "offload_frozen": True},
    "12gb": {"device": "cuda", "mixed_precision": "fp16", "gradient_checkpointing": True, "batch_size": 2,
             "cache_latents": True, "offload_frozen": True},
    "24gb": {"device": "cuda", "mixed_precision": "fp16", "gradient_checkpointing": False, "batch_size": 4,
             "cache_latents": True, "offload_frozen": True},
}

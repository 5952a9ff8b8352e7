"""What an engine is (``Engine``: the interface the stylize pipeline calls) and the runtime
memory presets every engine resolves a look's ``[runtime]`` table against. Apart from the
engines themselves so that each engine module imports this, never the other engines."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .look import ControlSpec, RuntimeSpec

# Memory presets: what each sets when the look leaves it unset. See docs/stylize.md.
PRESETS: dict[str, dict[str, Any]] = {
    "cpu": dict(dtype="fp32", batch=1, channels_last=False, vae_slicing=False, vae_tiling=False, cpu_offload=False),
    "8gb": dict(dtype="fp16", batch=1, channels_last=True, vae_slicing=True, vae_tiling=True, cpu_offload=True),
    "12gb": dict(dtype="fp16", batch=2, channels_last=True, vae_slicing=True, vae_tiling=False, cpu_offload=False),
    "24gb": dict(dtype="fp16", batch=8, channels_last=True, vae_slicing=False, vae_tiling=False, cpu_offload=False),
}


def resolve_runtime(rt: RuntimeSpec) -> dict[str, Any]:
    """The look's runtime options with the memory preset filling what it leaves unset."""
    out = dict(PRESETS[rt.memory])
    for k in ("batch", "channels_last", "vae_slicing", "vae_tiling", "cpu_offload"):
        v = getattr(rt, k)
        if v is not None:
            out[k] = v
    if rt.dtype != "auto":
        out["dtype"] = rt.dtype
    out["compile"] = rt.compile
    out["device"] = rt.device
    return out


class Engine:
    """What the stylize pipeline needs from an engine."""

    name = "engine"
    batch = 1
    controls: list[ControlSpec] = []  # the ControlNets it is conditioned on (dreams make these controls)

    def describe(self) -> dict[str, Any]:
        raise NotImplementedError

    def noise(self, seed: int, height: int, width: int) -> np.ndarray | None:
        """The noise a frame of this size starts from with this seed (None: the engine uses none)."""
        return None

    def stylize(self, images: Sequence[np.ndarray], controls: Sequence[dict[str, np.ndarray]], *,
                prompts: Sequence[tuple[str, str]], seeds: Sequence[int], strengths: Sequence[float],
                noises: Sequence[np.ndarray | None] | None = None, guidances: Sequence[float | None] | None = None) -> list[np.ndarray]:
        raise NotImplementedError

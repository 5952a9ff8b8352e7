"""What both diffusion engines (still frames: ``engines.DiffusionEngine``; whole takes:
``animate_engine.AnimateDiffEngine``) derive from a look's runtime settings: the device, the
dtype to load and run in, the scheduler class a look names. One copy, so the two engines cannot
drift apart (fp16 asked for on a CPU falls back to fp32 in both)."""

from __future__ import annotations

from typing import Any


def torch_dtype(name: str) -> Any:
    """``fp32`` / ``fp16`` / ``bf16`` -> the torch dtype."""
    import torch

    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[name]


def on_cuda(rt: dict[str, Any]) -> bool:
    """Whether the runtime settings ``rt`` will run on a CUDA device."""
    import torch

    return str(rt.get("device", "auto")) in ("auto", "cuda") and torch.cuda.is_available() or str(rt.get("device", "")).startswith("cuda")


def load_dtype(rt: dict[str, Any]) -> Any:
    """The dtype to load weights in: fp16 only where CUDA will run them."""
    return torch_dtype("fp32" if rt["dtype"] == "fp16" and not on_cuda(rt) else rt["dtype"])


def device_and_dtype(rt: dict[str, Any]) -> tuple[Any, Any]:
    """(torch device, torch dtype) an engine runs in: ``auto`` picks CUDA when there is one; fp16
    on a CPU runs as fp32 (its fp16 kernels are missing or slow; bf16 works where asked explicitly)."""
    import torch

    dev = rt.get("device", "auto")
    if dev == "auto":
        dev = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(dev)
    dt = rt.get("dtype", "fp32")
    if device.type == "cpu" and dt == "fp16":
        dt = "fp32"
    return device, torch_dtype(dt)


def place_pipeline(pipe: Any, device: Any, dtype: Any, cpu_offload: bool) -> None:
    """Put a diffusers pipeline on ``device`` in ``dtype``; with ``cpu_offload`` on a CUDA device
    the models stay in CPU memory and diffusers moves each onto the GPU while it runs."""
    import torch

    if cpu_offload and device.type == "cuda":
        pipe.to(dtype=dtype)
        pipe.enable_model_cpu_offload()
    else:
        pipe.to(device)
        if dtype != torch.float32:
            pipe.to(dtype=dtype)


def scheduler_class(name: str) -> Any:
    """The diffusers scheduler class a look's ``model.scheduler`` names (``look.SCHEDULERS``)."""
    import diffusers as d

    return {"ddim": d.DDIMScheduler, "euler": d.EulerDiscreteScheduler, "euler_a": d.EulerAncestralDiscreteScheduler,
            "dpm": d.DPMSolverMultistepScheduler, "unipc": d.UniPCMultistepScheduler, "lcm": d.LCMScheduler,
            "pndm": d.PNDMScheduler}[name]

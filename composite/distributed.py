"""``machinima composite TAKE ... --ray ADDRESS``: the composite's frames as chunks on Ray.

A task is sent the take's path and the settings; each worker prepares the composite once
(reads the reference frame, tracks the feet over the plate, measures colour and grain, loads a
depth or segmentation model) and keeps it for every chunk it runs (``machinima.distributed``'s
cached loader). Preparing is deterministic, so every worker reaches the same params hash as the
driver: the same resume keys, the same pixels, the same provenance as a local run.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from machinima.distributed import FrameJob, StepSpec, Worklet

from .pipeline import CompositePipeline, CompositeSettings


@dataclass
class CompositeJob(FrameJob):
    step: StepSpec
    take: str
    settings: CompositeSettings
    threads: int = 1  # frames side by side inside one task; Ray runs tasks side by side
    batch_size: int = 2

    def load(self) -> Worklet:
        p = CompositePipeline(Path(self.take), replace(self.settings, workers=self.threads)).prepare(progress=False)
        if p.params != self.step.params:
            raise RuntimeError(f"composite prepared on this node differs from the driver's (params hash of {self.step.out_dir}):"
                               " the take or the plate differs here")
        return Worklet(p.process, p.frame_inputs, p.close)

    def resources(self) -> dict[str, float]:
        gpu = self.settings.device.startswith("cuda") and (self.settings.depth_model is not None or self.settings.seg_model is not None)
        return {"num_cpus": float(self.threads), **({"num_gpus": 0.5} if gpu else {})}

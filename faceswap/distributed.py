"""``machinima faceswap merge TARGET --model M --ray ADDRESS``: the swap as chunks on Ray.

The driver tracks the faces, smooths the tracks, checks the rights and writes
``landmarks_used.npz`` into the step folder; a task is sent only paths (the source, the model
folder, that file) and the merge options. Each worker loads the network once (the cached
loader of ``machinima.distributed``) and pastes the faces of its chunk with the same
``Compositor`` a local merge uses: same landmarks, same keys, same pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from machinima.distributed import FrameJob, StepSpec, Worklet

from .compositor import Compositor, make_swapper, swap_functions
from .merge_options import MergeOptions


def read_landmarks(path: str | Path) -> dict[int, dict[int, np.ndarray]]:
    """``landmarks_used.npz`` back into frame -> track -> landmarks (as the driver smoothed them)."""
    out: dict[int, dict[int, np.ndarray]] = {}
    with np.load(path, allow_pickle=False) as z:
        for name in z.files:
            f, t = name.split("_")
            out.setdefault(int(f), {})[int(t)] = z[name]
    return out


@dataclass
class MergeJob(FrameJob):
    step: StepSpec
    source: str
    model_dir: str | None
    opts: MergeOptions
    landmarks: str
    res: int | None
    face_type: str | None
    batch_size: int = 8
    on_error: str = "skip"  # an unreadable frame is reported, the night's batch goes on

    def load(self) -> Worklet:
        from .sources import open_source

        source = open_source(self.source)
        swapper, res, face_type, _ = make_swapper(self.model_dir, self.opts.engine, self.opts.device)
        res, face_type = res or self.res or self.opts.res, face_type or self.face_type or self.opts.face_type
        comp = Compositor(swapper, res, face_type, self.opts)
        process, frame_inputs = swap_functions(source, comp, read_landmarks(self.landmarks))
        return Worklet(process, frame_inputs)

    def resources(self) -> dict[str, float]:
        gpu = self.opts.engine != "none" and str(self.opts.device).startswith("cuda")
        return {"num_cpus": 1, **({"num_gpus": 1} if gpu else {})}

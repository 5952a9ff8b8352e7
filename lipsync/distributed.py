"""``machinima lipsync video TAKE --plate P --ray ADDRESS``: the re-sync's frames as chunks on Ray.

The driver reads the dialogue, works out the mouth shape of every frame and checks the rights;
a task is sent the plate's path, the shapes (one letter a frame) and the settings. Each worker
opens the plate, the face mesh and (with ``--weights``) the Wav2Lip network and the dialogue's
mel spectrogram once, and keeps them for every chunk it runs. Frames without a face come back
to the driver (``Worklet.extra``), which lists them in params.json as a local run does.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from machinima.distributed import FrameJob, StepSpec, Worklet


@dataclass
class LipSyncJob(FrameJob):
    step: StepSpec
    plate: str
    plate_fps: str | None
    take_fps: str
    shapes: list[str]
    strength: float
    allow_no_face: bool
    weights: str | None
    audio: str
    batch_size: int = 1

    def load(self) -> Worklet:
        from .audio import load_audio
        from .video import Resyncer, open_plate

        plate = open_plate(Path(self.plate), self.plate_fps, Fraction(self.take_fps))
        r = Resyncer(plate, self.shapes, self.strength, self.allow_no_face, self.plate, self.weights,
                     load_audio(Path(self.audio)).samples if self.weights else None)

        def extra() -> dict:
            found = list(r.no_face)
            r.no_face.clear()
            return {"no_face": found} if found else {}

        return Worklet(r.process, None, r.mesh.close, extra)

    def resources(self) -> dict[str, float]:
        return {"num_cpus": 1}

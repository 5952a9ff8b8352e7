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

import numpy as np

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
        from .errors import LipSyncError
        from .mouthwarp import FaceMesh, MouthWarp
        from .video import _wav2lip_frame, open_plate

        plate = open_plate(Path(self.plate), self.plate_fps, Fraction(self.take_fps))
        position = {num: i for i, num in enumerate(plate.numbers)}
        mesh = FaceMesh(video=False)
        warp = MouthWarp()
        model = mel = None
        device = "cpu"
        if self.weights:
            from .wav2lip import best_device, load_generator, melspectrogram

            device = best_device()
            model = load_generator(self.weights, device)
            mel = melspectrogram(load_audio(Path(self.audio)).samples)
        no_face: list[int] = []

        def process(batch: list[int]) -> list[dict[str, np.ndarray]]:
            out = []
            for num in batch:
                pos = position[num]
                img = plate.read(pos)
                lm = mesh.landmarks(img)
                if lm is None:
                    if not self.allow_no_face:
                        raise LipSyncError(f"no face found on frame {num} of {self.plate} (lip sync asked for one there)",
                                           hint="frames done so far are kept; --allow-no-face passes such frames through")
                    no_face.append(num)
                    out.append({"frames": img})
                elif model is not None:
                    out.append({"frames": _wav2lip_frame(model, img, lm, mel, pos, float(plate.fps), device)})
                else:
                    out.append({"frames": warp.apply(img, lm, self.shapes[pos], self.strength)[0]})
            return out

        def extra() -> dict:
            found = list(no_face)
            no_face.clear()
            return {"no_face": found} if found else {}

        return Worklet(process, None, mesh.close, extra)

    def resources(self) -> dict[str, float]:
        return {"num_cpus": 1}

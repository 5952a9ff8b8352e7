"""The settings of a merge (``MergeOptions``, checked in one place so the CLI, the post plan and
Ray workers refuse the same bad values) and what a merge reports back (``MergeReport``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .color import MODES as COLOR_MODES
from .errors import FaceswapError
from .smoothing import LIVE_BETA, LIVE_D_CUTOFF, LIVE_MIN_CUTOFF
from .smoothing import METHODS as SMOOTH_METHODS

BLENDS = ("seamless", "alpha")
ENGINES = ("torch", "onnx", "none")


@dataclass
class MergeOptions:
    color: str = "rct"
    smooth: str = "zero-lag"
    min_cutoff: float = LIVE_MIN_CUTOFF  # One-Euro: smoothing when still (Hz)
    beta: float = LIVE_BETA  # One-Euro: extra cutoff (Hz) per pixel/second of face speed
    d_cutoff: float = LIVE_D_CUTOFF  # One-Euro: low-pass of the speed estimate (Hz)
    window: int = 9  # zero-lag / Savitzky-Golay window (frames)
    blend: str = "seamless"
    erode: int = 0  # mask erode (+) / dilate (-) in face pixels
    blur: int = 8  # mask feather in face pixels
    sharpen: float = 0.0  # unsharp-mask amount on the new face
    grain: float = 0.0  # 1.0 = match the target's grain
    engine: str = "torch"
    device: str = "auto"
    batch: int = 8
    workers: int = 2  # threads compositing the frames of a batch
    backend: str = "mediapipe"
    redetect_every: int = 30
    max_gap: int = 12
    tracks: list[int] | None = None  # track ids to swap (None: every face)
    occlusion_model: str | None = None  # ONNX segmenter (train-mask output): cuts hands, mics, hair out of the mask
    res: int = 128  # only for engine "none" without a model
    face_type: str = "whole"  # idem

    def check(self) -> "MergeOptions":
        def one_of(name: str, value: str, allowed: tuple[str, ...]) -> None:
            if value not in allowed:
                raise FaceswapError(f"--{name} {value!r} is not one of {', '.join(allowed)}")

        one_of("color", self.color, COLOR_MODES)
        one_of("smooth", self.smooth, SMOOTH_METHODS)
        one_of("blend", self.blend, BLENDS)
        one_of("engine", self.engine, ENGINES)
        if self.batch < 1:
            raise FaceswapError("--batch must be at least 1")
        if self.occlusion_model and not Path(self.occlusion_model).exists():
            raise FaceswapError(f"occlusion model not found at {self.occlusion_model}",
                                hint="train one with `machinima faceswap train-mask` or give your segmenter's .onnx path")
        return self


@dataclass
class MergeReport:
    out_dir: Path
    frames: int = 0
    done: int = 0
    skipped: int = 0
    no_face: list[int] = field(default_factory=list)
    unreadable: dict[int, str] = field(default_factory=dict)
    failed: dict[int, str] = field(default_factory=dict)
    video: Path | None = None
    jitter_raw: float = 0.0
    jitter_used: float = 0.0
    detections: int = 0
    seconds_track: float = 0.0
    seconds_swap: float = 0.0
    rights: dict[str, Any] | None = None
    smooth: str = "zero-lag"
    workers: list[dict[str, Any]] = field(default_factory=list)  # with --ray: where the time went, per worker

    def jitter_message(self) -> str:
        """The landmark noise before and after smoothing, saying so when smoothing raised it."""
        raw, used = self.jitter_raw, self.jitter_used
        if used > raw * 1.05 + 1e-3:
            return (f"landmark jitter {raw:.3f} px -> {used:.3f} px: {self.smooth} smoothing made it WORSE "
                    "(try --smooth zero-lag, or --smooth none)")
        return f"landmark jitter {raw:.3f} px -> {used:.3f} px after {self.smooth} smoothing"

    def messages(self) -> list[str]:
        out = []
        if self.no_face:
            out.append(f"no face in {len(self.no_face)} frame(s) (written unchanged): {self.no_face[:10]}{'...' if len(self.no_face) > 10 else ''}")
        for f, m in list(self.unreadable.items())[:10]:
            out.append(f"frame {f} skipped: {m}")
        for f, m in list(self.failed.items())[:10]:
            out.append(f"frame {f} failed: {m}")
        return out


"""Audio in: any file PyAV opens (WAV, FLAC, MP3, the audio track of a video), any rate and
channel count, as mono float32 at the analysis rate (16 kHz, what the acoustic model expects).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import AudioError

ANALYSIS_RATE = 16_000


@dataclass
class Audio:
    samples: np.ndarray  # float32 mono in [-1, 1]
    rate: int
    source: str = ""
    original_rate: int = 0
    original_channels: int = 0
    clipped_fraction: float = 0.0

    @property
    def seconds(self) -> float:
        return self.samples.shape[0] / self.rate

    @property
    def peak(self) -> float:
        return float(np.abs(self.samples).max()) if self.samples.size else 0.0

    def is_silent(self, threshold: float = 1e-3) -> bool:
        return self.peak < threshold

    def pcm16(self) -> bytes:
        return (np.clip(self.samples, -1, 1) * 32767).astype("<i2").tobytes()


def load_audio(path: str | Path, rate: int = ANALYSIS_RATE) -> Audio:
    """Decode, downmix and resample; clear errors for anything that is not usable audio."""
    import av

    path = Path(path)
    if not path.exists():
        raise AudioError(f"no audio file at {path}")
    if path.stat().st_size == 0:
        raise AudioError(f"{path} is empty")
    chunks: list[np.ndarray] = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise AudioError(f"{path} has no audio track", hint="give the dialogue as a separate file with --audio")
            stream = container.streams.audio[0]
            orig_rate, orig_channels = stream.rate or 0, stream.channels or 0
            resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
    except AudioError:
        raise
    except (av.error.FFmpegError, ValueError, EOFError) as exc:
        raise AudioError(f"{path} is not readable audio ({exc})", hint="is the file truncated or not audio at all?") from None
    samples = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    if samples.size == 0:
        raise AudioError(f"{path} holds no audio samples (truncated or empty)")
    if not np.isfinite(samples).all():
        raise AudioError(f"{path} decodes to invalid samples (NaN/inf)")
    clipped = float(np.mean(np.abs(samples) >= 0.999))
    return Audio(samples, rate, str(path), orig_rate, orig_channels, clipped)


def from_array(samples: np.ndarray, rate: int, target: int = ANALYSIS_RATE) -> Audio:
    """Mono float audio from an array (live input), resampled to ``target`` by interpolation."""
    x = np.asarray(samples, np.float32)
    if x.ndim == 2:
        x = x.mean(axis=1)
    if rate != target and x.size:
        n = int(round(x.size * target / rate))
        x = np.interp(np.linspace(0, x.size - 1, n), np.arange(x.size), x).astype(np.float32)
    return Audio(x, target, "array", rate, 1)

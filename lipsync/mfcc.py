"""MFCC-template vowel recognition, calibrated per speaker (uLipSync's approach): a few seconds
of a performer saying each vowel give one template each; each audio frame is matched to the
nearest template (cosine similarity) and gated by loudness. No language model involved, so it
runs live with a few ms of latency and works for any language.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .audio import ANALYSIS_RATE
from .errors import LipSyncError
from .visemes import VRM_CHANNELS

FRAME = 400  # 25 ms at 16 kHz
HOP = 160  # 10 ms
N_MELS = 26
N_MFCC = 13


def _mel(f):
    return 2595.0 * np.log10(1.0 + f / 700.0)


def _mel_inv(m):
    return 700.0 * (10 ** (m / 2595.0) - 1.0)


def _filterbank(rate: int = ANALYSIS_RATE, n_fft: int = 512, n_mels: int = N_MELS) -> np.ndarray:
    pts = _mel_inv(np.linspace(_mel(80.0), _mel(rate / 2 - 200), n_mels + 2))
    bins = np.floor((n_fft + 1) * pts / rate).astype(int)
    fb = np.zeros((n_mels, n_fft // 2 + 1), np.float32)
    for m in range(1, n_mels + 1):
        a, b, c = bins[m - 1], bins[m], bins[m + 1]
        if b > a:
            fb[m - 1, a:b] = (np.arange(a, b) - a) / (b - a)
        if c > b:
            fb[m - 1, b:c] = (c - np.arange(b, c)) / (c - b)
    return fb


_FB = _filterbank()
_DCT = np.cos(np.pi / N_MELS * (np.arange(N_MELS) + 0.5)[None, :] * np.arange(N_MFCC)[:, None]).astype(np.float32)
_WIN = np.hamming(FRAME).astype(np.float32)


def frames_of(samples: np.ndarray) -> np.ndarray:
    x = np.asarray(samples, np.float32)
    if x.size < FRAME:
        x = np.pad(x, (0, FRAME - x.size))
    n = 1 + (x.size - FRAME) // HOP
    idx = np.arange(FRAME)[None, :] + HOP * np.arange(n)[:, None]
    return x[idx]


def mfcc(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(MFCC (n, 13) without c0, RMS loudness (n,)) for 10 ms hops of 16 kHz audio."""
    fr = frames_of(samples)
    rms = np.sqrt(np.mean(fr**2, axis=1))
    pre = np.concatenate([fr[:, :1], fr[:, 1:] - 0.97 * fr[:, :-1]], axis=1) * _WIN
    spec = np.abs(np.fft.rfft(pre, 512)) ** 2
    mel = np.log(spec @ _FB.T + 1e-10)
    return (mel @ _DCT.T)[:, 1:], rms


@dataclass
class VowelTemplates:
    """One mean MFCC vector per VRM vowel, plus the speaker's loudness range."""

    templates: dict[str, np.ndarray] = field(default_factory=dict)
    silence_rms: float = 0.01
    speech_rms: float = 0.1

    @classmethod
    def calibrate(cls, recordings: dict[str, np.ndarray]) -> "VowelTemplates":
        """``recordings``: vowel ('A','I','U','E','O') -> 16 kHz samples of the speaker saying it."""
        unknown = set(recordings) - set(VRM_CHANNELS)
        if unknown:
            raise LipSyncError(f"calibration vowels must be among {VRM_CHANNELS}, got {sorted(unknown)}")
        if len(recordings) < 2:
            raise LipSyncError("calibration needs at least two vowels")
        temps, loud = {}, []
        for v, x in recordings.items():
            m, rms = mfcc(x)
            voiced = rms > max(1e-4, 0.3 * rms.max())
            if voiced.sum() < 5:
                raise LipSyncError(f"the calibration recording for {v!r} holds no voiced sound")
            temps[v] = m[voiced].mean(axis=0)
            loud.append(np.median(rms[voiced]))
        return cls(temps, silence_rms=float(min(loud)) * 0.15, speech_rms=float(np.median(loud)))

    def weights(self, samples: np.ndarray) -> np.ndarray:
        """(n_hops, 5) VRM weights: nearest template, scaled by loudness between silence and speech."""
        m, rms = mfcc(samples)
        names = list(self.templates)
        t = np.stack([self.templates[n] for n in names])
        sim = (m / (np.linalg.norm(m, axis=1, keepdims=True) + 1e-9)) @ (t / np.linalg.norm(t, axis=1, keepdims=True)).T
        best = np.argmax(sim, axis=1)
        gain = np.clip((rms - self.silence_rms) / max(self.speech_rms - self.silence_rms, 1e-6), 0, 1)
        out = np.zeros((m.shape[0], len(VRM_CHANNELS)), np.float32)
        for i, n in enumerate(names):
            out[best == i, VRM_CHANNELS.index(n)] = gain[best == i]
        return out


def loudness_openness(samples: np.ndarray) -> np.ndarray:
    """The naive baseline: mouth opening from loudness alone (per 10 ms hop, 0..1)."""
    _, rms = mfcc(samples)
    return np.clip(rms / (np.percentile(rms, 95) + 1e-9), 0, 1)

"""F/V by its sound: a weak, flat (diffuse) frication noise, which the phone loop under-hears.

Why: PocketSphinx's acoustic model shows F/V on 15 % of its frames of continuous speech (the
truth lines of ``bench/lipsync.py``), so nearly every change to the F/V mouth (lower lip to
teeth, the shape viewers check after M/B/P) is missed. The labiodental fricatives are the
weakest and flattest fricatives (acoustic phonetics: /s/ has its energy at 4-8 kHz, /ʃ/ at
2.5-4 kHz, /f v/ spread evenly and quietly), so a few spectral measures per 10 ms frame tell
them apart from the other sounds well enough to overrule the model where it says "other
consonant" or "closed" (or any class) for a run of frames.

The measures (per frame, the phone loop's 25.6 ms windows): level against the line's 95th
percentile, the energy shares above 4 kHz, 1-4 kHz and below 1 kHz, spectral flatness above
1 kHz and the zero-crossing rate; each beside its +-2-frame mean and its change over 4
frames. F/V against the rest is a log-likelihood ratio of two diagonal Gaussians whose means
and spreads ``bench/lipsync_tune.py --fit-fv`` fits on the held-out tuning lines (never the
scored ones) and which are written below.
"""

from __future__ import annotations

import numpy as np

from .sphinxmodel import FRAME_SHIFT, FRAME_SIZE

N_FFT = 512
RATE = 16000

# fitted by `bench/lipsync_tune.py --fit-fv` (Harvard list 2 in the four tuning voices, speech frames)
FV_MEAN: tuple[float, ...] = (-1.018, -1.2881, -1.1627, -0.1075, 0.426, 0.1815, -0.9985, -1.3667, -1.1444, -0.1146, 0.4049, 0.1881, 0.189, -0.2725, 0.119, -0.0001, -0.0789, 0.0058)
FV_SD: tuple[float, ...] = (0.1834, 0.7018, 0.39, 0.0781, 0.1462, 0.0874, 0.1833, 0.6284, 0.3215, 0.067, 0.108, 0.0644, 0.4063, 1.2404, 0.5001, 0.2058, 0.2776, 0.1445)
REST_MEAN: tuple[float, ...] = (-0.629, -2.1804, -0.9815, -0.2798, 0.1472, 0.2281, -0.6343, -2.1734, -0.9808, -0.2802, 0.1491, 0.2284, -0.0253, 0.0272, -0.0056, -0.005, 0.0067, 0.0013)
REST_SD: tuple[float, ...] = (0.5663, 1.2794, 0.552, 0.4266, 0.1799, 0.1706, 0.5023, 1.1679, 0.4806, 0.3692, 0.1569, 0.1553, 0.6389, 1.2173, 0.6067, 0.4662, 0.2032, 0.1734)


def base_measures(samples: np.ndarray, n_frames: int) -> np.ndarray:
    """(n, 6): log10 level vs the 95th percentile, log10 shares of energy > 4 kHz, 1-4 kHz,
    < 1 kHz, flatness above 1 kHz (geometric over arithmetic mean of the power spectrum),
    zero-crossing rate. 16 kHz ``samples``."""
    x = np.pad(np.asarray(samples, np.float64), (0, FRAME_SIZE + FRAME_SHIFT * n_frames))
    fr = x[np.arange(FRAME_SIZE)[None, :] + FRAME_SHIFT * np.arange(n_frames)[:, None]]
    zc = np.mean(np.abs(np.diff(np.sign(fr), axis=1)) > 0, axis=1)
    spec = np.abs(np.fft.rfft(fr * np.hamming(FRAME_SIZE), N_FFT, axis=1)) ** 2 + 1e-10
    f = np.fft.rfftfreq(N_FFT, 1 / RATE)
    tot = spec.sum(axis=1)
    hi, mid, lo = spec[:, f > 4000].sum(axis=1), spec[:, (f > 1000) & (f < 4000)].sum(axis=1), spec[:, f < 1000].sum(axis=1)
    upper = spec[:, f > 1000]
    flat = np.exp(np.mean(np.log(upper), axis=1)) / np.mean(upper, axis=1)
    rms = np.sqrt(tot)
    rel = np.log10(rms / np.percentile(rms, 95))
    return np.stack([rel, np.log10(hi / tot), np.log10(mid / tot), np.log10(lo / tot), flat, zc], axis=1)


def measures(samples: np.ndarray, n_frames: int) -> np.ndarray:
    """(n, 18): ``base_measures``, their +-2-frame mean, and their change from 2 frames before
    to 2 frames after (a fricative is a steady stretch between transitions)."""
    m = base_measures(samples, n_frames)
    pad = np.pad(m, ((2, 2), (0, 0)), mode="edge")
    ctx = np.mean([pad[i:i + n_frames] for i in range(5)], axis=0)
    return np.concatenate([m, ctx, pad[4:4 + n_frames] - pad[:n_frames]], axis=1)


def _loglik(z: np.ndarray, mean, sd) -> np.ndarray:
    mean, sd = np.asarray(mean), np.asarray(sd)
    return (-0.5 * ((z - mean) / sd) ** 2 - np.log(sd)).sum(axis=1)


def fit(z: np.ndarray, is_fv: np.ndarray) -> dict[str, list[float]]:
    """Means and spreads of the two classes (the tuner writes them into this module)."""
    out = {}
    for name, sel in (("FV", is_fv), ("REST", ~is_fv)):
        out[f"{name}_MEAN"] = [round(float(v), 4) for v in z[sel].mean(axis=0)]
        out[f"{name}_SD"] = [round(float(v), 4) for v in z[sel].std(axis=0) + 1e-3]
    return out


def fv_llr(z: np.ndarray, model: dict | None = None) -> np.ndarray:
    """Per frame: log p(z | F/V) - log p(z | anything else spoken)."""
    m = model or {"FV_MEAN": FV_MEAN, "FV_SD": FV_SD, "REST_MEAN": REST_MEAN, "REST_SD": REST_SD}
    return _loglik(z, m["FV_MEAN"], m["FV_SD"]) - _loglik(z, m["REST_MEAN"], m["REST_SD"])


def mark_fv(frame_phones: list[str], llr: np.ndarray, threshold: float, min_run: int, phone: str = "F") -> list[str]:
    """Frames in runs of at least ``min_run`` whose ``llr`` passes ``threshold`` become ``phone``
    (silence stays silence: a pause is quiet, not frication); shorter runs are left alone, so a
    single noisy frame does not flash the F/V mouth."""
    hit = (np.asarray(llr) > threshold) & np.array([p != "SIL" for p in frame_phones])
    out = list(frame_phones)
    k, n = 0, len(out)
    while k < n:
        if not hit[k]:
            k += 1
            continue
        e = k
        while e < n and hit[e]:
            e += 1
        if e - k >= min_run:
            out[k:e] = [phone] * (e - k)
        k = e
    return out

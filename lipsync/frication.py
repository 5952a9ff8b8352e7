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
frames. F/V against the rest is a log-likelihood ratio of diagonal Gaussians (/f/ and /v/
each their own, the likelier of the two against the rest) whose means and spreads
``bench/lipsync_tune.py --fit-fv`` fits on the held-out tuning lines (never the scored ones)
and which are written below.
"""

from __future__ import annotations

import numpy as np

from .runs import true_runs
from .sphinxmodel import FRAME_SHIFT, FRAME_SIZE

N_FFT = 512
RATE = 16000

# fitted by `bench/lipsync_tune.py --fit-fv` (Harvard lists 2-4 in the four tuning voices, speech frames):
# /f/ and /v/ apart (a voiced /v/ keeps its voicing below 1 kHz and is weaker above 4 kHz, so one
# Gaussian for both fitted neither: /v/ after a vowel, as in "of", was never found), and every
# other speech frame
F_MEAN: tuple[float, ...] = (-1.0398, -1.0049, -0.9937, -0.1394, 0.4476, 0.2116, -1.0117, -1.1177, -0.9883, -0.144, 0.422, 0.216, 0.2331, -0.3591, 0.1721, -0.0185, -0.116, 0.0118)
F_SD: tuple[float, ...] = (0.1978, 0.5349, 0.2185, 0.0801, 0.1391, 0.0826, 0.1909, 0.4531, 0.1717, 0.0587, 0.1006, 0.0483, 0.4183, 1.4073, 0.3444, 0.2091, 0.268, 0.155)
V_MEAN: tuple[float, ...] = (-0.9851, -2.1339, -1.6189, -0.0263, 0.3444, 0.1089, -0.9562, -2.1729, -1.5765, -0.0331, 0.3264, 0.1157, 0.0584, 0.0412, 0.0198, -0.0169, 0.0209, 0.021)
V_SD: tuple[float, ...] = (0.1779, 0.3202, 0.446, 0.0419, 0.1429, 0.0468, 0.169, 0.2819, 0.3024, 0.0341, 0.0932, 0.0371, 0.3802, 0.7305, 0.8743, 0.096, 0.306, 0.0974)
REST_MEAN: tuple[float, ...] = (-0.6057, -2.2588, -0.9971, -0.2857, 0.1408, 0.2209, -0.6116, -2.2516, -0.9962, -0.2862, 0.1427, 0.2215, -0.0253, 0.0323, 0.0009, -0.0086, 0.0067, 0.0017)
REST_SD: tuple[float, ...] = (0.548, 1.2792, 0.5652, 0.4821, 0.1773, 0.1685, 0.4856, 1.17, 0.4906, 0.4287, 0.1535, 0.1536, 0.6294, 1.2084, 0.6282, 0.4845, 0.2038, 0.1704)


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


def fit(z: np.ndarray, phones: np.ndarray) -> dict[str, list[float]]:
    """Means and spreads of /f/, /v/ and the rest from speech frames ``z`` and each frame's
    (base ARPAbet) phone; the tuner writes them into this module."""
    out = {}
    for name, sel in (("F", phones == "F"), ("V", phones == "V"), ("REST", ~np.isin(phones, ["F", "V"]))):
        out[f"{name}_MEAN"] = [round(float(v), 4) for v in z[sel].mean(axis=0)]
        out[f"{name}_SD"] = [round(float(v), 4) for v in z[sel].std(axis=0) + 1e-3]
    return out


def fv_llr(z: np.ndarray, model: dict | None = None) -> np.ndarray:
    """Per frame: log p(z | /f/ or /v/, the likelier) - log p(z | anything else spoken)."""
    m = model or {"F_MEAN": F_MEAN, "F_SD": F_SD, "V_MEAN": V_MEAN, "V_SD": V_SD, "REST_MEAN": REST_MEAN, "REST_SD": REST_SD}
    fv = np.maximum(_loglik(z, m["F_MEAN"], m["F_SD"]), _loglik(z, m["V_MEAN"], m["V_SD"]))
    return fv - _loglik(z, m["REST_MEAN"], m["REST_SD"])


def mark_fv(frame_phones: list[str], llr: np.ndarray, threshold: float, min_run: int, phone: str = "F") -> list[str]:
    """Frames in runs of at least ``min_run`` whose ``llr`` passes ``threshold`` become ``phone``
    (silence stays silence: a pause is quiet, not frication); shorter runs are left alone, so a
    single noisy frame does not flash the F/V mouth."""
    hit = (np.asarray(llr) > threshold) & np.array([p != "SIL" for p in frame_phones])
    out = list(frame_phones)
    for k, e in true_runs(hit, min_run):
        out[k:e] = [phone] * (e - k)
    return out

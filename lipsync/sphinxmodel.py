"""PocketSphinx's English acoustic model, read from the files inside its wheel, scored per frame.

The pocketsphinx Python API gives only a decoder's best answer (``seg()``, ``hyp()``, lattices
of words); it exposes no per-frame acoustic scores. The phone loop (``lipsync.phoneloop``) needs
them for every phone on every frame, so this module reads the model itself (no downloads: the
files ship in ``pocketsphinx/model/en-us/en-us``) and reproduces what PocketSphinx computes:

- features as its front end makes them with this model's ``feat.params`` (pre-emphasis 0.97,
  25.625 ms Hamming windows every 10 ms, 512-point FFT, 25 unit-area mel filters 130-6800 Hz,
  its noise removal on the mel spectrum (``remove_noise``, as ``fe_noise.c`` does it), orthonormal
  DCT-II to 13 cepstra, lifter 22, batch cepstral mean removal, then ``1s_c_d_dd``: cepstra,
  deltas over +-2 frames and delta-deltas), in the int16 sample scale it was trained on;
- the phonetically-tied mixture model (``-model ptm``): one 128-Gaussian codebook per
  context-independent (CI) phone and feature stream, and each CI phone's three senones as
  mixture weights over its codebook (``sendump``, 8-bit -log weights), all 128 Gaussians
  summed (PocketSphinx keeps the top 4);
- the phones' names (binary ``mdef``), their senones and their transition matrices.

Only CI phones are scored: a free phone loop has no word context to pick triphones by.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

LOGBASE = 1.0001  # PocketSphinx's default -logbase
SENSCR_SHIFT = 10  # sendump values are log-base-1.0001 scores shifted right by this
FRAME_SIZE = 410  # 25.625 ms at 16 kHz
FRAME_SHIFT = 160  # 10 ms
N_FFT = 512
N_FILT, LOWERF, UPPERF, N_CEP, LIFTER = 25, 130.0, 6800.0, 13, 22  # this model's feat.params
VARFLOOR = 1e-4


def model_dir() -> str:
    from pocketsphinx import get_model_path

    return os.path.join(get_model_path(), "en-us", "en-us")


def _s3_header(buf: bytes) -> tuple[dict[str, str], int, str]:
    """SphinxTrain's binary header: ``s3`` line, ``name value`` lines, ``endhdr``, then a
    byte-order magic. Returns (arguments, offset of the data, byte order for struct)."""
    end = buf.index(b"endhdr\n") + len(b"endhdr\n")
    args = dict(line.split(" ", 1) for line in buf[:end].decode("ascii").splitlines()[1:-1] if " " in line)
    magic = struct.unpack("<I", buf[end:end + 4])[0]
    order = "<" if magic == 0x11223344 else ">"
    return args, end + 4, order


def _read_gauden(path: str) -> np.ndarray:
    """Means or variances: (codebooks, streams, densities, dims)."""
    buf = open(path, "rb").read()
    _, off, o = _s3_header(buf)
    n_mgau, n_feat, n_density = struct.unpack(o + "3i", buf[off:off + 12])
    veclen = struct.unpack(o + f"{n_feat}i", buf[off + 12:off + 12 + 4 * n_feat])
    off += 12 + 4 * n_feat
    (n,) = struct.unpack(o + "i", buf[off:off + 4])
    if len(set(veclen)) != 1 or n != n_mgau * n_density * sum(veclen):
        raise ValueError(f"{path}: unexpected shape {n_mgau}x{n_feat}x{n_density}x{veclen}")
    data = np.frombuffer(buf, o + "f4", n, off + 4)
    return data.reshape(n_mgau, n_feat, n_density, veclen[0]).astype(np.float64)


def _read_tmat(path: str) -> np.ndarray:
    """Transition matrices: (n_tmat, emitting states, states + exit), probabilities."""
    buf = open(path, "rb").read()
    _, off, o = _s3_header(buf)
    d1, d2, d3, n = struct.unpack(o + "4i", buf[off:off + 16])
    t = np.frombuffer(buf, o + "f4", n, off + 16).reshape(d1, d2, d3).astype(np.float64)
    return t / t.sum(axis=2, keepdims=True)  # stored as counts in this model


def _read_sendump(path: str, n_feat: int, n_density: int) -> np.ndarray:
    """Mixture weights as ln w: (streams, densities, senones)."""
    buf = open(path, "rb").read()
    off = 0
    o = "<"
    (n,) = struct.unpack(o + "i", buf[:4])
    if not 0 < n < 1000:
        o = ">"
    strings = []
    while True:
        (n,) = struct.unpack(o + "i", buf[off:off + 4])
        off += 4
        if n == 0:
            break
        strings.append(buf[off:off + n].rstrip(b"\0").decode("ascii", "replace"))
        off += n
    kv = dict(s.split(" ", 1) for s in strings[2:] if " " in s)
    if int(kv.get("cluster_count", 0)) or int(kv.get("cluster_bits", 8)) != 8:
        raise ValueError(f"{path}: clustered mixture weights are not supported")
    _, n_sen = struct.unpack(o + "2i", buf[off:off + 8])  # rows, columns (unclustered files)
    off += 8
    raw = np.frombuffer(buf, np.uint8, n_feat * n_density * n_sen, off).reshape(n_feat, n_density, n_sen)
    return -raw.astype(np.float64) * (1 << SENSCR_SHIFT) * np.log(LOGBASE)


def _read_mdef(path: str) -> tuple[list[str], list[list[int]], list[int]]:
    """CI phone names, each CI phone's senones and its transition matrix (binary mdef)."""
    buf = open(path, "rb").read()
    o = "<" if buf[:4] == b"BMDF" else ">"
    _, _, desc_len = struct.unpack(o + "4s2i", buf[:12])
    off = 12 + desc_len
    n_ci, n_phone, n_emit, _n_ci_sen, _n_sen, _n_tmat, n_sseq, _n_ctx, n_tree, _sil = struct.unpack(o + "10i", buf[off:off + 40])
    off += 40
    names = []
    for _ in range(n_ci):
        end = buf.index(b"\0", off)
        names.append(buf[off:end].decode("ascii"))
        off = end + 1
    base = 12 + desc_len + 40
    off = base + ((off - base + 3) & ~3)
    off += 8 * n_tree  # cd_tree entries
    phones = [struct.unpack(o + "2i4b", buf[off + 12 * i:off + 12 * i + 12])[:2] for i in range(n_ci)]
    off += 12 * n_phone + 4  # all phones, then the sseq size
    if not n_emit:
        raise ValueError(f"{path}: phones with different state counts are not supported")
    sseq = np.frombuffer(buf, o + "u2", n_sseq * n_emit, off).reshape(n_sseq, n_emit)
    return names, [sseq[ssid].astype(int).tolist() for ssid, _ in phones], [tm for _, tm in phones]


@dataclass
class SphinxModel:
    """The CI part of the acoustic model, ready to score frames."""

    phones: list[str]  # CI phone names, e.g. AA ... ZH, SIL, +NSN+, +SPN+
    tmat: np.ndarray  # (n_phones, 3, 4) transition probabilities of each phone's HMM
    _w_sq: np.ndarray  # per (phone, stream): -0.5/var  (n, f, 128, 13)
    _w_lin: np.ndarray  # mean/var
    _const: np.ndarray  # (n, f, 128) Gaussian constant + ln mixture weight per state -> see score
    _mixw: np.ndarray  # (n, f, 3 states, 128) ln mixture weights

    @property
    def n_states(self) -> int:
        return 3

    def _densities(self, xf: np.ndarray, f: int) -> np.ndarray:
        """(T, n_phones, 128) Gaussian log densities of every codeword of every phone's codebook
        for stream ``f`` (one matrix product: log N = x^2 . (-1/2v) + x . (mu/v) + const)."""
        n_p, k, d = self._w_sq.shape[0], self._w_sq.shape[2], self._w_sq.shape[3]
        g = (xf**2) @ self._w_sq[:, f].reshape(n_p * k, d).T + xf @ self._w_lin[:, f].reshape(n_p * k, d).T
        return g.reshape(-1, n_p, k) + self._const[None, :, f]

    def loglik(self, feats: np.ndarray) -> np.ndarray:
        """(T, n_phones, 3) natural-log likelihood of each CI phone state on each frame."""
        x = feats.reshape(feats.shape[0], 3, N_CEP)
        out = np.zeros((feats.shape[0], len(self.phones), 3))
        for f in range(3):
            g = self._densities(x[:, f], f)
            m = g.max(axis=2, keepdims=True)
            e = np.exp(g - m).transpose(1, 0, 2)  # (p, T, 128)
            w = np.exp(self._mixw[:, f]).transpose(0, 2, 1)  # (p, 128, 3)
            out += np.log(np.matmul(e, w).transpose(1, 0, 2) + 1e-300) + m
        return out

    def adapted(self, feats: np.ndarray, occupancy: np.ndarray, tau: float = 2.0) -> "SphinxModel":
        """The model with its codebook means moved toward this speaker: one MAP re-estimate
        (Gauvain and Lee 1994) from the line itself, ``occupancy`` (T, n_phones, 3) being each
        state's posterior on each frame (from a first pass of the loop). A mean seen with total
        responsibility N moves N / (N + ``tau``) of the way to the frames' weighted average, so
        codewords the line never uses stay as trained. Variances and weights are kept."""
        x = feats.reshape(feats.shape[0], 3, N_CEP)
        var = -0.5 / self._w_sq
        mu = self._w_lin * var
        new_mu = mu.copy()
        for f in range(3):
            xf = x[:, f]
            g = self._densities(xf, f)
            e = np.exp(g - g.max(axis=2, keepdims=True)).transpose(1, 0, 2)  # (p, T, 128)
            w = np.exp(self._mixw[:, f])  # (p, 3, 128)
            dens = np.matmul(e, w.transpose(0, 2, 1))  # (p, T, 3): each state's mixture sum
            # a codeword's share of a frame: sum over states of occupancy * w e / (state's sum)
            resp = e * np.matmul(occupancy.transpose(1, 0, 2) / (dens + 1e-300), w)  # (p, T, 128)
            n = resp.sum(axis=1)
            s = np.matmul(resp.transpose(0, 2, 1), xf)  # (p, 128, d)
            new_mu[:, f] = (tau * mu[:, f] + s) / (tau + n)[..., None]
        const = -0.5 * (np.sum(np.log(2 * np.pi * var), axis=3) + np.sum(new_mu**2 / var, axis=3))
        return SphinxModel(self.phones, self.tmat, self._w_sq, new_mu / var, const, self._mixw)


@lru_cache(maxsize=1)
def load_model() -> SphinxModel:
    """Read the wheel's en-us model once (about 0.2 s)."""
    d = model_dir()
    means = _read_gauden(os.path.join(d, "means"))
    var = np.maximum(_read_gauden(os.path.join(d, "variances")), VARFLOOR)
    names, senones, tmats = _read_mdef(os.path.join(d, "mdef"))
    mixw = _read_sendump(os.path.join(d, "sendump"), means.shape[1], means.shape[2])
    tm = _read_tmat(os.path.join(d, "transition_matrices"))
    n_p = len(names)
    if means.shape[0] < n_p:
        raise ValueError("the model has fewer codebooks than CI phones: not a PTM model")
    mu, v = means[:n_p], var[:n_p]
    const = -0.5 * (np.sum(np.log(2 * np.pi * v), axis=3) + np.sum(mu**2 / v, axis=3))
    sen_w = np.stack([mixw[:, :, senones[p]].transpose(0, 2, 1) for p in range(n_p)])  # (p, f, 3, 128)
    return SphinxModel(names, tm[tmats], -0.5 / v, mu / v, const, sen_w)


def _mel(f):
    return 2595.0 * np.log10(1.0 + f / 700.0)


def _mel_inv(m):
    return 700.0 * (10 ** (m / 2595.0) - 1.0)


@lru_cache(maxsize=1)
def _filterbank() -> np.ndarray:
    """(N_FILT, N_FFT/2+1) unit-area triangles with edges rounded to FFT bins (``fe_build_melfilters``)."""
    step = 16000 / N_FFT
    lo, hi = _mel(LOWERF), _mel(UPPERF)
    bw = (hi - lo) / (N_FILT + 1)
    fb = np.zeros((N_FILT, N_FFT // 2 + 1))
    hz = np.arange(N_FFT // 2 + 1) * step
    for i in range(N_FILT):
        f0, f1, f2 = (np.floor(_mel_inv(lo + (i + j) * bw) / step + 0.5) * step for j in range(3))
        up, down = (hz - f0) / (f1 - f0), (f2 - hz) / (f2 - f1)
        w = np.minimum(up, down) * 2 / (f2 - f0)
        inside = (hz >= f0) & (hz <= f2) & (np.arange(hz.size) < N_FFT // 2)
        fb[i, inside] = w[inside]
    return fb


def remove_noise(mel: np.ndarray) -> np.ndarray:
    """PocketSphinx's noise removal on (T, filters) mel power (``fe_remove_noise``, float path):
    a smoothed power, its slowly rising lower envelope as the noise, the signal above it with a
    floor and temporal masking, and the resulting gain smoothed over +-4 filters."""
    lam_p, lam_a, lam_b, lam_t, mu_t, max_gain = 0.7, 0.995, 0.5, 0.85, 0.2, 20.0
    out = np.empty_like(mel)
    power = mel[0].copy()
    noise, floor, peak = mel[0] / max_gain, mel[0] / max_gain, np.zeros(mel.shape[1])
    n = mel.shape[1]
    lo = np.maximum(np.arange(n) - 4, 0)
    hi = np.minimum(np.arange(n) + 4, n - 1)
    csum = np.zeros(n + 1)

    def envelope(buf, env):
        return np.where(buf >= env, lam_a * env + (1 - lam_a) * buf, lam_b * env + (1 - lam_b) * buf)

    for t, frame in enumerate(mel):
        power = lam_p * power + (1 - lam_p) * frame
        noise = envelope(power, noise)
        signal = np.maximum(power - noise, 1.0)
        floor = envelope(signal, floor)
        cur = signal.copy()
        peak = peak * lam_t
        signal = np.where(signal < lam_t * peak, peak * mu_t, signal)
        peak = np.where(cur > peak, cur, peak)
        signal = np.maximum(signal, floor)
        gain = np.where(signal < max_gain * power, signal / power, max_gain)
        gain = np.maximum(gain, 1.0 / max_gain)
        csum[1:] = np.cumsum(gain)
        out[t] = frame * (csum[hi + 1] - csum[lo]) / (hi - lo + 1)
    return out


def cepstra(samples: np.ndarray) -> np.ndarray:
    """(T, 13) cepstra of 16 kHz float audio as PocketSphinx's front end makes them, before CMN."""
    x = np.asarray(samples, np.float64) * 32768.0
    if x.size < FRAME_SIZE:
        x = np.pad(x, (0, FRAME_SIZE - x.size))
    pre = np.concatenate([[x[0]], x[1:] - 0.97 * x[:-1]])
    n = 1 + (x.size - FRAME_SIZE) // FRAME_SHIFT
    fr = pre[np.arange(FRAME_SIZE)[None, :] + FRAME_SHIFT * np.arange(n)[:, None]]
    win = 0.54 - 0.46 * np.cos(2 * np.pi * np.arange(FRAME_SIZE) / (FRAME_SIZE - 1))
    spec = np.abs(np.fft.rfft(fr * win, N_FFT)) ** 2
    mel = np.log(remove_noise(spec @ _filterbank().T) + 1e-4)
    k = np.arange(N_CEP)[:, None]
    dct = np.cos(np.pi / N_FILT * k * (np.arange(N_FILT)[None, :] + 0.5)) * np.sqrt(2.0 / N_FILT)
    dct[0] = np.sqrt(1.0 / N_FILT)
    lifter = 1 + LIFTER / 2 * np.sin(np.arange(N_CEP) * np.pi / LIFTER)
    return (mel @ dct.T) * lifter


def features(samples: np.ndarray) -> np.ndarray:
    """(T, 39) ``1s_c_d_dd`` features with batch cepstral mean removal."""
    c = cepstra(samples)
    c = c - c.mean(axis=0)
    p = np.pad(c, ((3, 3), (0, 0)), mode="edge")
    t = np.arange(c.shape[0]) + 3
    d = p[t + 2] - p[t - 2]
    dd = (p[t + 3] - p[t - 1]) - (p[t + 1] - p[t - 3])
    return np.concatenate([c, d, dd], axis=1)

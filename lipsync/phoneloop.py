"""Free phone recognition for mouths: each frame's mouth class by posterior probability, not by
the decoder's single best phone string.

A mouth does not need to know *which* phone sounds, only which mouth shape: when the acoustic
model hesitates between F and TH, or between P, B and M, the best string must pick one phone
(and is often wrong), while the sum of the posteriors of the phones that share a mouth class
can be sure of the class. So:

1. every CI phone state is scored on every 10 ms frame (``sphinxmodel``: PocketSphinx's own
   English model, read from its wheel), then again after the model's codebook means are
   adapted to the line's speaker (MAP, from the first pass's state posteriors);
2. forward-backward over a loop of the phones' three-state HMMs (their trained transition
   matrices), with the phone bigram of PocketSphinx's phone language model
   (``en-us-phone.lm.bin``) as the prior between phones, gives each frame's posterior
   probability of each phone;
3. each frame shows the mouth class with the largest summed posterior, as the most probable
   phone in that class (so Rhubarb shapes and visemes still come from a phone); a frame
   quieter than the noise floor is silence whatever the model says, so pauses stay closed;
4. runs of frames whose spectrum is a weak, flat frication noise show F/V whatever the model
   says (``frication``): the model hears F/V on few of its frames and misses most F/V changes;
5. runs of frames whose own likelihoods favour a closure (M/B/P) or an open vowel show it
   whatever the path said (``evidence``): the path's posteriors are nearly one-hot, so a
   closure it ran through as another consonant had no posterior left to bias.

The few parameters (acoustic scale, language-model weight, phone insertion penalty, noise
floor, class bias, adaptation passes and weight) are tuned by ``bench/lipsync_tune.py`` on
sentences and voices that the scores in ``bench/lipsync.py`` and the tests never use.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .evidence import Override, apply_override
from .visemes import PhoneSegment, phone_class

FRAME_S = 0.01
FRAME_OFFSET = 0.0128 - FRAME_S / 2  # frame k's window is centred at k * 10 + 12.8 ms
SILENCE_PHONES = ("SIL",)  # the filler phones (+NSN+ +SPN+) are left out of the loop


@dataclass(frozen=True)
class LoopParams:
    """Tuned by ``bench/lipsync_tune.py`` on held-out lines (see docs/lipsync.md)."""

    acoustic_scale: float = 0.3  # likelihoods are raised to this power (frames are not independent)
    lm_weight: float = 1.0  # the phone bigram's probabilities are raised to this power
    insertion: float = 2.0  # multiplies every phone-to-phone transition (below 1: fewer, longer phones)
    quiet: float = 0.01  # a frame below this share of the line's 95th-percentile loudness is silence
    class_bias: tuple[tuple[str, float], ...] = (("fv", 3.0), ("closed", 2.0))  # (class, log bias): it under-hears F/V, M/B/P
    order: int = 2  # the phone prior: 2 (bigram) or 3 (trigram: the loop's states remember the previous phone)
    adapt_passes: int = 2  # MAP re-estimates of the codebook means from the line itself (0: the model as trained)
    map_tau: float = 2.0  # how many frames' worth of weight the trained mean keeps against the line's
    fv_threshold: float = 14.0  # frication log-likelihood ratio above which a frame is F/V (``frication``; inf: off)
    fv_min_run: int = 3  # ... in runs of at least this many frames
    # then runs of frames whose own likelihoods say closed M/B/P, or an open vowel, show it whatever
    # the path said (``evidence``; F/V and silence are never overridden): the changes the loop misses
    overrides: tuple[Override, ...] = (
        Override("closed", hi=0.0, lo=-2.0, over=("closed", "open", "rounded", "wide", "other")),
        Override("open", hi=-2.0, lo=-6.0, over=("rounded", "wide", "other")),
    )


DEFAULT = LoopParams()


@lru_cache(maxsize=1)
def _bigram(phones: tuple[str, ...]) -> np.ndarray:
    """(n, n) P(next | previous) from PocketSphinx's phone language model (rows renormalised
    over the phones in the loop; SIL stands for the sentence boundaries)."""
    from pocketsphinx import Config, LogMath, NGramModel, get_model_path

    lmath = LogMath()
    lm = NGramModel(Config(loglevel="ERROR"), lmath, os.path.join(get_model_path(), "en-us", "en-us-phone.lm.bin"))
    logp = np.array([[lmath.log_to_ln(lm.prob([nxt, prev])) for nxt in phones] for prev in phones])
    p = np.exp(logp - logp.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True)


@lru_cache(maxsize=1)
def _trigram(phones: tuple[str, ...]) -> np.ndarray:
    """(n, n, n) P(next | before previous, previous) from the same model, ``[a, b, c]`` = P(c | a b)."""
    from pocketsphinx import Config, LogMath, NGramModel, get_model_path

    lmath = LogMath()
    lm = NGramModel(Config(loglevel="ERROR"), lmath, os.path.join(get_model_path(), "en-us", "en-us-phone.lm.bin"))
    to_ln = lmath.log_to_ln(-10000) / -10000  # PocketSphinx's log units -> natural log
    logp = np.array([[[lm.prob([c, b, a]) for c in phones] for b in phones] for a in phones], float) * to_ln
    p = np.exp(logp - logp.max(axis=2, keepdims=True))
    return p / p.sum(axis=2, keepdims=True)


def posteriors3(loglik: np.ndarray, tmat: np.ndarray, trigram: np.ndarray, params: LoopParams, start: int) -> np.ndarray:
    """As ``posteriors`` with a trigram prior: the state is (previous phone, phone, HMM state),
    so entering phone c from b weighs P(c | a b) with a the phone before b."""
    t_len, n, _ = loglik.shape
    ll = params.acoustic_scale * loglik
    b = np.exp(ll - ll.max(axis=(1, 2), keepdims=True))  # (T, n, 3)
    prior = trigram ** params.lm_weight
    prior /= prior.sum(axis=2, keepdims=True)
    stay = tmat[:, :, :3]  # (n, 3, 3) within the phone
    leave = tmat[:, :, 3] * params.insertion  # (n, 3)
    alpha = np.zeros((t_len, n, n, 3), np.float32)
    cur = np.zeros((n, n, 3))
    cur[start, start, 0] = 1.0
    cur *= b[0][None]
    alpha[0] = cur / cur.sum()
    for t in range(1, t_len):
        prev = alpha[t - 1].astype(np.float64)
        new = np.einsum("abs,bsd->abd", prev, stay)
        exits = np.einsum("abs,bs->ab", prev, leave)
        new[:, :, 0] += np.einsum("ab,abc->bc", exits, prior)
        new *= b[t][None]
        alpha[t] = new / max(new.sum(), 1e-300)
    beta = np.ones((n, n, 3)) / (n * n * 3)
    out = np.zeros((t_len, n))
    out[-1] = alpha[-1].sum(axis=(0, 2))
    for t in range(t_len - 2, -1, -1):
        nb = b[t + 1][None] * beta  # (a, b, d)
        new = np.einsum("bsd,abd->abs", stay, nb)
        enter = np.einsum("abc,bc->ab", prior, nb[:, :, 0])  # sum_c P(c|a b) * next[b, c, 0]
        new += leave[None] * enter[:, :, None]
        beta = new / max(new.sum(), 1e-300)
        out[t] = (alpha[t] * beta).sum(axis=(0, 2))
    return out / out.sum(axis=1, keepdims=True)


def _transitions(tmat: np.ndarray, bigram: np.ndarray, params: LoopParams) -> np.ndarray:
    """(3n, 3n) state transition matrix of the phone loop."""
    n = tmat.shape[0]
    a = np.zeros((3 * n, 3 * n))
    prior = bigram ** params.lm_weight
    prior /= prior.sum(axis=1, keepdims=True)
    for p in range(n):
        for s in range(3):
            for d in range(s, 3):
                a[3 * p + s, 3 * p + d] = tmat[p, s, d]
            leave = tmat[p, s, 3]
            if leave > 0:
                a[3 * p + s, 3 * np.arange(n)] += leave * params.insertion * prior[p]
    return a


def posteriors(loglik: np.ndarray, tmat: np.ndarray, bigram: np.ndarray, params: LoopParams, start: int, *,
               states: bool = False) -> np.ndarray:
    """(T, n) posterior probability of each phone on each frame by forward-backward (scaled,
    in the probability domain); ``loglik`` is (T, n, 3); the line starts in phone ``start``.
    With ``states`` (T, n, 3): each HMM state's."""
    t_len, n, _ = loglik.shape
    a = _transitions(tmat, bigram, params)
    ll = params.acoustic_scale * loglik.reshape(t_len, 3 * n)
    b = np.exp(ll - ll.max(axis=1, keepdims=True))
    alpha = np.zeros((t_len, 3 * n))
    cur = np.zeros(3 * n)
    cur[3 * start] = 1.0
    cur = cur * b[0]
    alpha[0] = cur / cur.sum()
    for t in range(1, t_len):
        cur = (alpha[t - 1] @ a) * b[t]
        alpha[t] = cur / max(cur.sum(), 1e-300)
    beta = np.ones(3 * n) / (3 * n)
    gamma = np.zeros((t_len, 3 * n))
    gamma[-1] = alpha[-1]
    for t in range(t_len - 2, -1, -1):
        beta = a @ (b[t + 1] * beta)
        beta /= max(beta.sum(), 1e-300)
        gamma[t] = alpha[t] * beta
    gamma /= gamma.sum(axis=1, keepdims=True)
    return gamma.reshape(t_len, n, 3) if states else gamma.reshape(t_len, n, 3).sum(axis=2)


def loop_phones(model) -> list[int]:
    """Indices of the model's CI phones that the loop uses (all but the filler phones)."""
    return [i for i, p in enumerate(model.phones) if not p.startswith("+")]


def frame_loglik(samples: np.ndarray, params: LoopParams = DEFAULT) -> tuple[np.ndarray, list[str], np.ndarray]:
    """(loglik (T, n, 3), the loop's phone names, their transition matrices) for a line: the part
    the frame decisions start from (the tuner computes it once per line). With
    ``params.adapt_passes``, the model is first adapted to the line's speaker: the loop's state
    posteriors from the model as it is re-estimate its codebook means (MAP), and the frames are
    scored again. Synthetic and real voices are far from the speakers it was trained on; on the
    tuning lines one pass gains 2 points of speech frames (docs/lipsync.md)."""
    from .sphinxmodel import features, load_model

    base = load_model()
    keep = loop_phones(base)
    phones = [base.phones[i] for i in keep]
    tmat = base.tmat[keep]
    feats = features(samples)
    ll = base.loglik(feats)[:, keep]
    for _ in range(params.adapt_passes):
        occ = np.zeros((ll.shape[0], len(base.phones), 3))
        occ[:, keep] = posteriors(ll, tmat, _bigram(tuple(phones)), params, phones.index("SIL"), states=True)
        ll = base.adapted(feats, occ, params.map_tau).loglik(feats)[:, keep]
    return ll, phones, tmat


def frame_loudness(samples: np.ndarray, n_frames: int) -> np.ndarray:
    """RMS of each 25.6 ms analysis window relative to the line's 95th percentile."""
    from .sphinxmodel import FRAME_SHIFT, FRAME_SIZE

    x = np.pad(np.asarray(samples, np.float64), (0, FRAME_SIZE + FRAME_SHIFT * n_frames))
    fr = x[np.arange(FRAME_SIZE)[None, :] + FRAME_SHIFT * np.arange(n_frames)[:, None]]
    rms = np.sqrt(np.mean(fr**2, axis=1))
    return rms / (np.percentile(rms, 95) + 1e-12)


def decide(post: np.ndarray, phones: list[str], loud: np.ndarray, params: LoopParams) -> list[str]:
    """Each frame's phone: the most probable phone of the most probable mouth class; quiet
    frames are SIL."""
    classes = [phone_class(p) for p in phones]
    names = sorted(set(classes))
    member = np.array([[c == k for c in classes] for k in names], float)  # (classes, phones)
    cls_post = post @ member.T
    bias = dict(params.class_bias)
    cls_post = cls_post * np.exp(np.array([bias.get(k, 0.0) for k in names]))[None, :]
    best_cls = cls_post.argmax(axis=1)
    masked = np.where(member[best_cls] > 0, post, -1.0)
    out = [phones[i] for i in masked.argmax(axis=1)]
    return ["SIL" if q < params.quiet else p for p, q in zip(out, loud)]


def to_segments(frame_phones: list[str]) -> list[PhoneSegment]:
    """Runs of equal frame phones as segments on the audio's time line."""
    out: list[PhoneSegment] = []
    for k, p in enumerate(frame_phones):
        t0, t1 = max(0.0, k * FRAME_S + FRAME_OFFSET), (k + 1) * FRAME_S + FRAME_OFFSET
        if out and out[-1].phone == p:
            out[-1] = PhoneSegment(p, out[-1].start, t1)
        else:
            out.append(PhoneSegment(p, t0, t1))
    return out


def phone_loop_frames(samples: np.ndarray, params: LoopParams = DEFAULT, *, cached: tuple | None = None) -> list[str]:
    """The phone shown on each 10 ms frame of 16 kHz ``samples``."""
    ll, phones, tmat = cached or frame_loglik(samples, params)
    if params.order == 3:
        post = posteriors3(ll, tmat, _trigram(tuple(phones)), params, phones.index("SIL"))
    else:
        post = posteriors(ll, tmat, _bigram(tuple(phones)), params, phones.index("SIL"))
    out = decide(post, phones, frame_loudness(samples, ll.shape[0]), params)
    if np.isfinite(params.fv_threshold):
        from .frication import fv_llr, mark_fv, measures

        out = mark_fv(out, fv_llr(measures(samples, len(out))), params.fv_threshold, params.fv_min_run)
    for rule in params.overrides:
        out = apply_override(out, ll, phones, rule)
    return out


def phone_loop(samples: np.ndarray, params: LoopParams = DEFAULT) -> list[PhoneSegment]:
    """Timed phones of 16 kHz speech (no text needed): see the module doc."""
    return to_segments(phone_loop_frames(samples, params))

"""Mouth changes the phone loop's posteriors never make, put back from each frame's own acoustic
evidence.

Why: after forward-backward over the phone loop the class posteriors are nearly one-hot, so a
closure (M/B/P) or a vowel that the loop's path runs through as "other consonant" gets a
posterior of 0.000 and no bias on the posteriors can bring it back (on the held-out tuning
lines, the missed changes into closed and into open had a median posterior of 0 within
-30..+80 ms of the truth's change). The frame's own likelihoods still know: the best-scoring
state of a bilabial phone beats the best of every other speech phone on the frame where the
lips close, often by several nats, even where the path went elsewhere. So a run of frames
whose evidence for a class stays above ``lo`` and somewhere passes ``hi`` (hysteresis: one
strong frame starts the run, weaker neighbours extend it) shows that class whatever the path
said. The thresholds were chosen on the held-out tuning lines (``bench/lipsync_tune.py
--evidence-grid``), never on the scored ones.

Which frames may be overridden matters as much: F/V frames are left alone (the acoustic model
confuses the labiodental F/V with the bilabials, and a closure painted over an F/V destroyed
the change into F/V: on the tuning lines, missed changes rose 10.3 % -> 10.4 % with F/V
overridable, fell to 8.9 % without), silence stays silence, and a vowel class is only put over
frames of the classes listed (rounded, wide, other for open).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .runs import true_runs
from .visemes import phone_class


@dataclass(frozen=True)
class Override:
    """Show ``target`` on runs of frames of the ``over`` classes whose evidence for ``target``
    stays above ``lo`` and passes ``hi`` somewhere (nats of the frame's log-likelihood)."""

    target: str
    hi: float
    lo: float
    over: tuple[str, ...]


def class_evidence(loglik: np.ndarray, phones: list[str], target: str) -> tuple[np.ndarray, np.ndarray]:
    """Per frame: (best state log-likelihood of a ``target``-class phone minus the best of every
    other speech phone; index into ``phones`` of that best ``target`` phone). ``loglik`` is
    (T, n, 3), unscaled, as ``phoneloop.frame_loglik`` gives it."""
    best = loglik.max(axis=2)
    sel = [i for i, p in enumerate(phones) if phone_class(p) == target]
    rest = [i for i, p in enumerate(phones) if phone_class(p) != target and p != "SIL"]
    if not sel or not rest:
        raise ValueError(f"no phones of class {target!r} (or none outside it) among {phones}")
    inside = best[:, sel]
    return inside.max(axis=1) - best[:, rest].max(axis=1), np.asarray(sel)[inside.argmax(axis=1)]


def apply_override(frame_phones: list[str], loglik: np.ndarray, phones: list[str], rule: Override) -> list[str]:
    """``frame_phones`` with ``rule`` applied: each qualifying run shows, frame by frame, the
    most likely phone of the target class (so Rhubarb shapes and visemes still come from a
    phone); frames of the target class may belong to a run (and keep their phone)."""
    ev, which = class_evidence(loglik, phones, rule.target)
    n = min(len(frame_phones), ev.size)
    out = list(frame_phones)
    ok = np.array([p != "SIL" and phone_class(p) in rule.over for p in out[:n]]) & (ev[:n] > rule.lo)
    for k, e in true_runs(ok):
        if ev[k:e].max() > rule.hi:
            for j in range(k, e):
                if phone_class(out[j]) != rule.target:  # a frame already in the class keeps its phone
                    out[j] = phones[which[j]]
    return out

"""The evidence overrides (lipsync.evidence): the rule on constructed frames (hysteresis, which
frames may change, which phone they get), and the evidence itself against espeak-ng's phoneme
truth on a line rich in M/B/P. What they buy on continuous speech (fewer missed mouth changes
than the loop without them, beside the baselines) is asserted in test_lipsync_analysis.py."""

import numpy as np
import pytest
from lipsync_helpers import need_espeak

from lipsync.evidence import Override, apply_override, class_evidence
from lipsync.phoneloop import DEFAULT

PHONES = ["AA", "M", "B", "T", "F", "SIL"]  # open, closed, closed, other, fv, silence


def _loglik(closed_margin: list[float]) -> np.ndarray:
    """(T, 6, 3) log-likelihoods where B's best state beats every other speech phone by the
    given margin on each frame (T elsewhere at 0, the rest far below)."""
    ll = np.full((len(closed_margin), len(PHONES), 3), -50.0)
    ll[:, PHONES.index("T"), 1] = 0.0
    ll[:, PHONES.index("B"), 2] = np.asarray(closed_margin)
    ll[:, PHONES.index("M"), 0] = np.asarray(closed_margin) - 1.0
    return ll


def test_evidence_is_the_best_class_state_against_the_best_other_speech_phone():
    ll = _loglik([3.0, -2.0])
    ll[:, PHONES.index("SIL"), :] = 10.0  # silence never counts as the competitor
    ev, which = class_evidence(ll, PHONES, "closed")
    assert ev.tolist() == [3.0, -2.0]
    assert [PHONES[i] for i in which] == ["B", "B"]
    with pytest.raises(ValueError, match="no phones of class"):
        class_evidence(ll, ["T", "SIL"], "closed")


def test_one_strong_frame_starts_a_run_weaker_neighbours_extend_it():
    rule = Override("closed", hi=0.0, lo=-2.0, over=("closed", "open", "rounded", "wide", "other"))
    frames = ["T"] * 8
    # frames 1-3 pass lo with one passing hi; frames 5-6 pass lo only: no strong frame, no run
    out = apply_override(frames, _loglik([-9, -1, 1, -1.5, -9, -1, -1, -9]), PHONES, rule)
    assert out == ["T", "B", "B", "B", "T", "T", "T", "T"]


def test_fv_silence_and_the_target_class_keep_their_phones():
    """F/V is never painted over by a closure (the model confuses labiodentals with bilabials;
    painting them destroyed the changes into F/V); silence stays silence; a frame already in the
    target class keeps its own phone but still carries the run."""
    rule = Override("closed", hi=0.0, lo=-2.0, over=("closed", "open", "rounded", "wide", "other"))
    frames = ["AA", "F", "F", "AA", "SIL", "M", "T", "T"]
    out = apply_override(frames, _loglik([5, 5, 5, 5, 5, 1, -1, -9]), PHONES, rule)
    assert out == ["B", "F", "F", "B", "SIL", "M", "B", "T"]
    assert apply_override(frames, _loglik([5] * 8), PHONES, Override("closed", 99.0, -99.0, rule.over)) == frames


def test_closure_evidence_is_higher_on_bilabial_frames(speech):
    """Against espeak-ng's truth ("Bob moved five heavy boxes of purple paper."): the closed
    evidence on the adapted model's frames ranks M/B/P frames above the other consonants' and
    the vowels' (the ranking the override's threshold cuts), and the loop's default rules make
    the frames shown closed cover more of the truth's closures than the loop without them."""
    need_espeak()
    from dataclasses import replace

    from lipsync.phoneloop import frame_loglik, phone_loop_frames
    from lipsync.phonemes import NOISE_FLOOR
    from lipsync.score import truth_frames
    from lipsync.visemes import phone_class

    samples, u = speech
    x = samples + np.random.default_rng(0).normal(0, NOISE_FLOOR, samples.size).astype(np.float32)
    cached = frame_loglik(x)
    ll, phones, _ = cached
    n = min(ll.shape[0], int(np.ceil(u.seconds * 100)))
    truth = np.array(truth_frames(u.phones, 100, n))
    ev, _ = class_evidence(ll[:n], phones, "closed")
    closed, rest = ev[truth == "closed"], ev[np.isin(truth, ["other", "open", "rounded", "wide"])]
    assert closed.size > 20 and rest.size > 100
    auc = np.mean(closed[:, None] > rest[None, :])
    assert auc > 0.75, auc
    shown = {}
    for name, params in (("without", replace(DEFAULT, overrides=())), ("with", DEFAULT)):
        cls = np.array([phone_class(p) for p in phone_loop_frames(x, params, cached=cached)[:n]])
        shown[name] = float(np.mean(cls[truth == "closed"] == "closed"))
    assert shown["with"] > shown["without"], shown

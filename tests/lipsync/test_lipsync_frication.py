"""The F/V frication detector (lipsync/frication.py) against espeak-ng's phoneme events on a line
neither its fitting (bench/lipsync_tune.py's held-out lines) nor the scored truth set uses, and
its run rule on constructed frames."""

import numpy as np
import pytest
from lipsync_helpers import need_espeak

from lipsync.frication import fv_llr, mark_fv, measures
from lipsync.phoneloop import DEFAULT
from lipsync.phonemes import NOISE_FLOOR
from lipsync.score import truth_frames

LINE = "Five fat vans have a fine view. She sees six fish in the sea; the sheep chase us."


@pytest.fixture(scope="module")
def fricatives():
    need_espeak()
    from lipsync.truth import synthesize

    u = synthesize(LINE, voice="en-us", speed=160)
    x = u.samples + np.random.default_rng(0).normal(0, NOISE_FLOOR, u.samples.size).astype(np.float32)
    n = int(np.ceil(u.seconds * 100))
    return fv_llr(measures(x, n)), np.array(truth_frames(u.phones, 100, n)), u


def test_fv_frames_stand_out_from_s_sh_and_vowels(fricatives):
    """On F and V frames the ratio passes the phone loop's threshold far more often than on the
    other consonants (S, SH, CH, Z among them) and the vowels, where it almost never does."""
    llr, truth, _ = fricatives
    th = DEFAULT.fv_threshold
    fv, other, vowels = truth == "fv", truth == "other", np.isin(truth, ["open", "wide", "rounded"])
    assert fv.sum() > 40 and other.sum() > 80
    assert np.mean(llr[fv] > th) >= 0.3, np.percentile(llr[fv], [25, 50, 75])
    assert np.mean(llr[other] > th) <= 0.05
    assert np.mean(llr[vowels] > th) <= 0.02
    assert np.median(llr[fv]) > np.median(llr[other]) + 20


def test_only_runs_become_fv():
    """A run of ``min_run`` passing frames shows F/V; a shorter one and a pause do not change."""
    phones = ["AA"] * 3 + ["T"] * 4 + ["AA"] * 2 + ["SIL"] * 5
    llr = np.array([0, 0, 0, 20, 20, 20, 20, 0, 20, 20, 20, 20, 20, 0], float)
    out = mark_fv(phones, llr, 10.0, 4)
    assert out == ["AA"] * 3 + ["F"] * 4 + ["AA"] * 2 + ["SIL"] * 5
    assert mark_fv(phones, llr, 10.0, 5) == phones

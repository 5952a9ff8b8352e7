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


VOICED = "Love of a dove above the cave, over the river."


def test_v_after_a_vowel_is_found():
    """/v/ after a vowel ("of", "love", "above") keeps its voicing below 1 kHz; a single F/V
    Gaussian fitted on /f/-heavy frames never found it (every such change was missed). With /f/
    and /v/ modelled apart most /v/ segments hold a passing run, while the vowels beside them do
    not (beyond the 2 frames its context measures reach); and /v/ alone scores far higher under its own Gaussian than under /f/'s."""
    need_espeak()
    from lipsync import frication
    from lipsync.truth import synthesize

    u = synthesize(VOICED, voice="en-us", speed=160)
    x = u.samples + np.random.default_rng(0).normal(0, NOISE_FLOOR, u.samples.size).astype(np.float32)
    n = int(np.ceil(u.seconds * 100))
    z = measures(x, n)
    llr = fv_llr(z)
    truth = np.array(truth_frames(u.phones, 100, n))
    vs = [(int(round(s.start * 100)), int(round(s.end * 100))) for s in u.phones if s.phone == "V"]
    assert len(vs) >= 5
    found = [np.sum(llr[a:b] > DEFAULT.fv_threshold) >= min(DEFAULT.fv_min_run, b - a) for a, b in vs]
    assert np.mean(found) >= 0.6, [np.round(llr[a:b]).tolist() for a, b in vs]
    near = np.convolve((truth == "fv").astype(float), np.ones(5), "same") > 0  # the +-2-frame context reaches 2 frames out
    vowels = np.isin(truth, ["open", "wide", "rounded"]) & ~near
    assert vowels.sum() > 80 and np.mean(llr[vowels] > DEFAULT.fv_threshold) <= 0.02
    v = np.concatenate([np.arange(a, b) for a, b in vs])
    own = frication._loglik(z[v], frication.V_MEAN, frication.V_SD)
    other = frication._loglik(z[v], frication.F_MEAN, frication.F_SD)
    assert np.median(own - other) > 5


def test_only_runs_become_fv():
    """A run of ``min_run`` passing frames shows F/V; a shorter one and a pause do not change."""
    phones = ["AA"] * 3 + ["T"] * 4 + ["AA"] * 2 + ["SIL"] * 5
    llr = np.array([0, 0, 0, 20, 20, 20, 20, 0, 20, 20, 20, 20, 20, 0], float)
    out = mark_fv(phones, llr, 10.0, 4)
    assert out == ["AA"] * 3 + ["F"] * 4 + ["AA"] * 2 + ["SIL"] * 5
    assert mark_fv(phones, llr, 10.0, 5) == phones

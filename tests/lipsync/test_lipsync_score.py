"""The scorer on timelines whose right answers are known: speech frames only, per class, misses
counted as misses, and an offset check that means what it says."""

import numpy as np
import pytest

from lipsync.score import always_closed, change_offsets, change_pairs, loudness_classes, offset_summary, pooled, score_classes, truth_frames
from lipsync.visemes import PhoneSegment

PHONES = [PhoneSegment("SIL", 0.0, 0.2), PhoneSegment("M", 0.2, 0.3), PhoneSegment("AA", 0.3, 0.5),
          PhoneSegment("F", 0.5, 0.6), PhoneSegment("IY", 0.6, 0.8), PhoneSegment("UW", 0.8, 1.0), PhoneSegment("SIL", 1.0, 1.5)]


def test_truth_frames_and_silence_not_scored():
    t = truth_frames(PHONES, 100, 150)
    assert t[:20] == ["silence"] * 20 and t[20:30] == ["closed"] * 10 and t[30] == "open" and t[55] == "fv"
    assert t[65] == "wide" and t[90] == "rounded" and t[120] == "silence"
    perfect = score_classes(t, t)
    assert perfect.accuracy == 1.0 and perfect.frames == 80  # 0.8 s of speech, the pauses not scored
    closed = score_classes(always_closed(150), t)
    assert closed.accuracy == pytest.approx(10 / 80)  # the closed mouth is right on M only
    assert closed.confusion["open"]["closed"] == 20 and closed.per_class["closed"] == 1.0 and closed.per_class["open"] == 0.0


def test_change_offsets_count_misses_and_mean_what_they_say():
    t = truth_frames(PHONES, 100, 150)
    late = ["silence"] * 150
    for i in range(150):  # the same mouth 140 ms late
        late[i] = t[i - 14] if i >= 14 else "silence"
    off = change_offsets(late, t, 100)
    assert off.size == 5 and np.allclose(off, 140)
    assert offset_summary(off)["p90_ms"] == 140  # a 140 ms lag is reported as 140 ms, never "within 80"
    assert offset_summary(change_offsets(t, t, 100))["p90_ms"] == 0
    missing = [c if c != "fv" else "open" for c in t]  # the F is never shown
    off = change_offsets(missing, t, 100)
    assert np.isinf(off).sum() == 1 and offset_summary(off)["missed"] == 0.2


def test_one_output_change_answers_for_one_truth_change():
    """The offset of *each* mouth change: an output that opens once where the truth opens twice
    (200 ms apart, "other" between) made one of the two changes, not both (a nearest-change rule
    scored the first as made 200 ms late); flicker the truth does not have is counted apart."""
    truth = ["silence"] * 10 + ["other"] * 20 + ["open"] * 10 + ["other"] * 10 + ["open"] * 20 + ["silence"] * 10
    pred = ["silence"] * 10 + ["other"] * 40 + ["open"] * 20 + ["silence"] * 10  # the first vowel misheard
    off, spurious = change_pairs(pred, truth, 100)
    # other at 0.1 made; open at 0.3 missed (the output's open at 0.5 is the second vowel's);
    # other at 0.4 missed too (the output never went away from other); open at 0.5 made
    assert list(off) == [0.0, np.inf, np.inf, 0.0]
    assert spurious == 0 and list(change_offsets(pred, truth, 100)) == list(off)
    flicker = list(truth)
    flicker[60:62] = ["wide", "wide"]  # a 20 ms wide mouth inside the second vowel: two changes the truth lacks
    off, spurious = change_pairs(flicker, truth, 100)
    assert np.all(np.isfinite(off)) and spurious == 2
    summary = pooled([(flicker, truth), (truth, truth)], 100)[1]
    assert summary["spurious"] == pytest.approx(2 / 10) and summary["p90_ms"] == 0


def test_loudness_baseline_follows_the_level():
    rate = 16000
    x = np.concatenate([np.zeros(rate // 2), 0.5 * np.sin(np.arange(rate // 2) * 0.3), 0.1 * np.sin(np.arange(rate // 2) * 0.3)])
    lv = loudness_classes(x.astype(np.float32), rate, 100, 150)
    assert set(lv[5:45]) == {"closed"} and set(lv[60:95]) == {"open"} and set(lv[110:145]) == {"other"}

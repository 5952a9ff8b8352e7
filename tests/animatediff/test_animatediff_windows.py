"""The context-window planner: coverage, overlaps, per-step shifting, short takes, loops, weights."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stylize.context_windows import ContextWindows
from stylize.errors import LookError

configs = st.builds(
    lambda L, ov, shift, looped, fuse: ContextWindows(L, min(ov, L - 1), shift=shift, looped=looped, fuse=fuse),
    st.integers(1, 24), st.integers(0, 23), st.booleans(), st.booleans(), st.sampled_from(["flat", "pyramid", "gauss"]))


@settings(max_examples=150, deadline=None)
@given(cw=configs, n=st.integers(1, 120), step=st.integers(0, 60))
def test_windows_cover_every_frame_with_the_configured_overlap(cw, n, step):
    wins = cw.windows(n, step)
    covered = sorted({f for w in wins for f in w})
    assert covered == list(range(n))
    for w in wins:
        assert len(w) == min(cw.length, n)
        assert len(set(w)) == len(w)  # no frame twice in a window
    if n <= cw.length:
        assert wins == [tuple(range(n))]
        return
    if cw.looped:
        # neighbours (cyclically) share at least `overlap` frames, the wrap-around pair too
        for a, b in zip(wins, wins[1:]):
            assert len(set(a) & set(b)) >= cw.overlap
            assert (b[0] - a[0]) % n == cw.hop
        assert len(set(wins[-1]) & set(wins[0])) >= min(cw.overlap, cw.length)
    else:
        for a, b in zip(wins, wins[1:]):
            assert 0 < b[0] - a[0] <= cw.hop  # consecutive, sorted
            assert len(set(a) & set(b)) >= cw.overlap
        assert wins[0][0] == 0 and wins[-1][-1] == n - 1


@settings(max_examples=100, deadline=None)
@given(cw=configs, n=st.integers(1, 120), step=st.integers(0, 60))
def test_blend_weights_sum_to_one_per_frame(cw, n, step):
    total = np.zeros(n)
    for w, wt in cw.blend_plan(n, step):
        assert wt.shape == (len(w),) and np.all(wt > 0)
        np.add.at(total, list(w), wt)
    np.testing.assert_allclose(total, 1.0, atol=1e-9)


@settings(max_examples=100, deadline=None)
@given(L=st.integers(2, 32), ov=st.integers(0, 31), start=st.integers(0, 100))
def test_shifting_uses_every_offset_once_per_cycle(L, ov, start):
    cw = ContextWindows(L, min(ov, L - 1), shift=True)
    offsets = [cw.offset(s) for s in range(start, start + cw.hop)]
    assert sorted(offsets) == list(range(cw.hop))
    assert all(ContextWindows(L, min(ov, L - 1), shift=False).offset(s) == 0 for s in range(start, start + 5))


def test_borders_move_between_steps():
    cw = ContextWindows(8, 4)
    borders = [{w[0] for w in cw.windows(24, s)} - {0} for s in range(4)]
    assert borders[0] == {4, 8, 12, 16} and borders[1] != borders[0]
    assert cw.windows(24, 0) == [tuple(range(s, s + 8)) for s in (0, 4, 8, 12, 16)]


def test_looped_windows_wrap_around():
    cw = ContextWindows(8, 4, looped=True, shift=False)
    wins = cw.windows(24)
    assert len(wins) == 6 and wins[-1] == (20, 21, 22, 23, 0, 1, 2, 3)


def test_pyramid_weights_favour_the_centre():
    w = ContextWindows(8, 4, fuse="pyramid").position_weights(8)
    assert list(w) == [1, 2, 3, 4, 4, 3, 2, 1]
    g = ContextWindows(8, 4, fuse="gauss").position_weights(8)
    assert g[0] < g[3] and np.all(g > 0)


@pytest.mark.parametrize("kw,what", [({"length": 0}, "length"), ({"length": 8, "overlap": 8}, "overlap"),
                                     ({"length": 8, "overlap": -1}, "overlap"), ({"fuse": "median"}, "fuse")])
def test_bad_settings_are_refused_by_name(kw, what):
    with pytest.raises(LookError, match=what):
        ContextWindows(**kw)

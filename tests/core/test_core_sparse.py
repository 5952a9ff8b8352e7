"""Frame sets with holes (machinima.sparse) and the two-channel motion pass (machinima.passes)."""

import numpy as np

from machinima import sparse
from machinima.passes import PassSet


def test_describe_held_previous():
    assert sparse.describe(range(10)) is None
    assert sparse.describe([0, 2, 4, 6]) == "every 2nd frame (0..6, 4 frames)"
    assert sparse.describe([0, 3, 6]) == "every 3rd frame (0..6, 3 frames)"
    assert sparse.describe(range(10, 20)) == "frames 10..19 only"
    assert sparse.describe([0, 1, 5]) == "3 frames of 0..5 (3 missing)"
    assert sparse.step_of([0, 2, 4]) == 2 and sparse.step_of([0, 1, 3]) is None
    assert sparse.held([0, 2, 4]) == [0, 0, 2, 2, 4]
    assert sparse.held([2, 4], 0, 5) == [2, 2, 2, 2, 4, 4]  # before the first: the first
    assert sparse.previous([0, 2, 4], 4) == 2 and sparse.previous([0, 2, 4], 0) is None
    assert "holds each frame" in sparse.movie_note([0, 2]) and sparse.movie_note(range(3)) is None


def test_motion_pass_is_two_float_channels_read_back_as_hxwx2(tmp_path):
    import OpenEXR

    flow = np.random.default_rng(0).normal(0, 3, (6, 8, 2)).astype(np.float32)
    ps = PassSet.create(tmp_path, width=8, height=6, fps="24")
    path = ps.write("motion", 3, flow)
    ps.save()
    assert path.name == "000003.exr"
    with OpenEXR.File(str(path), separate_channels=True) as f:  # the file itself: R = dx, G = dy, nothing else
        ch = f.channels()
        assert sorted(ch) == ["G", "R"]
        assert np.array_equal(ch["R"].pixels, flow[..., 0]) and np.array_equal(ch["G"].pixels, flow[..., 1])
    back = PassSet.open(tmp_path).read("motion", 3)  # through OpenCV
    assert back.shape == (6, 8, 2) and np.array_equal(back, flow)
    assert not list(tmp_path.rglob(".*.exr"))  # no temp file left

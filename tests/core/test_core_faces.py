"""Faces at every shot size (machinima.faces): real portraits shipped in pip packages
(scikit-image's astronaut, matplotlib's Grace Hopper) composited small into 720p plates, so the
true face box is known: the close-up's mesh box, scaled and moved as the picture was."""

from __future__ import annotations

import numpy as np
import pytest

from machinima.faces import FaceFollower, FaceSearch, box_of, iou, merge_boxes, tile_levels


@pytest.fixture(scope="module")
def portraits() -> dict[str, np.ndarray]:
    import matplotlib.cbook as cbook
    import skimage.data
    from PIL import Image

    with cbook.get_sample_data("grace_hopper.jpg") as fh:
        grace = np.asarray(Image.open(fh).convert("RGB"))
    return {"astronaut": np.ascontiguousarray(skimage.data.astronaut()), "grace": np.ascontiguousarray(grace)}


@pytest.fixture(scope="module")
def search():
    s = FaceSearch()
    yield s
    s.close()


@pytest.fixture(scope="module")
def closeups(portraits, search) -> dict[str, np.ndarray]:
    """Each portrait's face box from its close-up (the detector's home ground)."""
    out = {}
    for name, img in portraits.items():
        f = search.find(img)
        assert len(f) == 1
        out[name] = f[0].box
    return out


def _plate(portraits, placements, size=(1280, 720)):
    """A 720p plate (scikit-image's coffee photo) with portraits pasted at (name, scale, x, y)."""
    import cv2
    import skimage.data

    plate = cv2.resize(skimage.data.coffee(), size, interpolation=cv2.INTER_AREA)
    for name, s, x, y in placements:
        m = np.float32([[s, 0, x], [0, s, y]])
        cv2.warpAffine(portraits[name], m, size, dst=plate, flags=cv2.INTER_AREA, borderMode=cv2.BORDER_TRANSPARENT)
    return plate


def _whole_frame_mesh(plate):
    """What lip sync did before: mediapipe's face mesh on the whole frame (its own short-range
    detector, made for faces close to the camera)."""
    import mediapipe as mp

    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1, refine_landmarks=True,
                                         min_detection_confidence=0.5) as fm:
        return fm.process(plate).multi_face_landmarks


def _scale_for(box, face_frac, height=720):
    return face_frac * height / (box[3] - box[1])


@pytest.mark.parametrize("shot, frac", [("medium", 0.10), ("wide", 0.05)])
def test_small_faces_are_found_where_they_are(portraits, closeups, search, shot, frac):
    for name, box in closeups.items():
        s = _scale_for(box, frac)
        x, y = 700.0, 260.0
        plate = _plate(portraits, [(name, s, x, y)])
        true = box * s + [x, y, x, y]
        assert _whole_frame_mesh(plate) is None, "the face mesh alone finds it: this plate is no test of small faces"
        found = search.find(plate)
        assert len(found) == 1, (shot, name, found)
        assert iou(found[0].box, true) > 0.6, (shot, name, found[0].box, true)
        assert found[0].mesh is not None and found[0].mesh.shape == (468, 3)


def test_two_people_in_a_wide_shot_and_no_one_in_an_empty_plate(portraits, closeups, search):
    sa, sg = _scale_for(closeups["astronaut"], 0.06), _scale_for(closeups["grace"], 0.06)
    plate = _plate(portraits, [("astronaut", sa, 150.0, 300.0), ("grace", sg, 850.0, 200.0)])
    found = sorted(search.find(plate), key=lambda f: f.box[0])
    assert len(found) == 2
    assert iou(found[0].box, closeups["astronaut"] * sa + [150, 300, 150, 300]) > 0.6
    assert iou(found[1].box, closeups["grace"] * sg + [850, 200, 850, 200]) > 0.6
    calls = search.detector_calls
    assert search.find(_plate(portraits, [])) == []
    assert search.detector_calls - calls == 1 + sum(len(lv) for lv in tile_levels(1280, 720, search.min_face))


def test_follower_keeps_a_small_moving_face_and_searches_only_when_needed(portraits, closeups):
    box = closeups["astronaut"]
    s = _scale_for(box, 0.08)
    follower = FaceFollower(redetect_every=30)
    try:
        for i in range(8):
            x, y = 300.0 + 9 * i, 250.0 + 2 * i
            found = follower(_plate(portraits, [("astronaut", s, x, y)]))
            assert len(found) == 1 and iou(found[0].box, box * s + [x, y, x, y]) > 0.6, i
        assert follower.searches == 1
    finally:
        follower.close()


def test_tiles_cover_every_face_down_to_the_smallest_and_boxes_merge():
    levels = tile_levels(1280, 720, 24)
    sides = [lv[0][2] for lv in levels]
    assert sides == [720, 360, 180]
    for lv in levels:  # tiles overlap by half: any face up to half a tile lies whole in one
        side = lv[0][2]
        xs = sorted({x for x, _, _ in lv})
        assert xs[0] == 0 and xs[-1] + side == 1280 and max(np.diff(xs)) <= side // 2
    assert sides[-1] * 16 / 192 <= 24  # the last level shows a 24 px face 16 px wide
    a, b = np.array([0, 0, 10, 10.0]), np.array([1, 1, 11, 11.0])
    inner = np.array([2, 2, 5, 5.0])  # part of a face seen in a small tile
    assert [s for _, s in merge_boxes([(a, 0.6), (b, 0.9), (a + 50, 0.7), (inner, 0.65)])] == [0.9, 0.7]
    assert np.allclose(box_of(np.array([[1, 2, 0], [3, 0, 5]])), [1, 0, 3, 2])

"""Lip sync's mouth finder at every shot size: a medium shot (face ~10% of a 720p frame) and a
wide one (~5%) of scikit-image's astronaut, composited small into a plate, so where her mouth is
is known from the close-up (mediapipe's face mesh on the whole frame found neither)."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.mark.parametrize("face_frac", [0.10, 0.05])
@pytest.mark.parametrize("video", [False, True])
def test_mouth_is_found_on_medium_and_wide_shots(face, face_frac, video):
    import cv2
    import skimage.data

    from lipsync.mouthwarp import CORNERS, FaceMesh

    mesh = FaceMesh(video=video)
    try:
        close = mesh.landmarks(face)
        assert close is not None
        height = close[:, 1].max() - close[:, 1].min()
        s = face_frac * 720 / height
        bg = cv2.resize(skimage.data.coffee(), (1280, 720), interpolation=cv2.INTER_AREA)
        for i in range(2):
            x, y = 600.0 + 5 * i, 300.0
            plate = bg.copy()
            cv2.warpAffine(face, np.float32([[s, 0, x], [0, s, y]]), (1280, 720), dst=plate, flags=cv2.INTER_AREA,
                           borderMode=cv2.BORDER_TRANSPARENT)
            lm = mesh.landmarks(plate)
            assert lm is not None and lm.shape == (478, 2), (face_frac, i)
            true = close[list(CORNERS)] * s + [x, y]
            err = np.linalg.norm(lm[list(CORNERS)] - true, axis=1).max()
            assert err < 0.06 * face_frac * 720, (face_frac, i, err)  # the mouth corners within 6% of the face height
    finally:
        mesh.close()

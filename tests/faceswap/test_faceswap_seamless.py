"""faceswap.seamless against the third party it replaces: OpenCV's seamlessClone (NORMAL_CLONE)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from faceswap.seamless import seamless_clone


def _case(h: int, w: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, int]]:
    """A face-like source (bright disk, ramps, noise) over a different destination, an elliptic
    mask as the merge makes them, and the centre the compositor passes (the mask box's)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    src = np.stack([xx * 255 / w, yy * 255 / h, (xx + yy) % 256], -1) + rng.normal(0, 5, (h, w, 3))
    cv2.circle(src, (w // 2, h // 2), min(h, w) // 6, (250, 240, 230), -1)
    dst = np.stack([200 - yy * 100 / h, 50 + xx * 100 / w, 128 + 0 * xx], -1) + rng.normal(0, 5, (h, w, 3))
    src, dst = (np.clip(a, 0, 255).astype(np.uint8) for a in (src, dst))
    mask = np.zeros((h, w), np.uint8)
    cv2.ellipse(mask, (w // 2, h // 2), (w // 3, h // 2 - h // 8), 0, 0, 360, 255, -1)
    ys, xs = np.nonzero(mask)
    return src, dst, mask, (int((xs.min() + xs.max() + 1) // 2), int((ys.min() + ys.max() + 1) // 2))


@pytest.mark.parametrize("h,w", [(40, 50), (211, 199), (257, 311), (300, 300)])  # box sides with large prime factors too
def test_seamless_clone_matches_opencv_within_one_level(h, w):
    src, dst, mask, center = _case(h, w, seed=h)
    want = cv2.seamlessClone(src, dst, mask.copy(), center, cv2.NORMAL_CLONE).astype(int)  # OpenCV erodes its mask argument
    kept = mask.copy()
    got = seamless_clone(src, dst, mask, center).astype(int)
    assert np.array_equal(mask, kept)  # ours leaves the caller's mask alone
    diff = np.abs(got - want)
    assert diff.max() <= 1 and diff.mean() < 0.05, (diff.max(), diff.mean())
    assert np.abs(got - dst.astype(int)).max() > 50  # the clone did change the destination (a test that can fail)


def test_seamless_clone_box_outside_the_destination_raises_as_opencv_does():
    src, dst, mask, _ = _case(60, 80, seed=1)
    with pytest.raises(cv2.error):
        cv2.seamlessClone(src, dst, mask.copy(), (2, 2), cv2.NORMAL_CLONE)
    with pytest.raises(ValueError):
        seamless_clone(src, dst, mask, (2, 2))


def test_seamless_clone_of_an_empty_mask_is_the_destination():
    src, dst, _, _ = _case(60, 80, seed=2)
    assert np.array_equal(seamless_clone(src, dst, np.zeros((60, 80), np.uint8), (40, 30)), dst)

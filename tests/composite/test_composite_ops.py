"""The pure array modules: keyer, colour match, grain, z-test, time map, depth model path."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from composite_scenes import green_screen

from composite import colormatch, grain, ztest
from composite.errors import PlateError, SettingsError
from composite.keyer import Keyer, KeySettings, estimate_screen, iou
from composite.timing import TimeMap


def test_keyer_green_screen_iou_and_spill():
    img, truth = green_screen()
    screen = estimate_screen(img, "green")
    keyer = Keyer(KeySettings(softness=0.8), screen)
    alpha, despilled = keyer.key(img)
    assert iou(alpha > 127, truth > 127) > 0.98
    roi = keyer.key_roi(img)
    assert roi is not None
    (x0, y0, x1, y1), a_roi, _ = roi
    full = np.zeros_like(alpha)
    full[y0:y1, x0:x1] = a_roi
    assert iou(full > 127, truth > 127) > 0.98  # the coarse box loses nothing
    edge = (truth > 40) & (truth < 215)
    g, rb = despilled[..., 1].astype(int), np.maximum(despilled[..., 0], despilled[..., 2]).astype(int)
    assert np.all(g[edge] <= rb[edge])  # no green left on the edge
    assert np.mean(img[..., 1][edge].astype(int) - np.maximum(img[..., 0], img[..., 2])[edge]) > 0  # there was some


def test_blue_key_and_bad_settings():
    img, truth = green_screen(screen=(30, 60, 200))
    alpha, _ = Keyer(KeySettings(screen="blue"), estimate_screen(img, "blue")).key(img)
    assert iou(alpha > 127, truth > 127) > 0.98
    with pytest.raises(SettingsError):
        KeySettings(screen="red")
    with pytest.raises(SettingsError):
        KeySettings(clip_black=0.8, clip_white=0.2)
    with pytest.raises(SettingsError, match="not green enough"):
        Keyer(KeySettings(), (120, 120, 120))
    with pytest.raises(PlateError):
        Keyer(KeySettings()).key(np.zeros((4, 4), np.float32))


def test_color_match_moves_lab_stats_to_target():
    rng = np.random.default_rng(2)
    plate = np.clip(rng.normal((150, 110, 90), (25, 20, 18), (120, 160, 3)), 0, 255).astype(np.uint8)
    target = np.clip(rng.normal((90, 110, 140), (15, 15, 20), (120, 160, 3)), 0, 255).astype(np.uint8)
    mask = np.zeros((120, 160), np.uint8)
    mask[20:100, 40:120] = 255
    src, dst = colormatch.lab_stats(plate, mask), colormatch.lab_stats(target)
    out = colormatch.apply_lut(plate, colormatch.transfer_lut(src, dst, strength=1.0))
    m_out, s_out = colormatch.lab_float_stats(out, mask)
    m_t, s_t = colormatch.lab_float_stats(target)
    m_in, _ = colormatch.lab_float_stats(plate, mask)
    assert np.all(np.abs(m_out - m_t) < 1.5), (m_out, m_t)
    assert np.all(np.abs(s_out - s_t) < 0.15 * s_t + 0.5), (s_out, s_t)
    assert np.abs(m_in - m_t).max() > 10  # it really moved
    half = colormatch.apply_lut(plate, colormatch.transfer_lut(src, dst, strength=0.5))
    m_half, _ = colormatch.lab_float_stats(half, mask)
    assert np.all(np.abs(m_half - (m_in + m_t) / 2) < 2.0)
    hist = colormatch.apply_lut(plate, colormatch.transfer_lut(src, dst, mode="histogram"))
    assert np.abs(colormatch.lab_float_stats(hist, mask)[0] - m_t).max() < 3.0
    assert colormatch.transfer_lut(src, dst, mode="none") is None
    with pytest.raises(SettingsError):
        colormatch.transfer_lut(src, dst, mode="rgb")


def test_grain_measure_and_match():
    rng = np.random.default_rng(3)
    clean = np.zeros((200, 300, 3), np.uint8)
    clean[:] = (120, 100, 80)
    clean[:, 150:] = (60, 70, 90)  # an edge that must not count as noise
    noisy = np.clip(clean + rng.normal(0, 4.0, clean.shape), 0, 255).astype(np.uint8)
    est = grain.measure_noise(noisy)
    assert np.all(np.abs(est - 4.0) < 0.6), est
    assert np.all(grain.measure_noise(clean) < 0.3)
    bank = grain.GrainBank((300, 200), grain.grain_to_add(est, grain.measure_noise(clean)), seed=1)
    grained = bank.add(clean, frame=5)
    assert np.all(np.abs(grain.measure_noise(grained) - est) < 0.8)
    assert not np.array_equal(bank.add(clean, 5), bank.add(clean, 6))  # frames differ
    assert np.array_equal(bank.add(clean, 5), grained)  # and are a pure function of the frame
    with pytest.raises(SettingsError):
        grain.GrainBank((10, 10), np.ones(3), grain_size=20)


def test_grain_add_is_the_clipped_integer_sum_at_both_ends():
    """The bank is added as two saturating uint8 passes (its positive and negative halves): the
    result must be exactly clip(rgb + grain, 0, 255) computed in integers, near black and white
    too, on the whole frame and on a box of it."""
    rng = np.random.default_rng(4)
    img = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    img[:10], img[10:20] = 0, 255  # saturation both ways
    img[20:30] = 3  # small values that a large negative grain takes below zero
    bank = grain.GrainBank((160, 120), np.array([6.0, 20.0, 60.0]), seed=2)
    for frame in (0, 7):
        truth = np.clip(img.astype(np.int32) + bank.window(frame, (0, 0, 160, 120)), 0, 255)
        assert np.array_equal(bank.add(img, frame), truth)
        box = (30, 40, 100, 110)
        sub = img[40:110, 30:100]
        truth = np.clip(sub.astype(np.int32) + bank.window(frame, box), 0, 255)
        assert np.array_equal(bank.add(sub, frame, box), truth)
    g = bank.window(0, (0, 0, 160, 120))
    assert (g < -3).any() and (g > 3).any()  # both halves of the bank are exercised


def test_grain_measured_on_row_bands_matches_the_whole_frame_and_a_downscale_does_not():
    """The set's noise is measured on a quarter of its rows (bands at full resolution): the
    same sigma as the whole frame, where measuring a half-size frame (the trivial way to cut
    the work) reports about half of it."""
    import cv2

    rng = np.random.default_rng(11)
    h, w = 540, 960
    clean = np.zeros((h, w, 3), np.float32)
    clean[:] = np.linspace(40, 200, w, dtype=np.float32)[None, :, None]  # a slow gradient
    clean[:, w // 2:] *= 0.6  # and an edge
    sigma = np.array([2.0, 3.0, 4.0])
    noisy = np.clip(clean + rng.normal(0, 1, clean.shape) * sigma, 0, 255).astype(np.uint8)
    whole, bands = grain.measure_noise(noisy), grain.measure_noise_bands(noisy)
    assert np.all(np.abs(bands - sigma) < 0.1 * sigma), bands
    assert np.all(np.abs(bands - whole) < 0.05 * sigma), (bands, whole)
    half = grain.measure_noise(cv2.resize(noisy, (w // 2, h // 2), interpolation=cv2.INTER_AREA))
    assert np.all(half < 0.7 * sigma), half
    assert np.array_equal(grain.measure_noise_bands(noisy[:100]), grain.measure_noise(noisy[:100]))  # too few rows: the whole frame


def test_ztest_soft_edge_is_exact_away_from_it():
    depth = np.full((40, 60), 10.0, np.float32)
    depth[:, :30] = 2.0
    vis = ztest.visibility(depth, 5.0, bias=0.0, edge_px=1.0)
    assert np.all(vis[:, :27] == 0) and np.all(vis[:, 33:] == 255)
    assert len(np.unique(vis[0, 27:33])) >= 4
    per_pixel = ztest.visibility(depth, np.full((40, 60), 5.0, np.float32), bias=0.0, edge_px=0)
    assert np.array_equal(per_pixel > 0, depth > 5.0)
    assert np.array_equal(ztest.occlude(np.full((40, 60), 255, np.uint8), vis), vis)


def test_time_map_offset_rates_and_timecode():
    tm = TimeMap.build(24, 24, offset=10)
    assert tm.frames_for(0) == [(10, 1.0)] and tm.frames_for(5) == [(15, 1.0)]
    tm = TimeMap.build(24, 48)
    assert [tm.frames_for(f)[0][0] for f in range(3)] == [0, 2, 4]
    tm = TimeMap.build(30, 24, resample="blend")
    (a, wa), (b, wb) = tm.frames_for(1)  # 1/30 s = 0.8 plate frames
    assert (a, b) == (0, 1) and abs(wb - 0.8) < 1e-9 and abs(wa - 0.2) < 1e-9
    tm = TimeMap.build(25, 25, take_timecode="01:00:00:10", plate_timecode="01:00:00:00")
    assert tm.frames_for(0) == [(10, 1.0)]
    assert TimeMap.build("29.97", "29.97").plate_fps == Fraction(30000, 1001)
    with pytest.raises(PlateError, match="shorter"):
        TimeMap.build(24, 24).check(list(range(10)), 5)
    with pytest.raises(SettingsError):
        TimeMap.build(24, 24, resample="cubic")


def test_light_estimated_from_set_rgb():
    from composite import lighting

    set_rgb = np.zeros((60, 80, 3), np.uint8)
    set_rgb[:] = 200
    set_rgb[:, 40:] = 80  # a shadow band at 0.4 of the light
    lit = lighting.factor_from_rgb(set_rgb, (20, 30))
    dark = lighting.factor_from_rgb(set_rgb, (60, 30))
    assert np.allclose(lit, 1.0, atol=0.01) and np.allclose(dark, 0.4, atol=0.01)
    assert tuple(lighting.apply_light(np.full((2, 2, 3), 200, np.uint8), dark)[0, 0]) == (80, 80, 80)
    lpass = np.full((60, 80, 3), 255, np.uint8)
    lpass[:, 40:] = (102, 128, 153)  # coloured shadow
    assert np.allclose(lighting.factor_from_pass(lpass, (60, 30)), [0.4, 128 / 255, 0.6])
    with pytest.raises(SettingsError):
        lighting.light_lut(np.array([1.0, -1.0, 1.0]))


def test_feet_are_median_smoothed_over_frames(tmp_path):
    import cv2
    from composite_scenes import make_plate

    from composite.keyer import alpha_rect
    from composite.pipeline import CompositePipeline, CompositeSettings
    from composite.plate import open_plate

    plate_dir = make_plate(tmp_path, [40, 42, 44, 46, 48])
    img = cv2.imread(str(plate_dir / "000002.png"), cv2.IMREAD_UNCHANGED)
    img[60:62, 80:82, 3] = 255  # a stray blob in frame 2's matte, below the feet
    cv2.imwrite(str(plate_dir / "000002.png"), img)
    plate = open_plate(plate_dir, fps=24)

    def matte(im):
        r = alpha_rect(im[..., 3])
        return r, im[r[1]:r[3], r[0]:r[2], 3], im[r[1]:r[3], r[0]:r[2], :3]

    frames = list(range(5))
    smooth = CompositePipeline(tmp_path, CompositeSettings(plate=plate_dir))._track_feet(plate, TimeMap.build(24, 24), frames, matte)
    assert [round(smooth[f][1]) for f in frames] == [52] * 5  # the blob (row 61) is voted out
    assert [smooth[f][0] for f in frames] == [39.5, 41.5, 43.5, 45.5, 47.5]  # steady motion is kept
    raw = CompositePipeline(tmp_path, CompositeSettings(plate=plate_dir, smooth_feet=1))
    assert raw.s.smooth_feet == 1

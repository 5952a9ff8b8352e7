"""Composite I/O: each plate frame decoded and keyed once (the feet tracking's mattes feed the
frame loop), the same pixels whether the mattes were kept or not; the light pass read ahead;
the feet tracked from a keyed band of the actor's box, against the full key's feet."""

from __future__ import annotations

import functools

import numpy as np

import composite.mattecache as mc
from composite.demo_scene import make_demo
from composite.pipeline import CompositeSettings, run_composite
from composite.placement import PlacementSettings
from composite.plate import SequencePlate
from machinima.imageseq import read_image


def _settings(plate, pos, step_id):
    return CompositeSettings(plate=plate, matte="green", placement=PlacementSettings(position=pos), video=False, step_id=step_id)


def test_plate_frames_decoded_once_and_pixels_same_as_without_kept_mattes(tmp_path, monkeypatch):
    take, plate, pos = make_demo(tmp_path, width=160, height=90, frames=6, plate_as="png")
    reads: list[int] = []
    real = SequencePlate.frame
    monkeypatch.setattr(SequencePlate, "frame", lambda self, i: (reads.append(i), real(self, i))[1])
    kept = run_composite(take, _settings(plate, pos, "kept"), progress=False)
    assert len(kept.report.done) == 6
    # the tracking decodes all 6, frame 0 once more for the screen colour and reference (+1 opening the plate), the loop none
    assert sorted(set(reads)) == list(range(6)) and reads.count(2) == 1 and len(reads) <= 6 + 2

    reads.clear()
    monkeypatch.setattr(mc, "BUDGET", 0)  # nothing kept: the loop decodes and keys every frame itself
    fresh = run_composite(take, _settings(plate, pos, "fresh"), progress=False)
    assert reads.count(2) == 2  # once in the tracking, once in the loop
    for f in range(6):
        ka = read_image(next((kept.out_dir / "rgb").glob(f"{f:06d}.*")))
        fa = read_image(next((fresh.out_dir / "rgb").glob(f"{f:06d}.*")))
        assert np.array_equal(ka, fa), f"frame {f} differs"


def test_matte_cache_is_bounded_and_gives_each_frame_back_once():
    m = (
        (0, 0, 10, 10),
        np.zeros((10, 10), np.uint8),
        np.zeros((10, 10, 3), np.uint8),
    )
    cache = mc.MatteCache(budget=2 * 400)  # room for two
    assert cache.put(0, m) and cache.put(1, None) and cache.put(2, m)
    assert not cache.put(3, m)  # over the budget: the loop keys frame 3 itself
    assert 3 not in cache and cache.bytes == 800
    assert cache.take(0).matte[1].shape == (10, 10) and cache.take(0) is None
    assert cache.take(1).matte is None  # kept: "no actor in this frame"
    cache.retain([5])
    assert len(cache) == 0 and cache.bytes == 0


def test_kept_matte_is_a_copy_not_a_view_of_the_plate_frame():
    frame = np.zeros((90, 160), np.uint8)
    cache = mc.MatteCache()
    cache.put(0, ((0, 0, 160, 10), frame[:10], frame[:10, :, None]))
    assert cache.take(0).matte[1].base is None


@functools.lru_cache(maxsize=1)
def _plates_1080p(n: int = 3):
    from composite.demo_scene import END, START, actor_frame, camera

    cam, rng = camera(1920, 1080), np.random.default_rng(7)
    return [actor_frame(cam, START + k / (n - 1) * (END - START), phase=k * 0.7, rng=rng)[0] for k in range(n)]


def test_feet_from_a_keyed_band_match_the_full_key_at_1080p():
    """Beyond the matte cache the tracking keys only the bottom of the actor's box; the feet stay
    within 0.5 px of the full key's (the placement's truth) on the demo actor at 1080p."""
    from composite.feettrack import SKIP, band_probe
    from composite.keyer import Keyer, KeySettings, estimate_screen
    from composite.placement import contact_point

    plates = _plates_1080p()
    keyer = Keyer(KeySettings(screen="green"), estimate_screen(plates[0], "green"))
    for i, img in enumerate(plates):
        rect, alpha, _ = keyer.key_roi(img)
        truth = contact_point(alpha, rect)
        feet, kept = band_probe(keyer, img)
        assert kept is SKIP, f"plate {i}: the band was not used"
        assert abs(feet[0] - truth[0]) <= 0.5 and abs(feet[1] - truth[1]) <= 0.5, (i, feet, truth)


def test_feet_near_the_band_top_are_keyed_on_the_whole_box():
    from composite.feettrack import band_probe
    from composite.keyer import Keyer, KeySettings, estimate_screen
    from composite.placement import contact_point

    img = _plates_1080p()[1]
    keyer = Keyer(KeySettings(screen="green"), estimate_screen(img, "green"))
    rect, alpha, fg = keyer.key_roi(img)
    feet, kept = band_probe(keyer, img, band=30, guard=40)  # any contact in a 30-row band is too near its top
    assert kept[0] == rect and np.array_equal(kept[1], alpha) and np.array_equal(kept[2], fg)
    assert feet == contact_point(alpha, rect)
    blank = np.zeros_like(img)
    blank[:] = (40, 190, 60)
    assert band_probe(keyer, blank) == (None, None)  # no actor: kept as "no actor", no feet


def test_tracking_beyond_the_matte_budget_keys_only_the_feet_and_places_the_actor_the_same(tmp_path, monkeypatch):
    import json

    import composite.feettrack as ft

    take, plate, pos = make_demo(tmp_path, width=640, height=360, frames=5, plate_as="png")
    kept = run_composite(take, _settings(plate, pos, "kept"), progress=False)
    bands: list[bool] = []
    real = ft.band_probe

    def probe(keyer, img, **kw):
        got = real(keyer, img, **kw)
        bands.append(got[1] is ft.SKIP)  # the band was trusted: nothing kept, the loop keys the frame
        return got

    monkeypatch.setattr(ft, "band_probe", probe)
    monkeypatch.setattr(mc, "BUDGET", 0)
    band = run_composite(take, _settings(plate, pos, "band"), progress=False)
    assert bands == [True] * 5  # every frame's feet from the band
    fk, fb = (json.loads((r.out_dir / "feet.json").read_text())["feet"] for r in (kept, band))
    assert fk.keys() == fb.keys() and len(fk) == 5
    assert all(abs(a - b) <= 0.5 for f in fk for a, b in zip(fk[f], fb[f])), (fk, fb)
    for f in range(5):  # the actor's coverage (the rgb carries each step's own watermark)
        ka = read_image(next((kept.out_dir / "alpha").glob(f"{f:06d}.*")))
        ba = read_image(next((band.out_dir / "alpha").glob(f"{f:06d}.*")))
        assert ka.max() == 255 and np.array_equal(ka, ba), f"frame {f} differs"


def test_first_passes_read_while_the_look_is_measured_and_not_on_resume(tmp_path, monkeypatch):
    """A fresh local run starts reading its first frames' passes before the look is measured
    (one core idle then), with the same pixels as reading them in the loop; a failed set-up
    stops those reads; a resumed run (a ledger exists) reads only what the set-up itself needs."""
    import threading
    import time

    import pytest

    import composite.pipeline as cp
    from composite.errors import SettingsError
    from machinima.frameio import Prefetch

    take, plate, pos = make_demo(tmp_path, width=160, height=90, frames=6, plate_as="png")
    reads: list[tuple[str, int]] = []
    real_read, real_look = cp._read, cp.measure_look
    monkeypatch.setattr(cp, "_read", lambda passes, name, f: (reads.append((name, f)), real_read(passes, name, f))[1])
    seen_before_look: list[set[int]] = []

    def look_after_reads(*a, **kw):  # the look waits (up to 5 s) for the loop's first frames to have been read
        t0 = time.monotonic()
        while not {1, 2} <= {f for n, f in reads if n == "rgb"} and time.monotonic() - t0 < 5:
            time.sleep(0.01)
        seen_before_look.append({f for n, f in reads if n == "rgb"})
        return real_look(*a, **kw)

    monkeypatch.setattr(cp, "measure_look", look_after_reads)
    early = run_composite(take, _settings(plate, pos, "early"), progress=False)
    assert {1, 2} <= seen_before_look[0]  # read before the look, not at the loop's first get
    monkeypatch.setattr(Prefetch, "warm", lambda self: None)  # reads start at the loop's first get, as before
    late = run_composite(take, _settings(plate, pos, "late"), progress=False)
    for f in range(6):
        a = read_image(next((early.out_dir / "rgb").glob(f"{f:06d}.*")))
        b = read_image(next((late.out_dir / "rgb").glob(f"{f:06d}.*")))
        assert np.array_equal(a, b), f"frame {f} differs"
    monkeypatch.undo()

    monkeypatch.setattr(cp, "_read", lambda passes, name, f: (reads.append((name, f)), real_read(passes, name, f))[1])
    reads.clear()
    again = run_composite(take, _settings(plate, pos, "early"), progress=False)
    assert not again.report.done and {f for n, f in reads if n == "rgb"} <= {0, 3, 5}  # inputs (0) and the look (middle, last)

    def failing_look(*a, **kw):
        raise SettingsError("colour match found fewer than 16 pixels to measure")

    monkeypatch.setattr(cp, "measure_look", failing_look)
    with pytest.raises(SettingsError):
        run_composite(take, _settings(plate, pos, "fails"), progress=False)
    assert not [t for t in threading.enumerate() if t.name.startswith("prefetch")]  # the early reads were stopped

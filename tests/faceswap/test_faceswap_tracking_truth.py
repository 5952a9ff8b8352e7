"""Tracking truth: scikit-image's astronaut moved over a 1080p plate along known paths (a still
shot with sub-pixel shake, steady motion, a sudden start and stop), so the face's true landmarks
are known on every frame. Each smoothing's figures sit beside no smoothing's, from the same
detections; the merged face, re-detected, must sit on the true face on every frame."""

from __future__ import annotations

import numpy as np
import pytest

from faceswap import truth as T
from faceswap.smoothing import smooth_sequence


@pytest.fixture(scope="module")
def plate():
    return T.portrait(), T.background()


@pytest.fixture(scope="module")
def runs(plate):
    """path -> (path, frames, raw tracked landmarks); and the reference landmarks."""
    pic, bg = plate
    out = {}
    for path in (T.still_shake(24), T.steady(5.0, 20), T.steady(20.0, 20), T.start_stop(15.0, still=6, moving=8)):
        frames = [T.render(pic, bg, o) for o in path.offsets]
        out[path.name] = (path, frames, T.track(frames))
    ref = T.reference(out["still"][2], out["still"][0].offsets)
    return out, ref


def _figures(runs, method):
    res, ref = runs
    fig = {}
    for name, (path, _, raw) in res.items():
        fig[name] = T.figures(smooth_sequence(raw, method, fps=24), T.truth(ref, path), path)
    return fig


def test_each_smoothing_against_the_truth_beside_no_smoothing(runs):
    fig = {m: _figures(runs, m) for m in ("none", "zero-lag", "one-euro")}
    print(fig)  # the figures, side by side, in the test log
    z, live, raw = fig["zero-lag"], fig["one-euro"], fig["none"]
    # offline (merge's default): less jitter than the detector, no lag, no overshoot, no bad frame
    assert z["still"]["jitter_px"] < 0.3 and z["still"]["jitter_px"] < raw["still"]["jitter_px"]
    assert abs(z["steady-5"]["lag_frames"]) < 0.5 and abs(z["steady-20"]["lag_frames"]) < 0.5
    assert z["start-stop-15"]["overshoot_px"] < 2.0
    assert all(f["worst_px"] < 2.0 for f in z.values()), z
    # live (causal): keeps up within half a frame, no overshoot, no more jitter than raw
    assert live["steady-5"]["lag_frames"] < 0.5 and live["steady-20"]["lag_frames"] < 0.5
    assert live["start-stop-15"]["overshoot_px"] < 2.0
    assert live["still"]["jitter_px"] <= raw["still"]["jitter_px"] + 0.02


def test_merged_face_lands_on_the_true_face_on_every_frame(tmp_path, runs):
    """Merge with its default smoothing, a network that always returns the plate face at rest:
    the pasted face, found again by a fresh detection on each merged frame, sits within 2 px RMS
    of the true landmarks on every frame of the start-stop path (still, moving, both corners)."""
    from faceswap.backends import get_backend
    from faceswap.merge import MergeOptions, merge
    from machinima.imageseq import list_frames, read_image

    from faceswap_testdata import write_clip

    res, ref = runs
    still_path, still_frames, _ = res["still"]
    swap = T.FixedFace(still_frames[0], T.truth(ref, still_path)[0], "whole", 256)
    path, frames, _ = res["start-stop-15"]
    write_clip(tmp_path / "clip", frames)
    opts = MergeOptions(blend="alpha", color="none", res=256, face_type="whole", batch=8)  # default smoothing
    r = merge(tmp_path / "clip", None, out=tmp_path / "out", options=opts, swapper=swap, override="test", production="t",
              rights_store=tmp_path / "rights", video=False, progress=False)
    assert r.done == len(path) and not r.no_face
    merged = [read_image(p) for _, p in sorted(list_frames(tmp_path / "out" / "rgb").items())]
    assert np.abs(merged[-1].astype(int) - frames[-1]).max() > 10  # the face was pasted, not left alone
    be = get_backend("mediapipe")
    try:
        found = np.stack([be.detect(m)[0].landmarks for m in merged])
    finally:
        be.close()
    per_frame = np.sqrt(((found - T.truth(ref, path)) ** 2).sum(-1).mean(-1))
    print("merged face, re-detected, RMS px per frame:", per_frame.round(2).tolist())
    assert per_frame.max() < 2.0

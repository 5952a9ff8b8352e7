import numpy as np
import pytest

from stylize import controls as C
from stylize import flow as F
from stylize.errors import ControlError

from stylize_helpers import texture, translating


def test_depth_control_is_normalized_inverse_depth():
    d = np.array([[1.0, 2.0, 4.0, 1.0e4]], np.float32)
    out = C.depth_control(d, near=1.0, far=4.0)
    assert out.shape == (1, 4, 3) and out.dtype == np.uint8
    v = out[0, :, 0].astype(int)
    assert v[0] == 255 and v[2] == 0 and v[3] == 0  # near bright, far dark, sky black
    assert v[1] == 85  # linear in 1/d: (1/2 - 1/4) / (1/1 - 1/4) * 255
    # a fixed range keeps the map steady when the frame's own range changes
    a = C.depth_control(np.full((4, 4), 3.0, np.float32), 1.0, 10.0)
    b = C.depth_control(np.array([[3.0, 3.0], [9.0, 1.5]], np.float32).repeat(2, 0).repeat(2, 1), 1.0, 10.0)
    assert a[0, 0, 0] == b[0, 0, 0]
    near, far = C.depth_range([d])
    assert 1.0 <= near < far <= 4.0
    with pytest.raises(ControlError):
        C.depth_control(np.zeros((2, 2, 2, 2)))


def test_image_controls_shapes():
    img = texture(32, 48)
    for kind in ("canny", "lineart", "softedge", "rgb"):
        out = C.image_control(kind, img)
        assert out.shape == (32, 48, 3) and out.dtype == np.uint8
    assert C.image_control("softedge", img).max() == 255
    assert C.mask_control(np.eye(4, dtype=np.uint8) * 255).shape == (4, 4, 3)
    with pytest.raises(ControlError):
        C.image_control("depth", img)


def test_flow_recovers_a_shift_and_warps_back():
    a, b = translating(2, 48, 48, dx=2)
    f = F.flow(a, b)  # a(x) = b(x - 2)
    assert abs(float(np.median(f[8:-8, 8:-8, 0])) + 2.0) < 0.3
    assert abs(float(np.median(f[8:-8, 8:-8, 1]))) < 0.3
    back = F.warp(b, f)
    assert np.abs(back[8:-8, 8:-8].astype(int) - a[8:-8, 8:-8].astype(int)).mean() < 6


def test_visibility_marks_pixels_that_leave_the_frame():
    a, b = translating(2, 48, 48, dx=4)
    vis = F.visibility(F.flow(a, b), F.flow(b, a))
    assert vis[:, :2].mean() < 0.5  # left edge of a left the frame in b
    assert vis[8:-8, 8:-8].mean() > 0.8


def test_propagate_between_keyframes_follows_motion():
    frames = translating(5, 48, 48, dx=2)
    styl = [255 - f for f in frames]  # a "style" that we can predict
    mid = F.propagate(frames[2], (frames[0], styl[0]), (frames[4], styl[4]), 0.5)
    assert np.abs(mid[8:-8, 8:-8].astype(int) - styl[2][8:-8, 8:-8].astype(int)).mean() < 8
    assert np.abs(mid.astype(int) - styl[0].astype(int)).mean() > np.abs(mid.astype(int) - styl[2].astype(int)).mean()


def test_keyframe_plans():
    seg = list(range(10))
    assert F.plan_keyframes(seg, "every") == seg
    assert F.plan_keyframes(seg, "hold", every=4) == [0, 4, 8]
    assert F.plan_keyframes(seg, "propagate", every=4) == [0, 4, 8, 9]
    motion = {f: (10.0 if f >= 6 else 1.0) for f in seg}
    keys = F.plan_keyframes(seg, "propagate", adaptive=True, motion=motion, motion_px=10.0, max_gap=8)
    assert keys[0] == 0 and keys[-1] == 9 and {6, 7, 8} <= set(keys)  # fast motion -> dense keys
    assert F.segments([0, 1, 2, 3, 5, 6], {2}, {6}) == [[0, 1], [2, 3], [5], [6]]


def test_cut_distance_and_colour_match():
    a, b = texture(32, 32, 1), texture(32, 32, 1)
    red = np.zeros((32, 32, 3), np.uint8)
    red[..., 0] = 200
    assert F.cut_distance(F.histogram(a), F.histogram(b)) < 0.05
    assert F.cut_distance(F.histogram(a), F.histogram(red)) > 0.5
    dark = (a * 0.4).astype(np.uint8)
    m = F.match_color(dark, [F.color_stats(a)])
    assert abs(F.color_stats(m)[0, 0] - F.color_stats(a)[0, 0]) < abs(F.color_stats(dark)[0, 0] - F.color_stats(a)[0, 0]) / 4


def test_pipeline_cuts_at_shot_changes_and_plans_adaptive_keyframes():
    from stylize.engines import ClassicalEngine
    from stylize.look import Look
    from stylize.pipeline import StylizePipeline
    from stylize.sources import ArraySource

    a = translating(6, 32, 32, dx=1, seed=1)
    red = np.zeros((32, 32, 3), np.uint8)
    red[..., 0] = 220
    b = [np.clip(red.astype(int) + (f // 2), 0, 255).astype(np.uint8) for f in translating(6, 32, 32, dx=3, seed=2)]
    look = Look.from_doc({"engine": "classical", "cadence": {"mode": "propagate", "every": 4}})
    pipe = StylizePipeline(look, ClassicalEngine(look), ArraySource(a + b))
    plan = pipe.plan()
    assert [[s[0], s[-1]] for s in plan.segments] == [[0, 5], [6, 11]]
    assert 6 in plan.keyframes and 5 in plan.keyframes  # a cut ends one segment and starts the next
    assert all(plan.roles[f].k0 >= 6 for f in range(7, 12) if plan.roles[f].kind == "fill")  # nothing crosses the cut
    out = pipe()
    assert len(out) == 12
    fast = Look.from_doc({"engine": "classical", "cadence": {"mode": "propagate", "adaptive": True, "motion_px": 2.5, "max_gap": 10, "detect_cuts": False}})
    slow = translating(8, 32, 32, dx=0, seed=3)
    moving = translating(8, 32, 32, dx=2, seed=3)
    k_slow = StylizePipeline(fast, ClassicalEngine(fast), ArraySource(slow)).plan().keyframes
    k_move = StylizePipeline(fast, ClassicalEngine(fast), ArraySource(moving)).plan().keyframes
    assert len(k_move) > len(k_slow) == 2


def test_skip_static_reuses_the_previous_keyframe_when_nothing_changed():
    from stylize.engines import ClassicalEngine
    from stylize.look import Look
    from stylize.pipeline import StylizePipeline
    from stylize.sources import ArraySource

    look = Look.from_doc({"engine": "classical", "cadence": {"mode": "every", "skip_static": 2.0, "init_blend": 0.0, "detect_cuts": False}})
    eng = ClassicalEngine(look)
    eng.batch = 1
    still = [texture(32, 32, 4)] * 5
    pipe = StylizePipeline(look, eng, ArraySource(still))
    out = pipe()
    assert pipe.stats["diffused"] == 1 and pipe.stats["skipped_static"] == 4
    assert np.abs(out[4].astype(int) - out[0].astype(int)).mean() < 1.0
    brighter = [np.clip(texture(32, 32, 4).astype(int) + 25 * i, 0, 255).astype(np.uint8) for i in range(5)]
    pipe = StylizePipeline(look, eng, ArraySource(brighter))
    pipe()
    assert pipe.stats["diffused"] == 5

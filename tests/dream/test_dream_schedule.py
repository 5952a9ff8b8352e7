import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from stylize.dream_schedule import ScheduleError, parse_expression, parse_prompt_schedule, parse_schedule, seeds
from stylize.dream_warp import affine_2d, intrinsics_from_fov, relative_motion, rotation_matrix, warp_3d


def test_documented_forms():
    s = parse_schedule("0:(1.0), 30:(1.02+0.01*sin(t/4))")
    assert s.at(0) == 1.0
    assert s.at(15) == pytest.approx(1.0 + 0.5 * (1.02 + 0.01 * np.sin(15 / 4) - 1.0))
    assert s.at(45) == pytest.approx(1.02 + 0.01 * np.sin(45 / 4))  # keeps following t after the last key
    assert parse_schedule("0:(0), 10:(10)", "step").at(9) == 0
    assert parse_schedule(0.5).at(100) == 0.5
    cubic = parse_schedule("0:(0), 10:(10), 20:(0)", "cubic")
    assert cubic.at(10) == pytest.approx(10) and cubic.at(5) > 5  # overshoots linear toward the peak
    assert parse_schedule("0: (-2**2)").at(0) == -4  # unary minus binds looser than **, as in Python
    assert parse_schedule("0:(clamp(t, 2, 5) + max(1, 2) + pi*0)").at(9) == 7
    prompt = parse_prompt_schedule("0: a forest at dawn | 48: a flooded city")
    assert prompt(47) == "a forest at dawn" and prompt(48) == "a flooded city"


@pytest.mark.parametrize(
    "text, match",
    [
        ('0:(__import__("os"))', "position 14"),
        ("0:(__import__(1))", "name '__import__' at position 3"),
        ("0:(t.real)", "'.' at position 4"),
        ("0:(2**1000)", "exponent"),
        ("0:(pow(t, 99))", "exponent of pow"),
        ("0:(os)", "name 'os'"),
        ("0:(sin)", "must be called"),
        ("0:(min(1))", "takes 2"),
        ("0:(1+)", "unexpected"),
        ("0:(1), 0:(2)", "twice"),
        ("0:(1), x:(2)", "expected 'frame:"),
        ("0:((1)", "unbalanced"),
        ("0:(" + "(" * 60 + "1" + ")" * 60 + ")", "nested too deeply"),
        ("", "empty"),
        ("0:(1/0)", "not a finite number at frame 0"),
        ("0:(log(t-5))", "not a finite number at frame 0"),
    ],
)
def test_hostile_and_broken_schedules_refused_with_position(text, match):
    with pytest.raises(ScheduleError, match=match):
        parse_schedule(text)(np.arange(10))


def _expr():
    leaf = st.one_of(st.just("t"), st.floats(-100, 100, allow_nan=False).map(lambda v: f"{v:.4f}"), st.just("pi"))
    return st.recursive(
        leaf,
        lambda sub: st.one_of(
            st.tuples(sub, st.sampled_from(["+", "-", "*"]), sub).map(lambda x: f"({x[0]} {x[1]} {x[2]})"),
            st.tuples(st.sampled_from(["sin", "cos", "abs", "atan", "floor"]), sub).map(lambda x: f"{x[0]}({x[1]})"),
            st.tuples(st.sampled_from(["min", "max"]), sub, sub).map(lambda x: f"{x[0]}({x[1]}, {x[2]})"),
            sub.map(lambda x: f"-{x}"),
        ),
        max_leaves=12,
    )


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 500), _expr()), min_size=1, max_size=5, unique_by=lambda kv: kv[0]),
       st.sampled_from(["linear", "cubic", "step"]))
def test_valid_schedules_always_evaluate(entries, interp):
    text = ", ".join(f"{k}:({e})" for k, e in entries)
    values = parse_schedule(text, interp)(np.arange(0, 600, 7))
    assert np.isfinite(values).all()


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_garbage_raises_only_schedule_error(text):
    try:
        parse_expression(text)
    except ScheduleError:
        pass


def test_seed_behaviours():
    f = np.arange(5)
    assert list(seeds("fixed", 7, f)) == [7] * 5
    assert list(seeds("iter", 7, f)) == [7, 8, 9, 10, 11]
    r = seeds("random", 7, f)
    assert list(r) == list(seeds("random", 7, f)) and len(set(r)) == 5
    assert list(seeds("schedule", 0, f, parse_schedule("0:(100), 4:(104)"))) == [100, 101, 102, 103, 104]
    with pytest.raises(ScheduleError):
        seeds("chaos", 0, f)


def _square(h=60, w=80):
    img = np.zeros((h, w, 3), np.uint8)
    img[20:40, 30:50] = 255
    return img


def _box(img):
    ys, xs = np.nonzero(img[..., 0] > 128)
    return xs.min(), xs.max(), ys.min(), ys.max()


def test_affine_2d_matches_known_transform():
    assert _box(affine_2d(_square(), tx=5, ty=-3, border="black")) == (35, 54, 17, 36)
    x0, x1, y0, y1 = _box(affine_2d(_square(), zoom=2.0, border="black"))
    assert (x0, x1) == (20, 59) and (y0, y1) == (10, 49)  # doubled about the centre (40, 30)


def test_warp_3d_matches_pinhole_geometry():
    K = intrinsics_from_fov(80, 60, 60)
    depth = np.full((60, 80), 4.0)
    out = warp_3d(_square(), depth, K, np.eye(3), np.array([0.4, 0.0, 0.0]), border="black")
    x0, x1, _, _ = _box(out)
    shift = K[0, 0] * 0.4 / 4.0
    assert abs(x0 - (30 + shift)) <= 1 and abs(x1 - (49 + shift)) <= 1
    # a pure rotation about the vertical axis shifts a far plane by f*tan(angle), whatever its depth
    R = rotation_matrix(0, -5, 0)
    for d in (4.0, 40.0):
        x0, _, _, _ = _box(warp_3d(_square(), np.full((60, 80), d), K, R, np.zeros(3), border="black"))
        assert abs(x0 - (30 + K[0, 0] * np.tan(np.radians(5)))) <= 1.5
    with pytest.raises(ScheduleError, match="depth map"):
        warp_3d(_square(), np.ones((10, 10)), K, np.eye(3), np.zeros(3))


def test_relative_motion_from_a_camera_track():
    from machinima.passes import look_at

    a = look_at(np.array([0, 1.6, 5.0]), np.array([0, 1.6, 0]))
    b = look_at(np.array([0.5, 1.6, 5.0]), np.array([0.5, 1.6, 0]))  # dolly right 0.5 m
    R, t = relative_motion(a, b)
    assert np.allclose(R, np.eye(3)) and np.allclose(t, [-0.5, 0, 0])  # the world moves left in the new view

"""Timing: ordering, drop/dup/out-of-order/late counters, jitter buffer, slerp gap fill,
One-Euro smoothing, health figures; calibration and global->local retargeting."""

from __future__ import annotations

import numpy as np
import pytest

from machinima import quat, skeleton
from mocap.errors import CalibrationError
from mocap.frames import Frame
from mocap.retarget import Calibration, fk, local_from_global
from mocap.synthetic import synthetic_poses
from mocap.timing import Health, OneEuro, StreamTiming

MS = 1_000_000


def _frame(k, recv_ms, *, seq=True, pose=None):
    p = synthetic_poses(k / 120, motion="walk", seed=1)[0] if pose is None else pose
    return Frame("a", "test", int(recv_ms * MS), p, None if seq else k / 120, k if seq else None)


def test_counters_with_sequence_numbers():
    st = StreamTiming(fill_gaps=False)
    out = []
    for k, at in [(1, 0), (2, 8), (2, 9), (5, 30), (3, 31), (6, 40)]:
        st.push(_frame(k, at))
        out += st.pop_ready(int(at * MS))
    assert [f.seq for f in out] == [1, 2, 5, 6]
    c = st.counts
    # 3 came late (recorded, not live): only 4 was dropped
    assert c["duplicates"] == 1 and c["late"] == 1 and c["dropped"] == 1 and c["received"] == 6


def test_jitter_buffer_reorders_within_delay():
    st = StreamTiming(delay_ms=10, fill_gaps=False)
    for k, at in [(1, 0), (3, 1), (2, 2), (4, 20)]:
        st.push(_frame(k, at))
    out = st.pop_ready(12 * MS)
    assert [f.seq for f in out] == [1, 2, 3]
    assert st.counts["out_of_order"] == 1 and st.counts["late"] == 0
    assert [f.seq for f in st.pop_ready(31 * MS)] == [4]


def test_sender_clock_orders_and_maps_stamps():
    st = StreamTiming(delay_ms=5, fill_gaps=False)
    for k, at in [(0, 100.0), (1, 108.9), (3, 125.5), (2, 126.0)]:
        st.push(_frame(k, at, seq=False))
    out = st.flush()
    assert [round(f.sender_time_s * 120) for f in out] == [0, 1, 2, 3]
    steps = np.diff([f.t_ns for f in out]) / MS
    np.testing.assert_allclose(steps, 1000 / 120, atol=1e-3)  # jitter removed from the stamps
    assert max(st.latency_ns) == pytest.approx(126.0 * MS - (100 * MS + 2 / 120 * 1e9), abs=2)
    assert st.counts["reanchored"] == 0


def test_gap_fill_slerps_short_gaps_only():
    st = StreamTiming(max_gap_ms=50)
    a, b = _frame(1, 0), _frame(4, 25)
    st.push(a)
    st.push(b)
    out = st.flush()
    assert [f.interpolated for f in out] == [False, True, True, False]
    mid = out[1]
    expect = quat.slerp(a.pose[:, 3:7], b.pose[:, 3:7], 1 / 3)
    np.testing.assert_allclose(np.abs(np.sum(mid.pose[:, 3:7] * expect, axis=-1)), 1.0, atol=1e-5)
    assert st.counts["filled"] == 2 and st.counts["dropped"] == 2
    st2 = StreamTiming(max_gap_ms=10)
    st2.push(_frame(1, 0))
    st2.push(_frame(20, 160))
    assert [f.interpolated for f in st2.flush()] == [False, False]  # too long: not invented


def test_one_euro_smooths_jitter_and_follows_motion():
    rng = np.random.default_rng(0)
    base = skeleton.rest_pose()
    flt = OneEuro(min_cutoff=1.0, beta=0.0)
    raw, out = [], []
    for k in range(240):
        p = base.copy()
        p[0, :3] += rng.normal(0, 0.01, 3)
        raw.append(p[0, :3])
        out.append(flt(p, int(k * 1e9 / 120))[0, :3])
    assert np.std(np.array(out[60:]), axis=0).max() < 0.3 * np.std(np.array(raw[60:]), axis=0).max()
    flt = OneEuro(min_cutoff=1.0, beta=5.0)
    for k in range(240):
        p = base.copy()
        p[0, 0] = 0.0 if k < 120 else 1.0
        y = flt(p, int(k * 1e9 / 120))
    assert y[0, 0] == pytest.approx(1.0, abs=0.02)
    assert np.allclose(np.linalg.norm(y[:, 3:7], axis=1), 1.0, atol=1e-5)


def test_health_summary():
    h = Health("vmc")
    st = StreamTiming(fill_gaps=False)
    for k in (1, 2, 4):
        st.push(_frame(k, k * 8))
        h.saw_packet(100, k * 8 * MS)
        h.saw_frame("a", k * 8 * MS)
    st.flush()
    s = h.summary({"a": st}, now_ns=40 * MS)
    assert s["frames"] == 3 and s["loss_pct"] == pytest.approx(25.0) and s["performers"] == ["a"]
    assert s["last_seen_s"] == pytest.approx(0.008)


def test_local_from_global_round_trip_and_missing_parents():
    pose = synthetic_poses(0.4, motion="wave", seed=3)[0]
    gp, gr = fk(pose)
    back = local_from_global(gp, gr)
    np.testing.assert_allclose(back[:, :3], pose[:, :3], atol=1e-5)
    np.testing.assert_allclose(np.abs(np.sum(back[:, 3:7] * pose[:, 3:7], axis=-1)), 1.0, atol=1e-5)
    present = np.ones(len(skeleton.BONES), bool)
    present[skeleton.BONE_INDEX["RightLowerArm"]] = False  # a hole in the chain
    part = local_from_global(gp, gr, present)
    gq, _ = fk(part)
    i = skeleton.BONE_INDEX["RightHand"]
    np.testing.assert_allclose(gq[i], gp[i], atol=1e-5)


def test_calibration_capture_apply_save_load(tmp_path):
    rng = np.random.default_rng(2)
    tpose = skeleton.rest_pose()
    tpose[:, 3:7] = quat.normalize(rng.normal(size=(55, 4)))  # a suit whose bone axes differ
    cal = Calibration.capture("ana", np.stack([tpose, tpose]))
    np.testing.assert_allclose(np.abs(cal.apply(tpose)[:, 6]), 1.0, atol=1e-5)
    turned = tpose.copy()
    turn = quat.from_axis_angle(np.array([0, 1.0, 0]), 0.5)
    turned[0, 3:7] = quat.multiply(turn, tpose[0, 3:7])  # the whole body turns
    out = cal.apply(turned)
    np.testing.assert_allclose(np.abs(np.sum(out[0, 3:7] * turn, axis=-1)), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.abs(out[1:, 6]), 1.0, atol=1e-5)
    path = cal.save(tmp_path / "ana.json")
    again = Calibration.load(path)
    np.testing.assert_allclose(again.rest_rot, cal.rest_rot, atol=1e-7)
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(CalibrationError):
        Calibration.load(tmp_path / "bad.json")
    with pytest.raises(CalibrationError):
        Calibration.load(tmp_path / "none.json")
    with pytest.raises(CalibrationError):
        Calibration.capture("x", np.zeros((0, 55, 7)))


from hypothesis import given, settings, strategies as st  # noqa: E402


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 40), max_size=60), st.sampled_from([0.0, 5.0]), st.booleans())
def test_never_twice_never_out_of_order(seqs, delay, with_seq):
    """Whatever order (and repetition) frames arrive in, live output is strictly increasing
    and every arrival is accounted for."""
    pose = skeleton.rest_pose()
    st_ = StreamTiming(delay_ms=delay, fill_gaps=False)
    out = []
    for n, k in enumerate(seqs):
        f = Frame("a", "t", (n + 1) * MS, pose, None if with_seq else k / 120, k if with_seq else None)
        st_.push(f)
        out += st_.pop_ready((n + 1) * MS)
    out += st_.flush()
    keys = [f.seq if with_seq else f.sender_time_s for f in out]
    assert keys == sorted(set(keys))
    c = st_.counts
    assert c["received"] == len(seqs)
    assert len(out) + c["duplicates"] + c["late"] == len(seqs)


def test_one_euro_settings_per_bone_fingers_and_hips_differ():
    """Each bone is filtered with its own settings: a finger and the Hips come out exactly as
    a plain filter with their settings, and differently from the body's."""
    from mocap.timing import DEFAULT_BONE_SMOOTHING

    rng = np.random.default_rng(4)
    finger, hips, arm = skeleton.BONE_INDEX["LeftIndexProximal"], skeleton.BONE_INDEX["Hips"], skeleton.BONE_INDEX["LeftUpperArm"]
    per_bone = OneEuro(min_cutoff=1.0, beta=0.5)
    plain = {name: OneEuro(bones={}, **DEFAULT_BONE_SMOOTHING[name]) for name in ("Hips", "fingers")}
    body = OneEuro(min_cutoff=1.0, beta=0.5, bones={})
    for k in range(120):
        p = skeleton.rest_pose()
        p[:, :3] += rng.normal(0, 0.01, (55, 3)) + 0.02 * k
        t = int(k * 1e9 / 120)
        out = per_bone(p, t)
        want_h, want_f, want_b = plain["Hips"](p, t), plain["fingers"](p, t), body(p, t)
    np.testing.assert_allclose(out[hips], want_h[hips], atol=1e-6)
    np.testing.assert_allclose(out[finger], want_f[finger], atol=1e-6)
    np.testing.assert_allclose(out[arm], want_b[arm], atol=1e-6)
    assert not np.allclose(out[finger, :3], want_b[finger, :3], atol=1e-4) and not np.allclose(out[hips, :3], want_b[hips, :3], atol=1e-4)
    with pytest.raises(ValueError, match="unknown bone or group"):
        OneEuro(bones={"Tail": {"beta": 1.0}})
    with pytest.raises(ValueError, match="min_cutoff and beta"):
        OneEuro(bones={"fingers": {"gamma": 1.0}})


def test_smooth_bone_flag_errors_are_one_line(capsys):
    from machinima import cli

    for flag, said in (("Tail=1,1", "unknown bone or group 'Tail'"), ("fingers=0.5", "NAME=MIN_CUTOFF,BETA")):
        with pytest.raises(SystemExit) as ei:
            cli.main(["mocap", "listen", "--vmc", "0", "--smooth-bone", flag])
        err = capsys.readouterr().err
        assert ei.value.code == 1 and said in err and "Traceback" not in err, err

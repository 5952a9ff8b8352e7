import numpy as np
import pytest

from machinima import quat, skeleton
from machinima.errors import SkeletonError


def test_bone_set_is_unity_humanoid():
    assert len(skeleton.BONES) == 55
    for name in ("Hips", "Spine", "Chest", "UpperChest", "Neck", "Head", "LeftUpperArm", "RightLittleDistal", "Jaw"):
        assert name in skeleton.BONE_INDEX
    # parents come before children in ORDER
    seen = set()
    for i in skeleton.ORDER:
        p = skeleton.PARENTS[i]
        assert p < 0 or p in seen
        seen.add(i)


def test_rest_pose_fk_heights():
    pos, rot = skeleton.forward_kinematics(skeleton.rest_pose())
    head = pos[skeleton.bone_index("Head")]
    foot = pos[skeleton.bone_index("LeftFoot")]
    assert 1.5 < head[1] < 1.8
    assert abs(foot[1] - 0.08) < 0.05
    assert np.allclose(rot, [0, 0, 0, 1])


def test_unknown_bone_and_bad_shapes():
    with pytest.raises(SkeletonError, match="unknown bone"):
        skeleton.bone_index("Tail")
    with pytest.raises(SkeletonError, match="shape"):
        skeleton.check_pose(np.zeros((54, 7)))
    bad = skeleton.rest_pose()
    bad[0, 0] = np.nan
    with pytest.raises(SkeletonError, match="NaN"):
        skeleton.check_pose(bad)
    with pytest.raises(SkeletonError):
        skeleton.BoneMap({"hip": "Hipz"})


def test_unity_conversion_known_pose():
    # Unity: +X right, left-handed. A point at Unity (1, 2, 3) is canonical (-1, 2, 3).
    p, q = skeleton.unity_to_canonical(np.array([1.0, 2.0, 3.0]), quat.IDENTITY)
    assert np.allclose(p, [-1, 2, 3])
    # A Unity rotation of +90 deg about Y (left-handed: +Z turns toward +X) maps +Z to +X in
    # Unity; in canonical space the same physical motion maps +Z to -X.
    unity_q = np.array([0.0, np.sin(np.pi / 4), 0.0, np.cos(np.pi / 4)])
    _, cq = skeleton.unity_to_canonical(np.zeros(3), unity_q)
    assert np.allclose(quat.rotate(cq, np.array([0, 0, 1.0])), [-1, 0, 0], atol=1e-9)


def test_conversions_commute_with_rotation():
    rng = np.random.default_rng(1)
    q = quat.normalize(rng.normal(size=(20, 4)))
    v = rng.normal(size=(20, 3))
    # rotate then convert == convert then rotate
    for to in (skeleton.unity_to_canonical, skeleton.canonical_to_blender):
        rv, _ = to(quat.rotate(q, v), q)
        cv, cq = to(v, q)
        assert np.allclose(quat.rotate(cq, cv), rv, atol=1e-9)
    back_p, back_q = skeleton.blender_to_canonical(*skeleton.canonical_to_blender(v, q))
    assert np.allclose(back_p, v) and np.allclose(np.abs((back_q * q).sum(-1)), 1)


def test_blender_axes():
    p, _ = skeleton.canonical_to_blender(np.array([0.0, 1.0, 0.0]), quat.IDENTITY)
    assert np.allclose(p, [0, 0, 1])  # Y-up becomes Z-up
    p, _ = skeleton.canonical_to_blender(np.array([0.0, 0.0, 1.0]), quat.IDENTITY)
    assert np.allclose(p, [0, -1, 0])


def test_quat_slerp_and_euler():
    a = quat.IDENTITY
    b = quat.from_axis_angle(np.array([0, 1.0, 0]), np.pi / 2)
    mid = quat.slerp(a, b, 0.5)
    assert np.allclose(mid, quat.from_axis_angle(np.array([0, 1.0, 0]), np.pi / 4))
    assert np.allclose(quat.slerp(a, b, 0.0), a) and np.allclose(quat.slerp(a, b, 1.0), b)
    rng = np.random.default_rng(0)
    for order in ("ZXY", "XYZ", "YXZ"):
        ang = rng.uniform(-80, 80, (50, 3))
        q = quat.from_euler(ang, order)
        assert np.allclose(quat.to_euler(q, order), ang, atol=1e-6)

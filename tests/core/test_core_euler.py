"""Gimbal-safe Euler angles in every order: exactly +-90 degrees about the middle axis, random
rotations near it, and Blender's mathutils as the third-party truth for the convention."""

from __future__ import annotations

import numpy as np
import pytest

from machinima import quat

ORDERS = ("XYZ", "XZY", "YXZ", "YZX", "ZXY", "ZYX")


def _same_rotation(a, b) -> float:
    """Largest difference between quaternions, q and -q being the same rotation."""
    return float(np.minimum(np.abs(a - b).max(-1), np.abs(a + b).max(-1)).max())


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("middle", [90.0, -90.0])
def test_exactly_at_gimbal_lock(order, middle):
    rng = np.random.default_rng(ORDERS.index(order))
    ang = rng.uniform(-180, 180, (400, 3))
    ang[:, 1] = middle
    q = quat.from_euler(ang, order)
    back = quat.to_euler(q, order)
    assert _same_rotation(quat.from_euler(back, order), q) < 1e-12
    assert np.abs(back[:, 1] - middle).max() < 1e-9 and np.all(back[:, 2] == 0.0)  # the third angle is set to 0


@pytest.mark.parametrize("order", ORDERS)
def test_near_gimbal_lock_and_everywhere(order):
    rng = np.random.default_rng(10 + ORDERS.index(order))
    near = rng.uniform(-180, 180, (2000, 3))
    near[:, 1] = rng.choice([-90.0, 90.0], 2000) - np.sign(rng.uniform(-1, 1, 2000)) * 10 ** rng.uniform(-12, -1, 2000)
    anywhere = rng.uniform(-180, 180, (2000, 3))
    for ang in (near, anywhere):
        q = quat.from_euler(ang, order)
        back = quat.to_euler(q, order)
        assert _same_rotation(quat.from_euler(back, order), q) < 1e-9
        assert np.all(np.abs(back[:, 1]) <= 90.0) and np.all(np.abs(back) <= 180.0)
    safe = rng.uniform(-80, 80, (200, 3))  # away from the lock the angles themselves come back
    assert np.allclose(quat.to_euler(quat.from_euler(safe, order), order), safe, atol=1e-9)


def test_orders_are_validated():
    with pytest.raises(ValueError, match="not a permutation"):
        quat.to_euler(quat.IDENTITY, "XXY")


@pytest.mark.parametrize("order", ORDERS)
def test_convention_matches_blender_mathutils(order):
    """BVH channel order ZXY (R = Rz Rx Ry) is Blender's Euler order 'YXZ' on (x, y, z) angles:
    the convention Blender's BVH importer uses, including at the lock."""
    pytest.importorskip("bpy")
    import mathutils

    rng = np.random.default_rng(20 + ORDERS.index(order))
    ang = rng.uniform(-180, 180, (50, 3))
    ang[::5, 1] = 90.0
    ang[1::5, 1] = -90.0
    ours = quat.from_euler(ang, order)
    back = quat.to_euler(ours, order)
    for k in range(len(ang)):
        for angles in (ang[k], back[k]):
            xyz = [0.0, 0.0, 0.0]
            for axis, a in zip(order, np.radians(angles)):
                xyz["XYZ".index(axis)] = a
            m = mathutils.Euler(xyz, order[::-1]).to_quaternion()
            theirs = np.array([m.x, m.y, m.z, m.w])
            assert _same_rotation(theirs, ours[k]) < 1e-6

import numpy as np
import pytest

from machinima import quat
from machinima.bvh import export_bvh, parse_bvh, read_bvh, to_canonical
from machinima.errors import BVHError
from machinima.export import export_take_bvh, import_bvh_take, performer_frames
from machinima.skeleton import rest_pose
from machinima.take import Take


def _motion(n=48, seed=0):
    rng = np.random.default_rng(seed)
    p = np.broadcast_to(rest_pose(), (n, 55, 7)).copy()
    p[:, :, 3:7] = quat.normalize(rng.normal(size=(n, 55, 4)) * [0.3, 0.3, 0.3, 1])
    p[:, 0, :3] += np.cumsum(rng.normal(scale=0.01, size=(n, 3)), axis=0)
    return p.astype(np.float32)


def _same_rotation(a, b, tol=1e-4):
    d = np.minimum(np.abs(a - b).max(-1), np.abs(a + b).max(-1))
    return float(d.max()) < tol


def test_take_bvh_roundtrip(tmp_path):
    poses = _motion()
    take = Take.create(tmp_path / "takes", production="p", scene="1", shot="1", fps=24)
    take.add_performer("ada")
    t = take.store.origin_ns + np.arange(48) * (10**9 // 24) + 1
    take.store.append("mocap/ada", t, poses)
    take.finalize()
    (bvh_path,) = export_take_bvh(take.path, tmp_path / "ada.bvh", "ada")
    motion = read_bvh(bvh_path)
    assert motion.fps == pytest.approx(24, rel=1e-6)
    back = to_canonical(motion)
    assert np.allclose(back[:, :, :3], poses[:, :, :3], atol=1e-5)
    assert _same_rotation(back[:, :, 3:], poses[:, :, 3:])
    # ... and back into a new take, equal within float tolerance
    new_id = import_bvh_take(bvh_path, tmp_path / "takes", production="p", scene="1", shot="2", performer="ada")
    again = Take.open(tmp_path / "takes" / new_id)
    _, frames = performer_frames(again, "ada")
    assert frames.shape == poses.shape
    assert _same_rotation(frames[:, :, 3:], poses[:, :, 3:]) and np.allclose(frames[:, :, :3], poses[:, :, :3], atol=1e-5)


def test_foreign_bvh_with_bone_map(tmp_path):
    text = """HIERARCHY
ROOT pelvis
{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Xrotation Yrotation Zrotation
  JOINT spine_01
  {
    OFFSET 0 10 0
    CHANNELS 3 Xrotation Yrotation Zrotation
    End Site
    {
      OFFSET 0 10 0
    }
  }
}
MOTION
Frames: 2
Frame Time: 0.0333333
0 90 0 0 0 0 10 0 0
0 91 0 0 90 0 20 0 0
"""
    from machinima.skeleton import BoneMap, bone_index

    motion = parse_bvh(text)
    poses = to_canonical(motion, BoneMap({"pelvis": "Hips", "spine_01": "Spine"}))
    assert np.allclose(poses[1, bone_index("Hips"), :3], [0, 0.91, 0])
    assert np.allclose(quat.rotate(poses[1, bone_index("Hips"), 3:], [0, 0, 1.0]), [1, 0, 0], atol=1e-6)
    with pytest.raises(BVHError, match="none of the BVH joints"):
        to_canonical(parse_bvh(text.replace("pelvis", "j0").replace("spine_01", "j1")))


@pytest.mark.parametrize(
    "text, match",
    [
        ("", "no MOTION"),
        ("HIERARCHY\nROOT a\n{\n OFFSET 0 0 x\n}\nMOTION\nFrames: 0\nFrame Time: 0.1\n", "line 4"),
        ("HIERARCHY\nROOT a\n{\n OFFSET 0 0 0\n CHANNELS 3 Xrotation Yrotation Qrotation\n}\nMOTION\nFrames: 1\nFrame Time: 0.1\n0 0 0\n", "unknown channel"),
        ("HIERARCHY\nROOT a\n{\n OFFSET 0 0 0\n CHANNELS 1 Xrotation\n}\nMOTION\nFrames: 3\nFrame Time: 0.1\n0\n", "truncated"),
        ("HIERARCHY\nROOT a\n{\n OFFSET 0 0 0\n CHANNELS 1 Xrotation\n}\nMOTION\nFrames: 1\nFrame Time: 0.1\nnan\n", "NaN"),
    ],
)
def test_bad_bvh_errors(text, match):
    with pytest.raises(BVHError, match=match):
        parse_bvh(text)


def test_missing_file(tmp_path):
    with pytest.raises(BVHError, match="no BVH file"):
        read_bvh(tmp_path / "nope.bvh")
    with pytest.raises(Exception):
        export_bvh(tmp_path / "x.bvh", np.zeros((0, 55, 7)), 24)

"""The shipped example set (`--set diner`) frames its performers: the two synthetic performers the
demo records (an idle one, one walking a 2 m circle), rendered through the set's default camera
over their whole motion, stay inside the picture, heads included (the performer masks of a real
render never touch a border)."""

from __future__ import annotations

import numpy as np
import pytest
from blender_helpers import make_take

bpy = pytest.importorskip("bpy")


def test_the_diner_camera_keeps_both_demo_performers_whole(scene, tmp_path):
    from machinima.export import performer_frames
    from machinima.take import Take
    from mocap.synthetic import synthetic_poses

    from blender_addon.build import build_set
    from blender_addon.render import RenderSettings, render_passes
    from blender_addon.takeimport import import_take, take_frames

    t = np.arange(0, 10, 1 / 24)  # `machinima mocap send --synthetic 2 --motion mix`: performer k has seed k, index k
    poses = {f"performer-{k}": synthetic_poses(t, motion="mix", seed=k, index=k) for k in (0, 1)}
    build_set("diner", scene)  # by name, as a user types it
    assert scene.camera.get("machinima_id") == "cameras/wide"  # the file's first camera
    take_path = make_take(tmp_path, poses, fps=24)
    import_take(take_path, scene)
    take = Take.open(take_path)
    motion = {n: (take_frames(take, s), p) for n, (s, p) in ((n, performer_frames(take, n)) for n in poses)}
    frames = (0, len(t) - 1)
    settings = RenderSettings(passes=("mask",), width=160, height=90, samples=1, frames=frames, step=16)
    render_passes(take.passes_dir(), settings, scene, take_poses=motion, fps="24", progress=False)
    from machinima.passes import PassSet

    ps = PassSet.open(take.passes_dir())
    assert len(ps.frames) == len(range(frames[0], frames[1] + 1, 16))
    for name in poses:
        for f in ps.frames:
            m = ps.read(f"mask/{name}", f) > 0
            assert m.sum() > 10, (name, f, m.sum())  # in the picture (the walker may pass behind the counter or the other)
            edges = m[0].any() or m[-1].any() or m[:, 0].any() or m[:, -1].any()
            assert not edges, (name, f, "touches the border: cropped")

"""One Ray task per segment: same frames as a local run; a rerun skips everything."""

import os

import numpy as np
import pytest

from machinima.imageseq import list_frames, read_image
from stylize.look import Look
from stylize.runner import stylize_take

from stylize_helpers import make_take

ray = pytest.importorskip("ray")

DOC = {"name": "paint", "engine": "classical", "controls": [{"kind": "depth"}, {"kind": "lineart"}],
       "shots": [{"name": "A", "frames": [0, 4]}, {"name": "B", "frames": [5, 9]}],
       "cadence": {"mode": "propagate", "every": 2}}


def test_segments_on_ray_match_a_local_run(tmp_path):
    from stylize.distributed import stylize_take_on_ray

    take = make_take(tmp_path / "takes", n=10)
    local = stylize_take(take, Look.from_doc(DOC), step_id="local", progress=False, video=False)
    os.environ["RAY_AUTH_MODE"] = "disabled"
    try:
        res = stylize_take_on_ray(take, Look.from_doc(DOC), address="local", step_id="onray")
        assert sorted(res.report.done) == list(range(10)) and res.stats["segments"] == 2
        a, b = list_frames(local.out_dir / "frames"), list_frames(res.out_dir / "frames")
        assert sorted(a) == sorted(b) == list(range(10))
        assert all(np.array_equal(read_image(a[f]), read_image(b[f])) for f in a)
        assert res.video is not None and res.video.exists()
        again = stylize_take_on_ray(take, Look.from_doc(DOC), address="local", step_id="onray", video=False)
        assert again.report.done == [] and len(again.report.skipped) == 10
        # passes every 2nd frame: the same frames as a local run, and the movie keeps the take's timing
        import av

        from machinima.passes import PassSet

        sparse = make_take(tmp_path / "sparse", n=10)
        ps = PassSet.open(sparse / "passes")
        for name in ("rgb", "depth", "pose", "mask/ada"):
            for f, p in ps.frame_files(name).items():
                if f % 2:
                    p.unlink()
        ps.meta["frames"] = [0, 2, 4, 6, 8]
        ps.save()
        here = stylize_take(sparse, Look.from_doc(DOC), step_id="local", progress=False, video=False)
        res = stylize_take_on_ray(sparse, Look.from_doc(DOC), address="local", step_id="onray")
        a, b = list_frames(here.out_dir / "frames"), list_frames(res.out_dir / "frames")
        assert sorted(a) == sorted(b) == [0, 2, 4, 6, 8]
        assert all(np.array_equal(read_image(a[f]), read_image(b[f])) for f in a)
        assert res.frames_note.startswith("every 2nd frame (0..8, 5 frames)")
        with av.open(str(res.video)) as c:
            assert sum(1 for _ in c.decode(video=0)) == 9
    finally:
        ray.shutdown()

"""Editorial hand-off of a step whose frames are QOI (the post steps' intermediate, which no
editor reads): the timeline points at a delivered mp4 or PNG frames, checked with PyAV and
OpenCV (readers we did not write) and OTIO; --no-deliver refuses in one line."""

from __future__ import annotations

import numpy as np
import pytest

from machinima import editorial
from machinima.errors import EditorialError
from machinima.fsutil import atomic_write_json
from machinima.imageseq import frame_path, read_image, write_image
from machinima.take import Take

otio = pytest.importorskip("opentimelineio")
av = pytest.importorskip("av")
cv2 = pytest.importorskip("cv2")


def _take(root, frames=range(0, 6)) -> Take:
    take = Take.create(root, production="film", scene="s1", shot="a", fps="24", timecode_in="10:00:00:00")
    take.finalize()
    for f in frames:
        write_image(frame_path(take.passes_dir("rgb"), f), np.full((16, 16, 3), 90, np.uint8))
    atomic_write_json(take.post_dir("composite") / "params.json", {"step": "composite", "step_id": "composite", "params": {}})
    from machinima.provenance import record_decision  # pixel-exact checks: a recorded "off" decision, no watermark

    record_decision(take.path, disclose=False, reason="test", by="tester")
    rng = np.random.default_rng(0)
    for f in frames:
        write_image(frame_path(take.post_dir("composite") / "rgb", f, "qoi"), rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))
    return Take.open(take.path)


def test_qoi_step_is_delivered_for_the_editor(tmp_path):
    take = _take(tmp_path / "takes")
    m = editorial.find_media(take, "composite", "frames")
    assert (m.kind, m.ext, m.path.name, m.count) == ("frames", "png", "png", 6)
    for f in range(6):  # OpenCV reads the delivered PNGs: the step's pixels
        png = cv2.cvtColor(cv2.imread(str(m.path / f"{f:06d}.png")), cv2.COLOR_BGR2RGB)
        assert np.array_equal(png, read_image(frame_path(take.post_dir("composite") / "rgb", f, "qoi")))
    mov = editorial.find_media(take, "composite")  # auto: a movie
    assert mov.kind == "mp4" and mov.path.suffix == ".mp4"
    with av.open(str(mov.path)) as c:
        assert sum(1 for _ in c.decode(video=0)) == 6
    timeline = editorial.build_timeline([(take, m)], "qoi")
    ref = timeline.find_clips()[0].media_reference
    assert isinstance(ref, otio.schema.ImageSequenceReference) and ref.name_suffix == ".png"
    # reused while the step has not changed since
    stamp = mov.path.stat().st_mtime_ns
    assert editorial.find_media(take, "composite").path.stat().st_mtime_ns == stamp


def test_no_deliver_refuses_in_one_line(tmp_path):
    take = _take(tmp_path / "takes")
    with pytest.raises(EditorialError, match="QOI frames, which editors cannot read") as err:
        editorial.find_media(take, "composite", deliver=False)
    assert "takes export" in err.value.hint and "\n" not in str(err.value)
    assert not (take.post_dir("composite") / "delivery").exists()

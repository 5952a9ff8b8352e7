"""What issue 24's cuts of the disclosure overhead keep (docs/rights.md): a step seals its
sequence manifest with the preview's frames still in memory, which must be the very frames on
disk (truth: the preview made from the QOI files read back); a held frame whose file is not the
one the ledger lists is read from disk; every step movie, disclosed or not, is coded with one
x264 preset (``stepdisclosure.MOVIE_PRESET``), and a small marked movie coded so still reads back
its mark (truth: ``verify_file`` on the MP4, decoded by PyAV)."""

import numpy as np
import pytest

from machinima import imageseq
from machinima import provenance as pv
from machinima.provenance import sequence as seqmod

pytest.importorskip("qoi")
pytestmark = pytest.mark.usefixtures("isolated")


def _clip(photo, n):
    return [np.ascontiguousarray(np.roll(photo[:256, :320], 7 * f, axis=1)) for f in range(n)]


def _png_pixels(path):
    import cv2

    return cv2.imread(str(path), cv2.IMREAD_COLOR)


def _spy_sidecar(monkeypatch):
    """Record what ``write_sidecar`` is given to hold, and every frame ``read_image`` decodes."""
    held, reads = [], []
    real_side, real_read = seqmod.write_sidecar, imageseq.read_image

    def side(path, disclosure, mid, hashes, step_dir, held_frames=None):
        held.append(dict(held_frames or {}))
        return real_side(path, disclosure, mid, hashes, step_dir, held_frames)

    def read(path, *a, **kw):
        reads.append(str(path))
        return real_read(path, *a, **kw)

    monkeypatch.setattr(seqmod, "write_sidecar", side)
    monkeypatch.setattr(imageseq, "read_image", read)
    return held, reads


def test_the_preview_is_sealed_from_the_frames_in_memory_which_are_the_frames_on_disk(project, photo, monkeypatch):
    from machinima.poststep import PostStep

    root, take = project
    src = _clip(photo, 6)
    held, reads = _spy_sidecar(monkeypatch)
    step = PostStep(take / "post" / "look", "stylize", {"n": 6}, intermediate="qoi")
    step.run(range(6), lambda fr: [{"rgb": src[f]} for f in fr], batch_size=2, progress=False)
    picks = seqmod.preview_picks([f"rgb/{f:06d}.qoi" for f in range(6)])
    assert len(picks) == 4 and sorted(held[0]) == sorted(picks)  # every frame the preview shows was in memory
    assert not any("/rgb/" in r for r in reads)  # and none was decoded back from disk to seal
    for rel, img in held[0].items():  # marked frame == frame on disk (decoded by the reference codec)
        assert np.array_equal(img, _read_qoi(step.out_dir / rel))
    sealed = _png_pixels(step.out_dir / "disclosure.png")
    assert not step._preview_held  # nothing kept after sealing

    # truth: the same sequence manifest sealed by a step object that holds nothing (reads every frame back)
    again = PostStep(take / "post" / "look", "stylize", {"n": 6}, intermediate="qoi")
    reads.clear()
    again.seal()
    assert held[-1] == {} and sum("/rgb/" in r for r in reads) == 4
    assert np.array_equal(sealed, _png_pixels(step.out_dir / "disclosure.png"))
    r = pv.verify_file(step.output_path("rgb", 3))
    assert r.status == "ok" and r.watermark_matches, r.to_doc()


def _read_qoi(path):
    import qoi

    return qoi.decode(path.read_bytes())


def test_a_held_frame_that_is_not_the_file_listed_is_read_from_disk(project, photo, monkeypatch):
    from machinima.poststep import PostStep

    root, take = project
    src = _clip(photo, 3)
    held, reads = _spy_sidecar(monkeypatch)
    step = PostStep(take / "post" / "look", "stylize", {"n": 3}, intermediate="qoi")
    step.run(range(3), lambda fr: [{"rgb": src[f]} for f in fr], progress=False)
    good = _png_pixels(step.out_dir / "disclosure.png")
    # a frame held under another hash (rewritten since): never shown from memory
    step._preview_held["rgb/000001.qoi"] = ("0" * 64, np.zeros_like(src[1]))
    reads.clear()
    step.seal()
    assert "rgb/000001.qoi" not in held[-1] and any(r.endswith("000001.qoi") for r in reads)
    assert np.array_equal(good, _png_pixels(step.out_dir / "disclosure.png"))


@pytest.mark.parametrize("disclose", [True, False])
def test_every_step_movie_is_coded_with_one_preset_and_a_small_marked_movie_keeps_its_mark(project, photo, monkeypatch, disclose):
    from machinima.poststep import PostStep
    from machinima.stepdisclosure import MOVIE_PRESET

    root, take = project
    if not disclose:
        pv.record_decision(take, False, "test: an undisclosed step movie is coded the same way")
    src = _clip(photo, 4)  # 320x256: the small-frame case, where a cheaper preset lost the mark
    options = []
    real = imageseq.write_video

    def spy(path, frames, *a, **kw):
        options.append(kw.get("options"))
        return real(path, frames, *a, **kw)

    monkeypatch.setattr(imageseq, "write_video", spy)
    step = PostStep(take / "post" / "look", "stylize", {"n": 4}, intermediate="qoi")
    step.run(range(4), lambda fr: [{"rgb": src[f]} for f in fr], progress=False)
    frames = [imageseq.read_image(step.output_path("rgb", f)) for f in range(4)]
    from machinima.poststep import write_video

    movie = write_video(step.out_dir / "look.mp4", frames, fps=24)
    assert options == [{"crf": "18", "preset": MOVIE_PRESET}]
    rep = pv.verify_file(movie)
    if disclose:
        assert rep.status == "ok-local" or rep.status == "ok", rep.to_doc()
        assert rep.watermark.found and rep.watermark_matches and rep.watermark_authentic, rep.to_doc()
    else:
        assert not rep.watermark.found and rep.manifest == "absent", rep.to_doc()

"""Merge on short clips: outputs, resume, faults that must not stop the run, smoothing, rights."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from faceswap.merge import MergeOptions, merge
from machinima.imageseq import list_frames, read_image

from faceswap_testdata import moving_clip, write_clip


@pytest.fixture()
def clip(tmp_path, grace):
    """5 frames of a moving face, then a frame with no face, then a corrupt file."""
    import cv2

    small = cv2.resize(grace, (256, 300), interpolation=cv2.INTER_AREA)
    frames = moving_clip(small, 5, shift=(2.0, 1.0), zoom=0.01)
    frames.append(np.full_like(small, 120))
    write_clip(tmp_path / "clip", frames)
    (tmp_path / "clip" / "000006.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    return tmp_path / "clip"


def test_merge_writes_frames_and_video_reports_faults_and_resumes(tmp_path, clip, tiny_model):
    out = tmp_path / "out"
    out.mkdir()
    from machinima.provenance import record_decision  # pixel-exact checks below: no watermark, a recorded decision

    record_decision(out, False, "pixel-exact merge test")
    opts = MergeOptions(engine="torch", batch=4, blend="seamless", color="rct")
    r = merge(clip, tiny_model, out=out, options=opts, production="film", override="test material", rights_store=tmp_path / "rights", progress=False)
    assert r.done == 6 and r.no_face == [5]
    assert list(r.unreadable) == [6] and "not a readable image" in r.unreadable[6]
    assert any("no face" in m for m in r.messages()) and any("frame 6 skipped" in m for m in r.messages())
    frames = list_frames(out / "rgb")
    assert sorted(frames) == [0, 1, 2, 3, 4, 5]
    src0, out0 = read_image(clip / "000000.png"), read_image(frames[0])
    assert np.abs(src0.astype(int) - out0).mean() > 0.5  # the face changed
    corner = (slice(0, 30), slice(0, 30))
    assert np.array_equal(src0[corner], out0[corner])  # only the face region is touched
    assert np.array_equal(read_image(frames[5]), read_image(clip / "000005.png"))  # no face: unchanged
    assert r.video is not None and r.video.stat().st_size > 0
    params = json.loads((out / "params.json").read_text())
    assert params["params"]["color"] == "rct" and params["rights"]["override"]["reason"] == "test material"
    again = merge(clip, tiny_model, out=out, options=opts, production="film", override="test material", rights_store=tmp_path / "rights", progress=False)
    assert again.done == 0 and again.skipped == 6


class NoisyBackend:
    """mediapipe with seeded noise added to every landmark: a jittery detector."""

    cacheable = False

    def __init__(self, sigma: float, seed: int = 0) -> None:
        from faceswap.backends import get_backend

        self.inner = get_backend("mediapipe")
        self.rng = np.random.default_rng(seed)
        self.sigma = sigma

    def _noisy(self, f):
        if f is not None:
            f.landmarks = f.landmarks + self.rng.normal(0, self.sigma, f.landmarks.shape)
        return f

    def detect(self, image):
        return [self._noisy(f) for f in self.inner.detect(image)]

    def landmarks(self, image, box):
        return self._noisy(self.inner.landmarks(image, box))


def test_smoothing_lowers_landmark_jitter_and_flicker_in_the_merge(tmp_path, grace):
    import cv2

    still = cv2.resize(grace, (256, 300), interpolation=cv2.INTER_AREA)
    write_clip(tmp_path / "still", [still] * 12)
    res = {}
    for smooth in ("none", "one-euro", "savgol"):
        opts = MergeOptions(engine="none", smooth=smooth, blend="alpha", color="none", res=64, batch=6)
        r = merge(tmp_path / "still", None, out=tmp_path / smooth, options=opts, production="film", override="test",
                  rights_store=tmp_path / "rights", backend=NoisyBackend(1.5), video=False, progress=False)
        frames = [read_image(p).astype(np.float32) for p in list_frames(tmp_path / smooth / "rgb").values()]
        flicker = float(np.mean([np.abs(a - b).mean() for a, b in zip(frames, frames[1:])]))
        res[smooth] = (r.jitter_used, flicker, r.jitter_raw)
    assert res["none"][0] == pytest.approx(res["none"][2])
    for smooth in ("one-euro", "savgol"):
        assert res[smooth][0] < 0.5 * res["none"][0], res
        assert res[smooth][1] < res["none"][1], res


def test_merge_needs_rights_and_records_them(tmp_path, clip, tiny_model):
    from machinima import rights

    opts = MergeOptions(engine="none", blend="alpha", batch=8)
    store = tmp_path / "rights"
    with pytest.raises(rights.NotCleared, match="face_replacement not cleared"):
        merge(clip, tiny_model, out=tmp_path / "o", options=opts, production="film", subjects=["alice"], rights_store=store, progress=False)
    # a record that only names "alice" clears no face (identity-bound records: tests/rights/test_rights_sites.py)
    rights.RightsStore(store).add(rights.RightsRecord(id="alice-release", kind="person", subject="alice", production="film",
                                                      scopes=("face_replacement",), document_sha256="0" * 64))
    with pytest.raises(rights.NotCleared, match="a face that matches no rights record"):
        merge(clip, tiny_model, out=tmp_path / "o", options=opts, production="film", subjects=["alice"], rights_store=store, progress=False)
    r = merge(clip, tiny_model, out=tmp_path / "o", options=opts, production="film", subjects=["alice"], rights_store=store,
              override="test material", video=False, progress=False)
    assert r.done == 6
    params = json.loads((tmp_path / "o" / "params.json").read_text())
    assert params["rights"]["override"]["reason"] == "test material"


def test_merge_into_a_take_with_onnxruntime(tmp_path, astronaut, tiny_model):
    import cv2

    from machinima.passes import PassSet
    from machinima.take import Take

    take = Take.create(tmp_path / "takes", production="film", scene="1", shot="a", fps=24)
    ps = PassSet.create(take.passes_dir(), width=256, height=256, fps="24", engine="test")
    for i, f in enumerate(moving_clip(cv2.resize(astronaut, (256, 256)), 3)):
        ps.write("rgb", i, f)
    ps.save()
    take.finalize()
    take.close()
    opts = MergeOptions(engine="onnx", blend="alpha", color="mkl", smooth="savgol", batch=3, sharpen=0.5, grain=1.0, erode=2, blur=4)
    r = merge(take.path, tiny_model, options=opts, override="test", rights_store=tmp_path / "rights", progress=False)
    assert r.out_dir == take.path / "post" / f"faceswap-{tiny_model.name}"
    assert r.done == 3 and r.video is not None and (tiny_model / "swap.onnx").exists()
    assert json.loads((r.out_dir / "params.json").read_text())["inputs"]["kind"] == "take"


def test_bad_options_and_targets_fail_before_any_work(tmp_path, clip, tiny_model):
    from faceswap.errors import FaceswapError, InputError, ModelError

    with pytest.raises(FaceswapError, match="--color 'sepia'"):
        merge(clip, tiny_model, options=MergeOptions(color="sepia"), progress=False)
    with pytest.raises(InputError, match="does not exist"):
        merge(tmp_path / "nope", tiny_model, override="t", progress=False)
    with pytest.raises(ModelError, match="no model at"):
        merge(clip, tmp_path / "empty", override="t", progress=False)
    with pytest.raises(FaceswapError, match="occlusion model not found"):
        merge(clip, tiny_model, options=MergeOptions(occlusion_model=str(tmp_path / "seg.onnx")), progress=False)
    with pytest.raises(FaceswapError, match="needs a model folder"):
        merge(clip, None, override="t", progress=False)


def test_trained_occlusion_segmenter_plugs_into_merge(tmp_path, clip, facesets, tiny_model):
    from faceswap.masks import OnnxSegmenter
    from faceswap.segmenter import train_segmenter

    s = train_segmenter(list(facesets), tmp_path / "seg", res=64, iters=12, batch=4, width=4, lr=5e-3, progress=False)
    assert s["iterations"] == 12 and s["loss_last"] < s["loss_first"]
    seg = OnnxSegmenter(tmp_path / "seg" / "segmenter.onnx")
    prob = seg(np.zeros((96, 96, 3), np.uint8))
    assert prob.shape == (96, 96) and 0 <= prob.min() and prob.max() <= 1
    opts = MergeOptions(engine="none", blend="alpha", occlusion_model=str(tmp_path / "seg" / "segmenter.onnx"))
    r = merge(clip, tiny_model, out=tmp_path / "o", options=opts, production="film", override="t", rights_store=tmp_path / "r",
              video=False, progress=False)
    assert r.done == 6
    assert json.loads((tmp_path / "o" / "params.json").read_text())["params"]["occlusion_model"].endswith("segmenter.onnx")


def test_live_on_a_video_stream_writes_an_mp4_and_measures_latency(tmp_path, grace, tiny_model):
    import cv2

    from faceswap.errors import InputError
    from faceswap.live import live
    from machinima.imageseq import read_video, write_video

    small = cv2.resize(grace, (256, 300), interpolation=cv2.INTER_AREA)
    write_video(tmp_path / "in.mp4", moving_clip(small, 6, shift=(2.0, 1.0), zoom=0.01), fps=25)
    r = live(tmp_path / "in.mp4", tiny_model, out=tmp_path / "live.mp4", max_frames=5, override="test", rights_store=tmp_path / "r",
             options=MergeOptions(engine="onnx", blend="alpha"))
    assert r.frames == 5 and r.faces == 5 and len(r.latency_ms) == 5 and r.fps > 0
    assert len(list(read_video(tmp_path / "live.mp4"))) == 5
    with pytest.raises(InputError, match="cannot open stream"):
        live(tmp_path / "nothing.mp4", tiny_model, override="test", rights_store=tmp_path / "r")


def test_live_matches_each_face_to_a_record_not_the_facesets_names(tmp_path, grace, astronaut, tiny_model):
    """A record named like the model's facesets ("alice", "bob") but bound to another person's
    face clears nothing: the live stream stops at the first frame of the uncleared face, naming it
    (before, a typed name matching the faceset folders let the stream run)."""
    import cv2

    from faceswap.live import live
    from machinima import rights
    from machinima.imageseq import write_image, write_video

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "rights"))
    from rights_helpers import bound_record

    write_image(tmp_path / "collins.png", cv2.resize(astronaut, (256, 256)))
    collins = rights.reference_identity([tmp_path / "collins.png"])
    store = rights.RightsStore(tmp_path / "r")
    for name in ("alice", "bob"):
        store.add(bound_record(name, collins))
    small = cv2.resize(grace, (256, 300), interpolation=cv2.INTER_AREA)
    write_video(tmp_path / "in.mp4", moving_clip(small, 3, shift=(2.0, 1.0), zoom=0.01), fps=25)
    with pytest.raises(rights.NotCleared, match="frame 0, face track .*matches no rights record"):
        live(tmp_path / "in.mp4", tiny_model, out=tmp_path / "live.mp4", max_frames=3, production="film", rights_store=store,
             options=MergeOptions(engine="onnx", blend="alpha"))

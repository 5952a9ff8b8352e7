"""Facesets, training (loss goes down, exact resume), ONNX export, and their error messages."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from faceswap.errors import FacesetError, ModelError
from faceswap.model import FaceModel, ModelConfig
from faceswap.train import TrainConfig, Trainer

TINY = dict(e_dims=4, ae_dims=16, d_dims=4, d_mask_dims=2)  # as in conftest's tiny_model


def test_faceset_items_carry_alignment_metadata(facesets):
    from faceswap.faceset import open_faceset

    with open_faceset(facesets[0]) as col:
        assert col.info == {"face_type": "whole", "size": 64}
        items = list(col)
        assert len(items) == 4
        meta = items[0].meta
        assert np.asarray(meta["landmarks"]).shape == (68, 2) and np.asarray(meta["transform"]).shape == (2, 3)
        assert items[0].source.kind == "file" and items[0].source.frame == 0 and meta["face_type"] == "whole"


def test_sort_by_blur_and_dupes_flags_the_right_faces(tmp_path, facesets):
    import cv2

    from faceswap.faceset import filter_faceset, open_faceset, sort_faceset

    fs = tmp_path / "fs"
    shutil.copytree(facesets[0], fs)
    with open_faceset(fs) as col:
        first = next(iter(col))
        img = col.load(first)
        col.add(cv2.GaussianBlur(img, (0, 0), 3), name="blurred.png", meta={"yaw": 0.0})
        dupe = col.add(img.copy(), name="dupe.png", meta={"yaw": 0.0})
    with open_faceset(facesets[1]) as other:
        other_img = other.load(next(iter(other)))
    with open_faceset(fs) as col:
        stranger = col.add(other_img, name="stranger.png", meta={"yaw": 0.0})
    r = sort_faceset(fs, "blur", blur_quantile=0.2)
    assert r.order[-1][0] == 5 and 5 in r.flagged  # the blurred copy ranks last
    r = sort_faceset(fs, "dupes")
    assert dupe.id in r.flagged or first.id in r.flagged  # the exact copy: one of the pair goes
    assert stranger.id not in r.flagged  # another person is never a duplicate
    assert filter_faceset(fs, ("dupe",)) == len(r.flagged)
    with open_faceset(fs) as col:
        assert stranger.id in [it.id for it in col]
    with pytest.raises(FacesetError, match="cannot sort"):
        sort_faceset(fs, "colour")


def _trainer(d, facesets, arch="df", **tc):
    cfg = dict(batch=2, lr=1e-3, save_every=1000, log_every=1)
    cfg.update(tc)
    return Trainer(d, src=facesets[0], dst=facesets[1], model_config=ModelConfig(arch=arch, res=64, **TINY),
                   train_config=TrainConfig(**cfg), rights={"override": "tests"})


def test_training_at_64px_lowers_the_loss(tmp_path, facesets):
    t = _trainer(tmp_path / "m", facesets, arch="liae", batch=4, lr=2e-3)
    t.train(25, progress=False)
    hist = np.array(t.history)
    assert hist[-5:, 1:].mean() < 0.8 * hist[:5, 1:].mean()
    assert (tmp_path / "m" / "preview.png").exists() and (tmp_path / "m" / "history.csv").read_text().count("\n") == 26


def _grad_norm(model) -> float:
    return float(torch.norm(torch.stack([p.grad.norm() for p in model.parameters() if p.grad is not None])))


def test_learning_rate_halves_on_schedule_and_clipping_bounds_the_gradient(tmp_path, facesets):
    t = _trainer(tmp_path / "m", facesets, lr=1e-3, lr_half_life=2, clip_grad=0.05, beta1=0.9, affine=0.3)
    t.train(4, progress=False)
    assert t.opt.param_groups[0]["lr"] == pytest.approx(1e-3 * 0.5 ** 1.5)  # set from the iteration before the 4th step
    assert t.opt.param_groups[0]["betas"][0] == 0.9
    assert _grad_norm(t.model) <= 0.05 * 1.001  # the gradients the last step used
    free = _trainer(tmp_path / "f", facesets, lr=1e-3)
    free.train(1, progress=False)
    assert _grad_norm(free.model) > 0.05  # without clipping they are larger: the bound above is the clip's


def test_checkpoint_resumes_to_the_same_state(tmp_path, facesets):
    straight = _trainer(tmp_path / "a", facesets)
    straight.train(6, progress=False)
    part = _trainer(tmp_path / "b", facesets)
    part.train(3, progress=False)  # stops, checkpoint written
    resumed = Trainer(tmp_path / "b")  # everything comes back from the folder
    assert resumed.iteration == 3
    resumed.train(6, progress=False)
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert straight.history == resumed.history
    assert straight.opt.state_dict()["state"][0]["step"] == resumed.opt.state_dict()["state"][0]["step"]


def test_faceset_with_a_missing_file_trains_on_and_says_which(tmp_path, facesets):
    from faceswap.faceset import open_faceset

    src = tmp_path / "src"
    shutil.copytree(facesets[0], src)
    with open_faceset(src) as col:
        gone = next(iter(col))
        (src / gone.file).unlink()
    t = Trainer(tmp_path / "m", src=src, dst=facesets[1], model_config=ModelConfig(arch="df", res=64, **TINY),
                train_config=TrainConfig(batch=2, save_every=1000), override="test faces")  # the Trainer checks rights itself
    assert len(t.src.images) == 3
    assert any("missing" in p and gone.file in p for p in t.problems)
    r = t.train(2, progress=False)
    assert r.iteration == 2


def test_model_folder_errors_are_clear(tmp_path, facesets):
    with pytest.raises(ModelError, match="has no model yet"):
        Trainer(tmp_path / "nothing")
    with pytest.raises(FacesetError, match="not a collection"):
        Trainer(tmp_path / "m", src=tmp_path / "nope", dst=facesets[1], model_config=ModelConfig(res=64, **TINY))
    t = _trainer(tmp_path / "m2", facesets)
    t.save()
    with pytest.raises(ModelError, match="holds a df model at 64"):
        Trainer(tmp_path / "m2", model_config=ModelConfig(arch="liae", res=64))
    with pytest.raises(ModelError, match="multiple of 16"):
        ModelConfig(res=100).check()


def test_onnx_export_matches_torch(tiny_model):
    from faceswap.onnx_export import OrtSwapper, TorchSwapper, export_onnx

    p = export_onnx(tiny_model)
    x = np.random.default_rng(0).random((3, 3, 64, 64), dtype=np.float32)
    ort, tor = OrtSwapper(p), TorchSwapper(tiny_model, device="cpu")
    assert ort.res == 64
    y_ort, y_t = ort(x), tor(x)
    assert y_ort.shape == (3, 4, 64, 64)
    assert np.abs(y_ort - y_t).max() < 1e-4


def test_both_architectures_swap_to_rgb_and_mask():
    for arch in ("df", "liae"):
        m = FaceModel(ModelConfig(arch=arch, res=64, **TINY))
        with torch.no_grad():
            rgb, mask = m.swap(torch.rand(2, 3, 64, 64))
        assert rgb.shape == (2, 3, 64, 64) and mask.shape == (2, 1, 64, 64)
        assert float(rgb.min()) >= 0 and float(mask.max()) <= 1


def test_ctrl_c_saves_a_checkpoint_that_resumes(tmp_path, facesets):
    import os
    import signal
    import threading

    t = _trainer(tmp_path / "m", facesets)
    t.step()  # warm up so the interrupt lands inside the loop
    timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        r = t.train(100000, progress=False)
    finally:
        timer.cancel()
    assert r.interrupted and 1 < r.iteration < 100000
    again = Trainer(tmp_path / "m")
    assert again.iteration == r.iteration
    assert all(torch.equal(a, b) for a, b in zip(t.model.state_dict().values(), again.model.state_dict().values()))


def test_two_clips_with_the_same_file_names_go_into_one_faceset(tmp_path, grace):
    import cv2
    from faceswap_testdata import moving_clip, write_clip

    from faceswap.extract import extract

    small = cv2.resize(grace, (256, 300))
    write_clip(tmp_path / "day1", moving_clip(small, 2))
    write_clip(tmp_path / "day2", moving_clip(small, 2, shift=(-3.0, 2.0)))
    assert extract(tmp_path / "day1", tmp_path / "fs", size=64, progress=False).added == 2
    assert extract(tmp_path / "day2", tmp_path / "fs", size=64, progress=False).added == 2
    again = extract(tmp_path / "day2", tmp_path / "fs", size=64, progress=False)
    assert again.added == 0 and again.skipped_frames == 2


def test_adversarial_stage_trains_and_its_discriminator_resumes(tmp_path, facesets):
    t = _trainer(tmp_path / "g", facesets, gan_power=0.1)
    assert t.disc is not None
    t.train(2, progress=False)
    again = Trainer(tmp_path / "g")
    assert again.disc is not None and again.tcfg.gan_power == 0.1
    assert all(torch.equal(a, b) for a, b in zip(t.disc.state_dict().values(), again.disc.state_dict().values()))

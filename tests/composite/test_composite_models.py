"""Model paths with tiny random transformers models saved to tmp and loaded back (no downloads)."""

from __future__ import annotations

import numpy as np

from machinima.imageseq import find_frame
import pytest

from composite.errors import ModelError
from composite.pipeline import run_composite
from machinima.imageseq import read_image

from composite_scenes import green_screen, make_plate, make_take, plain


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    import torch
    from transformers import (DPTConfig, DPTForDepthEstimation, DPTImageProcessor, SegformerConfig,
                              SegformerForSemanticSegmentation, SegformerImageProcessor)

    root = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    dpt = DPTConfig(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=37, image_size=32, patch_size=8,
                    backbone_out_indices=[0, 1, 2, 3], neck_hidden_sizes=[8, 8, 8, 8], fusion_hidden_size=16, is_hybrid=False)
    DPTForDepthEstimation(dpt).save_pretrained(root / "dpt")
    DPTImageProcessor(size={"height": 32, "width": 32}, keep_aspect_ratio=False).save_pretrained(root / "dpt")
    seg = SegformerConfig(num_encoder_blocks=2, depths=[1, 1], sr_ratios=[2, 1], hidden_sizes=[8, 16], patch_sizes=[7, 3], strides=[4, 2],
                          num_attention_heads=[1, 1], mlp_ratios=[2, 2], decoder_hidden_size=16, num_labels=2,
                          id2label={0: "background", 1: "person"}, label2id={"background": 0, "person": 1})
    SegformerForSemanticSegmentation(seg).save_pretrained(root / "seg")
    SegformerImageProcessor(size={"height": 32, "width": 32}).save_pretrained(root / "seg")
    return root


def test_tiny_random_depth_model_runs_through_the_model_path(tiny_models, tmp_path):
    from composite.models import DepthModel, scale_to_metres

    model = DepthModel(tiny_models / "dpt")
    assert model.kind == "disparity"
    img, truth = green_screen(120, 160)
    raw = model.predict(img)
    assert raw.shape == (120, 160) and np.isfinite(raw).all()
    metres = scale_to_metres(raw, truth, 5.0, kind=model.kind, body_depth=0.5)
    assert np.all(np.abs(metres[truth > 0] - 5.0) <= 0.5 + 1e-5)
    assert abs(float(np.median(metres[truth > 250])) - 5.0) < 0.05
    # and through the pipeline: the actor keeps its occlusion by the wall with per-pixel depth
    take = make_take(tmp_path)
    res = run_composite(take, plain(make_plate(tmp_path, [48, 48]), depth_model=tiny_models / "dpt", body_depth=0.5), progress=False)
    cover = read_image(find_frame(res.out_dir / "alpha", 0))
    assert np.all(cover[12:50, 34:40] == 0) and np.all(cover[12:50, 48:54] == 255)
    assert "depth: model" in (res.out_dir / "params.json").read_text()


def test_tiny_segmentation_model_matte_runs(tiny_models, tmp_path):
    from composite.models import SegmentationMatte

    seg = SegmentationMatte(tiny_models / "seg", label="person")
    m = seg.matte(np.zeros((50, 70, 3), np.uint8))
    assert m.shape == (50, 70) and m.dtype == np.uint8
    with pytest.raises(ModelError, match="no 'actor' label"):
        SegmentationMatte(tiny_models / "seg", label="actor")
    take = make_take(tmp_path)
    res = run_composite(take, plain(make_plate(tmp_path, [48, 48], alpha=False), matte="segment", seg_model=tiny_models / "seg"), progress=False)
    assert res.report.done == [0, 1]


def test_broken_model_folder(tmp_path):
    from composite.models import DepthModel

    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{}")
    with pytest.raises(ModelError, match="could not load the depth model"):
        DepthModel(tmp_path / "broken")

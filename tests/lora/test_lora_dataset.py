"""Dataset import (folders, videos, takes), filters, captions and the CLI."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from lora.dataset import (Filters, caption_dataset, folder_candidates, import_images, open_dataset, read_caption, render_caption,
                          sync_captions, training_entries, video_candidates)

from lora_helpers import textured


def _frames():
    import cv2

    a, b, c = textured(96, 128, 1), textured(96, 128, 2), textured(96, 128, 3)
    blurred = cv2.GaussianBlur(textured(96, 128, 4), (0, 0), 6)
    dup = np.clip(a.astype(int) + np.random.default_rng(0).integers(-3, 4, a.shape), 0, 255).astype(np.uint8)
    return [a, b, blurred, c, dup]


def test_video_import_filters_the_blurred_and_the_duplicated_frame(tmp_path):
    from machinima.imageseq import write_video

    video = write_video(tmp_path / "clip.mp4", [f for f in _frames() for _ in range(2)], fps=4)  # each frame held 0.5 s
    ds = open_dataset(tmp_path / "ds", create=True)
    rep = import_images(ds, video_candidates(video, every_s=0.5), rights=["r1"])
    reasons = dict(rep.skipped)
    assert len(rep.added) == 3, rep.skipped
    assert any("blurry" in r for r in reasons.values()) and any("near-duplicate" in r for r in reasons.values())
    assert {it.source.frame for it in ds.items()} == {0, 2, 6} and all(it.source.kind == "video" for it in ds.items())
    assert all(it.rights == ["r1"] and "sharpness" in it.meta for it in ds.items())
    # importing the same video again adds nothing: every frame is now a near-duplicate of the dataset
    rep2 = import_images(ds, video_candidates(video, every_s=0.5))
    assert not rep2.added and len(ds) == 3


def test_scene_change_sampling_takes_one_frame_per_shot(tmp_path):
    from machinima.imageseq import write_video

    shots = [textured(64, 64, 10), np.full((64, 64, 3), (200, 40, 40), np.uint8), np.full((64, 64, 3), (30, 60, 200), np.uint8)]
    video = write_video(tmp_path / "cuts.mp4", [s for s in shots for _ in range(6)], fps=12)
    frames = [src.frame for _, _, src in video_candidates(video, scene=0.3)]
    assert frames == [0, 6, 12]


def test_folder_import_exposure_filter_and_take_import(tmp_path):
    from machinima.imageseq import write_image
    from machinima.passes import PassSet
    from machinima.take import Take

    folder = tmp_path / "photos"
    write_image(folder / "a.png", textured(64, 64, 1))
    write_image(folder / "dark.png", (textured(64, 64, 2) // 20).astype(np.uint8))
    ds = open_dataset(tmp_path / "ds", create=True, trigger="ohwx")
    rep = import_images(ds, folder_candidates(folder))
    assert [it.source.path.endswith("a.png") for it in rep.added] == [True]
    assert "too dark" in rep.skipped[0][1]
    take = Take.create(tmp_path / "takes", production="p", scene="1", shot="1", fps=24)
    take.finalize()
    take.close()
    ps = PassSet.create(take.passes_dir(), width=64, height=64, fps="24", engine="test")
    for f in range(4):
        ps.write("rgb", f, textured(64, 64, 20 + f))
    ps.save()
    rep = import_images(ds, __import__("lora.dataset", fromlist=["x"]).take_candidates(take.path, every=2), filters=Filters(dup_distance=None))
    assert [(it.source.kind, it.source.frame, it.source.pass_name) for it in rep.added] == [("take", 0, "rgb"), ("take", 2, "rgb")]


def test_captions_side_car_template_sync_and_verify(tmp_path):
    ds = open_dataset(tmp_path / "ds", create=True, trigger="ohwx")
    a = ds.add(textured(32, 32, 1), tags=["smiling"])
    ds.add(textured(32, 32, 2))
    caption_dataset(ds, template="photo of {trigger}, {tags}")
    assert read_caption(ds, a) == "photo of ohwx, smiling" and ds.get(a.id).caption == "photo of ohwx, smiling"
    assert (tmp_path / "ds" / "images" / "000002.txt").read_text().strip() == "photo of ohwx"
    (tmp_path / "ds" / "images" / "000001.txt").write_text("photo of ohwx, laughing\n")
    assert sync_captions(ds) == 1 and ds.get(a.id).caption == "photo of ohwx, laughing"
    assert caption_dataset(ds) == []  # existing captions are kept
    assert ds.verify() == []  # side-car captions are not orphans
    assert [e.caption for e in training_entries(ds)] == ["photo of ohwx, laughing", "photo of ohwx"]
    assert render_caption("{trigger}, {caption}, {tags}", trigger="ohwx") == "ohwx"


def test_dataset_cli_import_caption_list_set(tmp_path):
    from lora.dataset_cli import app
    from machinima.imageseq import write_image

    for i in range(3):
        write_image(tmp_path / "photos" / f"{i}.png", textured(48, 48, i))
    r = CliRunner()
    res = r.invoke(app, ["import", str(tmp_path / "photos"), "--out", str(tmp_path / "ds"), "--trigger", "ohwx", "--rights", "alice"])
    assert res.exit_code == 0, res.output
    assert "added 3" in res.output
    res = r.invoke(app, ["caption", str(tmp_path / "ds")])
    assert res.exit_code == 0 and "3 caption(s) written" in res.output, res.output
    res = r.invoke(app, ["caption", str(tmp_path / "ds"), "--set", "2=photo of ohwx, profile", "--list"])
    assert res.exit_code == 0 and "photo of ohwx, profile" in res.output and res.output.count("photo of ohwx") == 3, res.output
    res = r.invoke(app, ["caption", str(tmp_path / "ds"), "--set", "nope"])
    assert res.exit_code != 0 and "ID=TEXT" in str(res.exception)


def test_captioning_model_must_be_a_local_folder(tmp_path):
    from lora.dataset import load_captioner
    from lora.errors import CaptionerError

    with pytest.raises(CaptionerError, match="no captioning model at .*nothing is downloaded"):
        load_captioner(tmp_path / "blip")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text("{}")
    with pytest.raises(CaptionerError, match="cannot load the captioning model"):
        load_captioner(tmp_path / "bad")


def test_face_crop_keeps_the_box_and_skips_faceless_images(tmp_path):
    from skimage import data

    astro = data.astronaut()
    ds = open_dataset(tmp_path / "ds", create=True)
    cands = [("astro", astro, None), ("texture", textured(128, 128, 5), None)]
    rep = import_images(ds, ((l, i, __import__("machinima.collections", fromlist=["Source"]).Source()) for l, i, _ in cands), crop="face")
    assert [it.file for it in rep.added] == ["images/000001.png"] and rep.skipped == [("texture", "no face found (--crop face)")]
    it = rep.added[0]
    x0, y0, x1, y1 = it.box
    assert x1 - x0 == y1 - y0 == it.width == it.height and 100 < it.width < 512
    assert x0 < 220 < x1 and y0 < 100 < y1  # the astronaut's face is at about (220, 100)

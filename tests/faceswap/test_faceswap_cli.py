"""The whole loop from the command line: extract two identities, sort, train, export, merge."""

from __future__ import annotations

import json

from faceswap_testdata import moving_clip, write_clip
from typer.testing import CliRunner

from faceswap.cli import app


def test_extract_sort_train_export_merge_one_command_each(tmp_path, monkeypatch, grace, astronaut):
    import cv2

    monkeypatch.chdir(tmp_path)
    write_clip(tmp_path / "a", moving_clip(cv2.resize(astronaut, (256, 256)), 3))
    write_clip(tmp_path / "b", moving_clip(cv2.resize(grace, (256, 300)), 3))
    run = CliRunner().invoke
    for clip, fs in (("a", "alice"), ("b", "bob")):
        r = run(app, ["extract", str(tmp_path / clip), "--out", str(tmp_path / fs), "--face-type", "whole", "--size", "64"])
        assert r.exit_code == 0, r.output
        assert "3 face(s) added" in r.output
    r = run(app, ["sort", str(tmp_path / "alice"), "--by", "yaw"])
    assert r.exit_code == 0 and "3 face(s) ranked by yaw" in r.output, r.output
    r = run(app, ["train", "--src", str(tmp_path / "alice"), "--dst", str(tmp_path / "bob"), "--model", str(tmp_path / "m"),
                  "--arch", "liae", "--res", "64", "--iters", "2", "--batch", "2", "--e-dims", "4", "--ae-dims", "16", "--d-dims", "4",
                  "--rights-override", "our own test faces"])
    assert r.exit_code == 0, r.output
    assert "done at iteration 2" in r.output
    doc = json.loads((tmp_path / "m" / "model.json").read_text())
    assert doc["iteration"] == 2 and doc["rights"]["override"]["reason"] == "our own test faces"
    r = run(app, ["train", "--model", str(tmp_path / "m"), "--iters", "3", "--rights-override", "our own test faces"])
    assert r.exit_code == 0 and "done at iteration 3" in r.output, r.output
    assert json.loads((tmp_path / "m" / "model.json").read_text())["train"]["batch"] == 2  # resuming keeps the model's settings
    r = run(app, ["export-onnx", "--model", str(tmp_path / "m")])
    assert r.exit_code == 0 and "max difference to torch" in r.output, r.output
    r = run(app, ["merge", str(tmp_path / "b"), "--model", str(tmp_path / "m"), "--out", str(tmp_path / "out"), "--engine", "onnx",
                  "--color", "lct", "--smooth", "one-euro", "--blend", "seamless", "--rights-override", "our own test faces"])
    assert r.exit_code == 0, r.output
    assert "3 frame(s) merged" in r.output and (tmp_path / "out" / "faceswap-m.mp4").exists()


def test_verify_lists_problems_and_drops_broken_items(tmp_path, facesets):
    import shutil

    from faceswap.faceset import open_faceset

    fs = tmp_path / "fs"
    shutil.copytree(facesets[0], fs)
    with open_faceset(fs) as col:
        items = list(col)
    (fs / items[0].file).unlink()
    (fs / items[1].file).write_bytes(b"garbage")
    run = CliRunner().invoke
    r = run(app, ["verify", str(fs)])
    assert r.exit_code == 1 and "missing" in r.output and "corrupt" in r.output, r.output
    r = run(app, ["verify", str(fs), "--drop"])
    assert r.exit_code == 0 and "dropped 2 item(s)" in r.output and "2 item(s), " in r.output, r.output
    r = run(app, ["verify", str(tmp_path / "nope")])
    assert r.exit_code != 0 and "not a collection" in str(r.exception)


def test_train_preset_sets_the_cpu_settings_and_flags_override_it(tmp_path, facesets, monkeypatch):
    import torch

    from faceswap.train import PRESETS

    run = CliRunner().invoke
    args = ["train", "--src", str(facesets[0]), "--dst", str(facesets[1]), "--model", str(tmp_path / "m"), "--iters", "1",
            "--preset", "cpu", "--d-dims", "4", "--e-dims", "4", "--ae-dims", "16", "--batch", "2", "--rights-override", "test faces"]
    threads, set_threads, before = [], torch.set_num_threads, torch.get_num_threads()
    monkeypatch.setattr(torch, "set_num_threads", lambda n: (threads.append(n), set_threads(n)))
    r = run(app, args)
    assert r.exit_code == 0, r.output
    assert threads == [1, before]  # one torch thread while the cpu preset trains, the caller's count restored
    doc = json.loads((tmp_path / "m" / "model.json").read_text())
    assert doc["model"]["res"] == 64 and doc["model"]["d_dims"] == 4  # the preset's resolution, the flag's width
    want = PRESETS["cpu"]["train"]
    assert {k: doc["train"][k] for k in ("lr", "beta1", "clip_grad", "lr_half_life", "affine", "priority")} == {
        k: want[k] for k in ("lr", "beta1", "clip_grad", "lr_half_life", "affine", "priority")}
    assert doc["train"]["batch"] == 2
    r = run(app, args[:-2] + ["--preset", "gpu-huge", "--model", str(tmp_path / "m2"), "--rights-override", "t"])
    assert r.exit_code != 0 and "unknown preset 'gpu-huge'" in r.output


def test_sort_remove_that_would_leave_too_few_faces_is_refused_and_training_warns(tmp_path, astronaut, facesets):
    """24 frames of one still shot are 23 duplicates: `sort --by dupes --remove` says what it
    would delete and keeps them (exit 1); with --force it removes them and says what is left,
    and training on what is left warns instead of silently learning one picture."""
    import cv2

    from faceswap.faceset import open_faceset

    write_clip(tmp_path / "still", [cv2.resize(astronaut, (256, 256))] * 24)
    run = CliRunner().invoke
    r = run(app, ["extract", str(tmp_path / "still"), "--out", str(tmp_path / "fs"), "--size", "64"])
    assert r.exit_code == 0 and "24 face(s) added" in r.output, r.output
    r = run(app, ["sort", str(tmp_path / "fs"), "--by", "dupes", "--remove"])
    assert r.exit_code == 1 and "--remove would delete 23 of 24 faces (dupes), leaving 1: too few to train on" in str(r.exception), r.output
    with open_faceset(tmp_path / "fs") as col:
        assert len(col) == 24  # nothing removed
    r = run(app, ["sort", str(tmp_path / "fs"), "--by", "dupes", "--remove", "--force"])
    assert r.exit_code == 0 and "removed 23 of 24 face(s); 1 left (fewer than 20: training will warn)" in r.output, r.output
    r = run(app, ["train", "--src", str(tmp_path / "fs"), "--dst", str(facesets[1]), "--model", str(tmp_path / "m"), "--res", "64",
                  "--iters", "1", "--batch", "2", "--e-dims", "4", "--ae-dims", "16", "--d-dims", "4", "--rights-override", "our own test faces"])
    assert r.exit_code == 0, r.output
    assert "fs has only 1 face(s) (fewer than 20)" in " ".join(r.output.split()) and "bob has only 4 face(s)" in " ".join(r.output.split())

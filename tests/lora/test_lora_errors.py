"""Bad input: clear messages, nothing lost (dataset files and an earlier output stay as they were)."""

from __future__ import annotations

import hashlib

import pytest
from typer.testing import CliRunner

from lora.errors import BaseModelError, DatasetError, TrainConfigError
from lora.tiny import hash_embedder
from lora.train import TrainConfig, train

from lora_helpers import make_dataset


def snapshot(folder):
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and "index.sqlite" not in p.name}


def attempt(ds, base, out, **kw):
    c = TrainConfig.from_preset("cpu", rank=2, resolution=32, bucket_step=8, steps=2, eval_draws=0, **kw)
    return train(ds, base, out, c, embed=hash_embedder(), rights_override="test", progress=False)


@pytest.fixture
def setup(tmp_path):
    ds = make_dataset(tmp_path / "ds", n=3)
    out = tmp_path / "out" / "l.safetensors"
    out.parent.mkdir()
    out.write_bytes(b"an earlier LoRA")
    return ds, out


def check_nothing_lost(ds, out, before):
    assert snapshot(ds) == before
    assert out.read_bytes() == b"an earlier LoRA"
    assert not out.with_name("l.work").exists()


def test_corrupt_image(setup, tiny_base_dir):
    ds, out = setup
    (ds / "images" / "000002.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    before = snapshot(ds)
    with pytest.raises(DatasetError, match=r"000002\.png: not a readable image") as e:
        attempt(ds, tiny_base_dir, out)
    assert "nothing was changed" in str(e.value)
    check_nothing_lost(ds, out, before)


def test_image_without_caption_and_caption_without_image(setup, tiny_base_dir):
    ds, out = setup
    (ds / "images" / "000001.txt").unlink()
    (ds / "images" / "stray.txt").write_text("photo of ohwx")
    before = snapshot(ds)
    with pytest.raises(DatasetError) as e:
        attempt(ds, tiny_base_dir, out)
    msg = str(e.value)
    assert "000001.png: image has no caption" in msg and "images/stray.txt: caption file has no image" in msg
    assert "machinima dataset caption" in msg
    check_nothing_lost(ds, out, before)


def test_missing_base_and_not_a_model(setup, tmp_path, tiny_base_dir):
    ds, out = setup
    before = snapshot(ds)
    with pytest.raises(BaseModelError, match="base model not found at .*nothing is downloaded.*docs/models.md"):
        attempt(ds, tmp_path / "nowhere", out)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "readme.txt").write_text("not a model")
    with pytest.raises(BaseModelError, match="not a diffusers model folder"):
        attempt(ds, tmp_path / "junk", out)
    (tmp_path / "fake.safetensors").write_bytes(b"garbage")
    with pytest.raises(BaseModelError, match="cannot load the base model"):
        attempt(ds, tmp_path / "fake.safetensors", out)
    check_nothing_lost(ds, out, before)


def test_dataset_smaller_than_the_batch(setup, tiny_base_dir):
    ds, out = setup
    before = snapshot(ds)
    with pytest.raises(TrainConfigError, match="3 usable image.*fewer than the batch size 4"):
        attempt(ds, tiny_base_dir, out, batch_size=4)
    check_nothing_lost(ds, out, before)


def test_rights_are_required_for_training(setup, tiny_base_dir, tmp_path):
    """A face in the dataset must match a rights record; the item's typed rights label does not clear it."""
    import skimage.data

    from lora.dataset import caption_dataset, open_dataset
    from machinima.rights import NotCleared

    _, out = setup
    ds = make_dataset(tmp_path / "faces", n=3, caption=False)
    col = open_dataset(ds)
    col.add(skimage.data.astronaut(), rights=["test-subject"], source={"kind": "file", "path": "/photos/eileen.png"})
    caption_dataset(col)
    col.close()
    c = TrainConfig.from_preset("cpu", rank=2, resolution=32, bucket_step=8, steps=1, eval_draws=0)
    with pytest.raises(NotCleared, match=r"training not cleared .* item 4 \(.*\), face 0: a face that matches no rights record"):
        train(ds, tiny_base_dir, out, c, embed=hash_embedder(), production="film", rights_store=tmp_path / "rights", progress=False)
    assert out.read_bytes() == b"an earlier LoRA"


def test_cli_reports_errors_as_machinima_errors(setup, tmp_path):
    from lora.cli import app
    from machinima.errors import MachinimaError

    ds, out = setup
    res = CliRunner().invoke(app, ["train", str(ds), "--base", str(tmp_path / "nowhere"), "--out", str(out), "--override", "t"])
    assert res.exit_code != 0 and isinstance(res.exception, MachinimaError) and "base model not found" in str(res.exception)
    res = CliRunner().invoke(app, ["train", str(ds), "--base", str(tmp_path), "--out", str(out), "--preset", "3gb"])
    assert isinstance(res.exception, TrainConfigError) and "cpu, 8gb, 12gb, 24gb" in str(res.exception)
    res = CliRunner().invoke(app, ["train", str(tmp_path / "nods"), "--base", str(tmp_path), "--out", str(out)])
    assert isinstance(res.exception, DatasetError) and "not a collection" in str(res.exception)

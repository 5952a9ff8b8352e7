"""`machinima lora train --threads N` (and `threads = N` in a settings file): torch trains on N
CPU threads and the caller's setting is back afterwards; a count below 1 is one clear error
before anything is written."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from lora_helpers import make_dataset


def invoke(*args):
    from lora.cli import app

    return CliRunner().invoke(app, ["train", *map(str, args)])


@pytest.fixture(scope="module")
def base_with_te(tmp_path_factory):
    """The CLI trains from a full base (text encoder included), as a user's would be."""
    from lora.tiny import tiny_base

    return tiny_base(tmp_path_factory.mktemp("base") / "tiny-sd-te", text_encoder=True)


def _spy(monkeypatch) -> list[int]:
    """torch's thread count as the trainer sees it, at the start of each run."""
    from lora.train import Trainer

    seen: list[int] = []
    real = Trainer.run

    def run(self, *a, **kw):
        seen.append(torch.get_num_threads())
        return real(self, *a, **kw)

    monkeypatch.setattr(Trainer, "run", run)
    return seen


def test_threads_from_the_flag_and_from_a_settings_file(tmp_path, base_with_te, monkeypatch):
    seen = _spy(monkeypatch)
    ds = make_dataset(tmp_path / "ds", n=2)
    common = ["--steps", "1", "--rank", "2", "--resolution", "32", "--bucket-step", "8", "--sample-seeds", "0", "--override", "synthetic test images"]
    before = torch.get_num_threads()
    res = invoke(ds, "--base", base_with_te, "--out", tmp_path / "a.safetensors", "--threads", "2", *common)
    assert res.exit_code == 0, (res.output, res.exception)
    assert seen == [2] and torch.get_num_threads() == before  # trained on 2, the caller's 1 is back
    settings = tmp_path / "run.toml"
    settings.write_text('schema = "machinima.lora-train"\nthreads = 3\n')
    res = invoke("--settings", settings, ds, "--base", base_with_te, "--out", tmp_path / "b.safetensors", *common)
    assert res.exit_code == 0, (res.output, res.exception)
    assert seen == [2, 3] and torch.get_num_threads() == before
    res = invoke(ds, "--base", base_with_te, "--out", tmp_path / "c.safetensors", *common)  # no flag: torch's own setting is left
    assert res.exit_code == 0, (res.output, res.exception)
    assert seen == [2, 3, before]


def test_zero_threads_is_one_clear_error_and_writes_nothing(tmp_path, base_with_te):
    from lora.errors import TrainConfigError

    ds = make_dataset(tmp_path / "ds", n=2)
    out = tmp_path / "x.safetensors"
    res = invoke(ds, "--base", base_with_te, "--out", out, "--threads", "0")
    assert isinstance(res.exception, TrainConfigError) and "--threads 0: must be 1 or more" in str(res.exception)
    assert not out.exists() and not (tmp_path / "x.work").exists()

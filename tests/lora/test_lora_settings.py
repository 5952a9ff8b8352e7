"""`machinima lora train --settings FILE`: the file's keys are the options, flags typed on the line
win, paths are relative to the file; the same run from flags alone writes the same LoRA weights."""

from __future__ import annotations

import hashlib

import pytest
from typer.testing import CliRunner

from lora_helpers import make_dataset


def invoke(*args):
    from lora.cli import app

    return CliRunner().invoke(app, ["train", *map(str, args)])


def weights(p) -> dict[str, str]:
    """Each tensor's bytes, hashed (the file's metadata names its own path and time)."""
    from safetensors.numpy import load_file

    return {k: hashlib.sha256(v.tobytes()).hexdigest() for k, v in load_file(str(p)).items()}


def test_a_settings_file_trains_what_the_same_flags_train_and_a_flag_wins(tmp_path):
    from lora.tiny import tiny_base

    tiny_base_dir = tiny_base(tmp_path / "base", text_encoder=True)
    proj = tmp_path / "proj"
    make_dataset(proj / "datasets" / "ds", n=2)
    (proj / "runs").mkdir()
    settings = proj / "runs" / "hero.toml"
    settings.write_text(f'schema = "machinima.lora-train"\nversion = 1\ndataset = "../datasets/ds"\nbase = "{tiny_base_dir}"\n'
                        'out = "../loras/hero.safetensors"\nsteps = 7\nrank = 2\nresolution = 32\nbucket-step = 8\n'
                        'lr-scheduler = "cosine"\nsample-seeds = "0"\nno-cache-latents = false\nsave-precision = "fp32"\n'
                        'override = "synthetic test images"\n')
    res = invoke("--settings", settings, "--steps", "2")  # the flag wins over steps = 7
    assert res.exit_code == 0, (res.output, res.exception)
    made = proj / "loras" / "hero.safetensors"  # relative to the settings file, not the current folder
    assert made.is_file() and "(2 steps" in res.output
    flags = tmp_path / "flags.safetensors"
    res = invoke(proj / "datasets" / "ds", "--base", tiny_base_dir, "--out", flags, "--steps", "2", "--rank", "2", "--resolution", "32",
                 "--bucket-step", "8", "--lr-scheduler", "cosine", "--sample-seeds", "0", "--save-precision", "fp32",
                 "--override", "synthetic test images")
    assert res.exit_code == 0, (res.output, res.exception)
    assert weights(made) == weights(flags) and len(weights(made)) > 4


@pytest.mark.parametrize("body, message", [
    ('stpes = 3\n', "unknown setting 'stpes'; did you mean steps"),
    ('steps = "many"\n', "steps = 'many': Invalid value for '--steps'"),
    ('no-grad-checkpointing = "yes"\n', "no-grad-checkpointing must be true or false"),
    ('rank = 2.5\n', "rank = 2.5: Invalid value for '--rank'"),
    ('schema = "machinima.composite"\n', "is for 'machinima.composite', this command reads 'machinima.lora-train'"),
    ('steps = 3\n', "--base is needed"),
])
def test_bad_settings_are_one_clear_error_each(tmp_path, body, message):
    from machinima.settingsfile import SettingsError

    make_dataset(tmp_path / "ds", n=1)
    f = tmp_path / "s.toml"
    f.write_text('dataset = "ds"\n' + body)
    res = invoke("--settings", f)
    assert isinstance(res.exception, SettingsError) and message in str(res.exception), (res.output, res.exception)


def test_the_shipped_settings_file_names_only_real_options(tmp_path):
    """Every key of `machinima examples copy lora-train` is accepted; what fails is its example
    dataset, which does not exist here."""
    from lora.errors import DatasetError
    from machinima.examples import copy

    f = copy("lora-train", tmp_path)
    res = invoke("--settings", f)
    assert isinstance(res.exception, DatasetError), (res.output, res.exception)

"""`machinima composite TAKE --settings FILE`: 47 options as one file (issue 26). The file gives
what the same flags give, a flag on the line wins, paths are relative to the file, a typo is one
clear error, and every key of the shipped example is a real option."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

import composite.pipeline as pipeline

SHIPPED = Path(__file__).resolve().parents[2] / "composite" / "examples" / "composite.toml"


@pytest.fixture
def captured(tmp_path, monkeypatch):
    """The settings the command hands to the pipeline (the pipeline itself is tested elsewhere)."""
    got = []

    def fake(take, settings, **run):
        got.append((take, settings))
        raise SystemExit(0)

    monkeypatch.setattr(pipeline, "run_composite", fake)
    take = tmp_path / "takes" / "p_1_a_t001"
    take.mkdir(parents=True)
    monkeypatch.setattr("machinima.cli.resolve_take", lambda ref, root=None: take)
    return got


def invoke(*args):
    from composite.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


def test_a_settings_file_gives_what_the_flags_give_and_a_flag_wins(tmp_path, captured):
    flags = ["--plate", tmp_path / "runs" / "plates" / "a.mp4", "--key", "blue", "--place", "0.5,0,2", "--height", "1.6",
             "--no-track", "--grain", "none", "--shadow", "0.2", "--format", "exr", "--frames", "0:8", "--no-video"]
    invoke("t", *flags)
    f = tmp_path / "runs" / "shot.toml"
    f.parent.mkdir()
    f.write_text('schema = "machinima.composite"\nversion = 1\nplate = "plates/a.mp4"\nkey = "blue"\nplace = "0.5,0,2"\n'
                 'height = 1.6\ntrack = false\ngrain = "none"\nshadow = 0.2\nformat = "exr"\nframes = "0:8"\nvideo = false\n')
    invoke("t", "--settings", f)
    assert captured[0][1] == captured[1][1]  # paths in the file are relative to the file
    invoke("t", "--settings", f, "--height", "1.9", "--grain", "plate")
    s = captured[2][1]
    assert s.placement.height_m == 1.9 and s.grain == "plate" and s.matte == "blue" and s.output_format == "exr"


@pytest.mark.parametrize("body, message", [
    ('grian = "none"\n', "unknown setting 'grian'; did you mean grain?"),
    ('height = "tall"\n', "height = 'tall'"),
    ('schema = "machinima.lora-train"\n', "is for 'machinima.lora-train', this command reads 'machinima.composite'"),
    ('plate = \n', "not valid TOML"),
])
def test_bad_settings_are_one_clear_error_each(tmp_path, captured, body, message):
    from machinima.settingsfile import SettingsError

    f = tmp_path / "s.toml"
    f.write_text(body)
    res = invoke("t", "--settings", f)
    assert isinstance(res.exception, SettingsError) and message in str(res.exception), (res.output, res.exception)
    assert not captured


def test_the_shipped_settings_file_names_only_real_options(captured):
    res = invoke("t", "--settings", SHIPPED)
    assert res.exit_code == 0, (res.output, res.exception)
    s = captured[0][1]
    assert s.plate == SHIPPED.parent / "plates" / "alice.mp4" and s.placement.position == (0.6, 0.0, -0.4)

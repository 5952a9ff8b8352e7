"""`machinima bridge ...` as a person types it: play with stdin steering, errors as one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

import engine_bridge
from machinima.take import Take
from machinima.vmc import VMCDecoder

from bridge_helpers import make_take

REPO = Path(engine_bridge.__file__).resolve().parent.parent


def run(args, cwd, stdin="", timeout=60):
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "machinima", "bridge", *args], input=stdin, capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout)


def test_play_with_stdin_commands_and_record_into(tmp_path, udp):
    path, expected = make_take(tmp_path / "takes", performers=("alice",), n=30, fps=30)
    rx = udp()
    # stdin: jump to the last second and half speed; the take ends on its own
    r = run(["play", str(path), "--vmc", f"127.0.0.1:{rx.port}", "--speed", "1", "--record-into", str(tmp_path / "rec"), "--osc-in", "0"],
            tmp_path, stdin="seek 01:00:00:20\nspeed 0.5\nbogus\n")
    assert r.returncode == 0, r.stderr
    assert "unknown command 'bogus'" in r.stderr and "sent " in r.stderr and "recorded into" in r.stderr
    rx.wait_for(5)
    dec = VMCDecoder()
    times = [dec.decode(d).time_s for _, d in rx.packets]
    assert times[-1] * 30 == np.float32(29.0) * 1 or round(times[-1] * 30, 3) == 29.0
    rec = [p for p in (tmp_path / "rec").iterdir() if p.is_dir()]
    assert len(rec) == 1 and Take.open(rec[0]).manifest.status == "complete"


def test_errors_are_one_line(tmp_path):
    path, _ = make_take(tmp_path / "takes", performers=("alice",), n=5, fps=30)
    bad = tmp_path / "map.toml"
    bad.write_text('[[engine]]\ntarget = "vmc"\n[[engine.avatar]]\nperformer = "alice"\nbones = ["Hips", "LeftUperArm"]\n')
    r = run(["play", str(path), "--mapping", str(bad), "--no-keys"], tmp_path)
    assert r.returncode == 1 and "unknown bone 'LeftUperArm'" in r.stderr and "Traceback" not in r.stderr
    assert r.stderr.startswith("error: ")  # (rich wraps long lines at the terminal width)


def test_cli_commands_in_process(tmp_path):
    from typer.testing import CliRunner

    from engine_bridge.cli import app
    from engine_bridge.errors import MappingError, PerformerMissingError

    path, _ = make_take(tmp_path / "takes", performers=("alice",), n=5, fps=30)
    runner = CliRunner()
    r = runner.invoke(app, ["play", str(path), "--vmc", "carol=127.0.0.1:9", "--no-keys"])
    assert isinstance(r.exception, PerformerMissingError) and "'carol'" in str(r.exception)
    bad = tmp_path / "map.toml"
    bad.write_text('[[engine]]\ntarget = "vmc"\n[[engine.avatar]]\nperformer = "alice"\nbones = ["Hips", "LeftUperArm"]\n')
    r = runner.invoke(app, ["check", str(bad)])
    assert isinstance(r.exception, MappingError) and "did you mean 'LeftUpperArm'" in str(r.exception)
    ok = Path(engine_bridge.__file__).parent / "examples" / "mapping.toml"
    r = runner.invoke(app, ["check", str(ok)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["check", str(ok), "--take", str(path)])
    assert isinstance(r.exception, PerformerMissingError) and "'bob'" in str(r.exception)
    r = runner.invoke(app, ["targets"])
    assert r.exit_code == 0

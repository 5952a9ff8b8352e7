"""The batch runner on synthetic takes: outputs, params.json, resume, QC, CLI, Ctrl-C."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from machinima.imageseq import find_frame
import pytest

import stylize
from machinima.imageseq import list_frames, read_image
from stylize.errors import ControlError, SourceError
from stylize.look import Look
from stylize.qc import qc_step
from stylize.runner import parse_range, stylize_take
from stylize.tiny import tiny_engine

from stylize_helpers import make_take

REPO = Path(stylize.__file__).resolve().parent.parent

CLASSICAL = {"name": "paint", "engine": "classical", "classical": {"sigma_s": 20.0},
             "controls": [{"kind": "depth"}, {"kind": "lineart"}, {"kind": "mask", "options": {"mask": "ada"}}],
             "cadence": {"mode": "propagate", "every": 3}}


def diffusion_doc(prompt_b="a night street"):
    return {"name": "dream", "engine": "diffusion", "prompt": "a street", "seed": 2,
            "model": {"base": "tiny", "steps": 4, "strength": 0.6, "guidance": 1.0},
            "controls": [{"kind": "depth"}, {"kind": "pose", "weight": 0.5}],
            "shots": [{"name": "A", "frames": [0, 3]}, {"name": "B", "frames": [4, 7], "prompt": prompt_b}],
            "cadence": {"mode": "propagate", "every": 2}}


def test_classical_run_writes_frames_params_video_and_qc(tmp_path):
    take = make_take(tmp_path / "takes", n=8)
    res = stylize_take(take, Look.from_doc(CLASSICAL), progress=False)
    out = take / "post" / "stylize-paint"
    assert res.out_dir == out and sorted(list_frames(out / "frames")) == list(range(8))
    img = read_image(find_frame(out / "frames", 5))
    assert img.shape == (32, 32, 3) and img.dtype == np.uint8
    params = json.loads((out / "params.json").read_text())
    assert params["params"]["engine"]["engine"] == "classical"
    assert params["inputs"]["plan"]["keyframe_list"] == [0, 3, 6, 7]
    assert "engine: classical" in params["notes"][0]
    assert res.video and res.video.exists() and res.video.stat().st_size > 0
    rep = qc_step(out)
    assert rep["pairs"] == 7 and rep["mean"] is not None and rep["p95"] >= rep["mean"] * 0.5
    assert (out / "qc.json").exists() and read_image(out / "contact.png").ndim == 3
    again = stylize_take(take, Look.from_doc(CLASSICAL), progress=False)
    assert again.report.done == [] and len(again.report.skipped) == 8


def test_resume_redoes_only_frames_whose_params_changed(tmp_path, tiny):
    take = make_take(tmp_path / "takes", n=8)
    look = Look.from_doc(diffusion_doc())
    eng = tiny_engine(look, tiny)
    first = stylize_take(take, look, engine=eng, progress=False, video=False)
    assert sorted(first.report.done) == list(range(8))
    frames = take / "post" / "stylize-dream" / "frames"
    before = {f: read_image(p) for f, p in list_frames(frames).items()}
    same = stylize_take(take, look, engine=eng, progress=False, video=False)
    assert same.report.done == [] and len(same.report.skipped) == 8
    changed = Look.from_doc(diffusion_doc(prompt_b="a snowy street"))
    redo = stylize_take(take, changed, engine=tiny_engine(changed, tiny), progress=False, video=False)
    rep = qc_step(take / "post" / "stylize-dream")
    assert [s["shot"] for s in rep["shots"]] == ["A", "B"] and all(s["pairs"] == 3 for s in rep["shots"])
    assert sorted(redo.report.done) == [4, 5, 6, 7] and sorted(redo.report.skipped) == [0, 1, 2, 3]
    after = {f: read_image(p) for f, p in list_frames(frames).items()}
    assert all(np.array_equal(before[f], after[f]) for f in range(4))
    assert not np.array_equal(before[4], after[4])
    seeds = Look.from_doc({**diffusion_doc(), "seed": 9})
    assert len(stylize_take(take, seeds, engine=tiny_engine(seeds, tiny), progress=False, video=False).report.done) == 8


def test_bad_inputs_fail_clearly(tmp_path):
    take = make_take(tmp_path / "takes", n=4, pose=False)
    look = Look.from_doc({**CLASSICAL, "controls": [{"kind": "pose"}]})
    with pytest.raises(ControlError, match="pose"):
        stylize_take(take, look, progress=False)
    with pytest.raises(SourceError, match="no frames selected"):
        stylize_take(take, Look.from_doc(CLASSICAL), frames=(50, 60), progress=False)
    with pytest.raises(SourceError, match="unknown shot"):
        stylize_take(take, Look.from_doc(CLASSICAL), shots=["Z"], progress=False)
    with pytest.raises(SourceError):
        parse_range("5-2")
    with pytest.raises(ControlError, match="options.mask"):
        stylize_take(take, Look.from_doc({**CLASSICAL, "controls": [{"kind": "mask"}]}), progress=False)
    with pytest.raises(SourceError, match="no passes"):
        stylize.runner.PassSource(tmp_path / "nowhere")


def test_preview_and_plates_folder(tmp_path):
    take = make_take(tmp_path / "takes", n=8)
    res = stylize_take(take, Look.from_doc(CLASSICAL), preview=3, progress=False, video=False)
    assert res.out_dir.name == "stylize-paint-preview" and sorted(list_frames(res.out_dir / "frames")) == [0, 4, 7]
    cadence = json.loads((res.out_dir / "params.json").read_text())["params"]["look"]["cadence"]
    assert cadence["init_blend"] == 0.0 and cadence["init_noise"] is False  # preview keyframes are independent
    plates = take / "passes" / "rgb"
    live = Look.from_doc({**CLASSICAL, "controls": [{"kind": "canny"}, {"kind": "softedge"}], "cadence": {"mode": "hold", "every": 2}})
    res = stylize_take(take, live, input_folder=plates, step_id="plates", frames=(2, 5), progress=False, video=False)
    assert sorted(list_frames(res.out_dir / "frames")) == [2, 3, 4, 5]
    assert json.loads((res.out_dir / "params.json").read_text())["inputs"]["source"]["kind"] == "folder"


def test_cli_default_command_and_qc(tmp_path):
    from typer.testing import CliRunner

    from stylize.cli import app

    take = make_take(tmp_path / "takes", n=6)
    look_file = tmp_path / "paint.toml"
    look_file.write_text('engine = "classical"\n[cadence]\nmode = "hold"\nevery = 2\n')
    r = CliRunner().invoke(app, [str(take), "--look", str(look_file), "--frames", "0:3"])
    assert r.exit_code == 0, r.output
    assert "4 frames made" in r.output
    r = CliRunner().invoke(app, ["qc", str(take / "post" / "stylize-paint")])
    assert r.exit_code == 0, r.output
    assert "contact sheet" in r.output


SLOW_RUN = """
import sys, time
from stylize.engines import ClassicalEngine
from stylize.look import Look
from stylize.runner import stylize_take
from machinima.errors import MachinimaError

class Slow(ClassicalEngine):
    def stylize(self, images, controls, **kw):
        time.sleep(0.3 * len(images))
        return super().stylize(images, controls, **kw)

look = Look.from_doc({"name": "slow", "engine": "classical", "cadence": {"mode": "every"}})
eng = Slow(look); eng.batch = 3
print("ready", flush=True)
try:
    stylize_take(sys.argv[1], look, engine=eng, progress=False)
except MachinimaError as exc:
    print("stopped:", exc, flush=True)
    sys.exit(3)
"""


def test_sigint_mid_run_leaves_no_half_written_frame_and_resumes(tmp_path):
    take = make_take(tmp_path / "takes", n=12)
    script = tmp_path / "slow.py"
    script.write_text(SLOW_RUN)
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.Popen([sys.executable, str(script), str(take)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    ledger = take / "post" / "stylize-slow" / "ledger.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (ledger.exists() and len(ledger.read_text().splitlines()) >= 2):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 3, out
    assert "stopped" in out and "again to resume" in out
    frames_dir = ledger.parent / "frames"
    assert not [p for p in frames_dir.iterdir() if p.name.startswith(".")]  # no temp files left
    recs = [json.loads(x) for x in ledger.read_text().splitlines()]
    assert 2 <= len(recs) < 12
    files = list_frames(frames_dir)
    assert sorted(files) == sorted(r["frame"] for r in recs)  # every file on disk is a finished, recorded frame
    assert len(files) % 3 == 0  # the batch diffused when Ctrl-C came is kept whole, not thrown away
    for p in files.values():
        assert read_image(p).shape == (32, 32, 3)
    from stylize.engines import ClassicalEngine

    look = Look.from_doc({"name": "slow", "engine": "classical", "cadence": {"mode": "every"}})
    eng = ClassicalEngine(look)
    eng.batch = 3  # the same chunking as the interrupted run (chunks are part of a keyframe's key)
    res = stylize_take(take, look, engine=eng, progress=False)
    assert sorted(res.report.skipped) == sorted(files) and len(res.report.done) == 12 - len(files)

"""QOI frames under one signed sequence manifest per step (``disclosure.png``): each frame is
marked with its id, its SHA-256 is listed in it. The manifest is read back by c2pa-python's
reader; a changed frame, a frame the manifest does not list, and the step's frames carried to
another project each fail with a one-line reason; `machinima verify` and the audit count them."""

import json
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from machinima import provenance as pv
from machinima.cli import app
from machinima.poststep import PostStep

pytest.importorskip("qoi")
pytestmark = pytest.mark.usefixtures("isolated")


def _process(photo):
    return lambda fr: [{"rgb": np.ascontiguousarray(np.roll(photo[:256, :320], 7 * f, axis=1)),
                        "mask": np.zeros((32, 32), np.uint8)} for f in fr]


def test_qoi_frames_verify_on_their_sequence_manifest(project, photo):
    root, take = project
    step = PostStep(take / "post" / "look", "stylize", {"n": 3}, inputs={"rgb": "passes/rgb"}, intermediate="qoi")
    step.run(range(3), _process(photo), progress=False)
    side = step.out_dir / "disclosure.png"
    state, man, _ = pv.read_manifest(side)
    assert state == "trusted" or state == "valid"
    seq = next(a for a in man["assertions"] if a["label"] == "org.machinima.sequence")["data"]
    assert sorted(seq["frames"]) == ["rgb/000000.qoi", "rgb/000001.qoi", "rgb/000002.qoi"] and seq["count"] == 3
    assert json.loads((step.out_dir / "params.json").read_text())["frames"]["disclosure"].startswith("sequence manifest")
    for f in range(3):
        r = pv.verify_file(step.output_path("rgb", f))
        assert r.status == "ok" and r.watermark_matches and r.watermark_authentic and r.step == "look", r.to_doc()
    res = CliRunner().invoke(app, ["verify", str(take)])
    assert res.exit_code == 0 and "4 file(s): ok 4" in res.output and "disclosure.png" in res.output, res.output

    # a changed frame: its hash is not the one signed
    good = step.output_path("rgb", 1)
    data = bytearray(good.read_bytes())
    data[len(data) // 2] ^= 0x5A
    good.write_bytes(bytes(data))
    r = pv.verify_file(good)
    assert r.status == "tampered" and "changed after" in r.reason and "sequence.hashMismatch" in r.failures
    # a frame the manifest does not list (dropped in by hand)
    shutil.copy(step.output_path("rgb", 0), step.out_dir / "rgb" / "000009.qoi")
    r = pv.verify_file(step.out_dir / "rgb" / "000009.qoi")
    assert r.status == "tampered" and "not listed" in r.reason
    res = CliRunner().invoke(app, ["verify", str(step.out_dir)])
    assert res.exit_code == 1 and "tampered 2" in res.output

    # the audit counts QOI frames as outputs and finds the bad ones
    from machinima.rights.audit import audit

    rep = audit(take, store=root / "rights")
    sa = next(s for s in rep.steps if s.step == "look")
    assert sa.outputs == 5 and sa.disclosed == 3 and len(sa.problems) == 2


def test_no_sidecar_and_another_project(project, photo, tmp_path_factory, monkeypatch):
    root, take = project
    step = PostStep(take / "post" / "look", "stylize", {}, intermediate="qoi")
    step.run(range(1), _process(photo), progress=False)
    frame = step.output_path("rgb", 0)
    # the whole step folder carried to another project: signed by a stranger there
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    (elsewhere / "machinima.toml").write_text('production = "other"\n')
    shutil.copytree(step.out_dir, elsewhere / "look")
    monkeypatch.chdir(elsewhere)
    r = pv.verify_file(elsewhere / "look" / "rgb" / "000000.qoi")
    assert r.status == "untrusted", r.to_doc()
    # the sidecar lost: the mark is there, the manifest is not
    (step.out_dir / "disclosure.png").unlink()
    r = pv.verify_file(frame, trust=pv.trust_for(root))
    assert r.status == "watermark-only" and "no manifest" in r.reason
    # a resumed run with nothing new to do seals the step again
    again = PostStep(take / "post" / "look", "stylize", {}, intermediate="qoi")
    assert again.run(range(1), _process(photo), progress=False).skipped == [0]
    assert pv.verify_file(frame, trust=pv.trust_for(root)).status == "ok"

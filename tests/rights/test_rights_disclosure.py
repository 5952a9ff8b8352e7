"""Disclosure on by default: no variable or setting turns it off; an "off" decision is recorded
in the take (who, when, why, signed) and reported; a step run from outside the project signs
like one run inside it and never silently replaces a production-signed step."""

import json
import os

import numpy as np
import pytest
from typer.testing import CliRunner

from machinima import provenance as pv
from machinima import rights
from machinima.cli import app
from machinima.poststep import PostStep, write_video
from machinima.rights_cli import app as rights_app

pytestmark = pytest.mark.usefixtures("isolated")


def _process(photo):
    return lambda fr: [{"rgb": np.ascontiguousarray(np.roll(photo[:256, :320], 4 * f, axis=1))} for f in fr]


def test_a_variable_or_a_setting_cannot_turn_disclosure_off(take_dir, photo, monkeypatch, tmp_path):
    monkeypatch.setenv("MACHINIMA_RIGHTS__DISCLOSE", "false")
    with pytest.raises(rights.DisclosureError, match="cannot be turned off by a setting") as ei:
        PostStep(take_dir / "post" / "s", "stylize", {})
    assert "machinima rights disclosure off TAKE" in ei.value.hint
    monkeypatch.delenv("MACHINIMA_RIGHTS__DISCLOSE")
    (tmp_path / "machinima.toml").write_text("[rights]\ndisclose = false\n")
    with pytest.raises(rights.DisclosureError, match="cannot be turned off by a setting"):
        PostStep(take_dir / "post" / "s", "stylize", {})
    assert not (take_dir / "post" / "s" / "ledger.jsonl").exists()  # nothing was written undisclosed


def test_off_is_a_recorded_signed_decision_that_verify_and_audit_report(take_dir, photo, tmp_path):
    res = CliRunner().invoke(rights_app, ["disclosure", "off", str(take_dir), "--reason", "festival cut: disclosed in the credits",
                                          "--by", "ana"])
    assert res.exit_code == 0, res.output
    step = PostStep(take_dir / "post" / "s", "stylize", {})
    step.run(range(2), _process(photo), progress=False)
    doc = json.loads((step.out_dir / "params.json").read_text())
    assert "disclosure" not in doc and doc["disclosure_off"]["by"] == "ana" and "festival cut" in doc["disclosure_off"]["reason"]
    assert pv.read_manifest(step.output_path("rgb", 0))[0] == "absent"
    res = CliRunner().invoke(app, ["verify", str(take_dir)])
    assert res.exit_code == 1 and "disclosure turned off by ana" in res.output and "festival cut" in res.output
    from machinima.rights.audit import audit

    rep = audit(take_dir, store=rights.RightsStore(tmp_path / "rights"))
    assert not rep.bad and rep.decisions[0]["by"] == "ana" and rep.steps[0].decision["disclose"] is False
    # an edited decision is not honoured: the next step discloses again, and audit says why
    p = take_dir / "disclosure.json"
    d = json.loads(p.read_text())
    d["by"] = "someone else"
    p.write_text(json.dumps(d))
    again = PostStep(take_dir / "post" / "s2", "stylize", {})
    assert again.disclosure is not None
    rep = audit(take_dir, store=rights.RightsStore(tmp_path / "rights"))
    assert rep.bad and any("changed after it was signed" in x for x in rep.problems)
    # back on: the history keeps the earlier decision
    res = CliRunner().invoke(rights_app, ["disclosure", "on", str(take_dir)])
    assert res.exit_code == 0
    d = json.loads(p.read_text())
    assert d["disclose"] is True and d["history"][-1]["by"] == "someone else"


def test_off_needs_a_reason_and_code_cannot_switch_it_off(take_dir):
    with pytest.raises(rights.DisclosureError, match="say why"):
        pv.record_decision(take_dir, False, "  ")
    from machinima.errors import MachinimaError

    with pytest.raises(MachinimaError, match="cannot be switched off in code"):
        PostStep(take_dir / "post" / "s", "stylize", {}, disclosure=False)


def test_a_step_run_from_outside_the_project_signs_like_inside(take_dir, photo, chain, tmp_path, tmp_path_factory, monkeypatch):
    project = take_dir.parent.parent
    (project / "machinima.toml").write_text(
        f'production = "film"\n[rights]\ncert = "{chain.cert}"\nkey = "{chain.key}"\ntrust_anchors = "{chain.root_cert}"\n')
    monkeypatch.chdir(tmp_path_factory.mktemp("somewhere-else"))
    step = PostStep(take_dir / "post" / "look", "stylize", {})
    step.run(range(1), _process(photo), progress=False)
    write_video(step.out_dir / "look.mp4", [_process(photo)([f])[0]["rgb"] for f in range(4)], fps=24)
    reps = {os.path.basename(r.path): r for r in pv.verify_path(step.out_dir)}
    frame = step.output_path("rgb", 0).name  # 000000.qoi (the sequence manifest's) or 000000.png
    assert reps[frame].status == "ok" and "production anchors" in reps[frame].anchor
    assert reps["look.mp4"].status == "ok" and reps["look.mp4"].watermark_matches, reps["look.mp4"].to_doc()
    # the production certificate cannot be found on a later run: refuse to re-sign that step with another key
    (project / "machinima.toml").rename(project / "machinima.toml.off")
    with pytest.raises(Exception, match="was signed with production certificate.*would sign with local chain"):
        PostStep(take_dir / "post" / "look", "stylize", {})
    assert reps[frame].path == str(step.output_path("rgb", 0)) and pv.verify_file(step.output_path("rgb", 0), trust=pv.Trust(
        [pv.trust.Anchor("production", chain.root_cert.read_bytes(), False, ["machinima test production"])])).status == "ok"

"""Disclosure wired into the shared post-step loop, the audit, and `machinima verify`."""

import json
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from machinima import provenance as pv
from machinima import rights
from machinima.poststep import PostStep

pytestmark = pytest.mark.usefixtures("isolated")


def _frames(photo):
    def process(frames):
        out = []
        for f in frames:
            rgb = np.ascontiguousarray(np.roll(photo[:256, :320], 3 * f, axis=1))
            out.append({"rgb": rgb, "mask": (rgb[..., 0] > 128).astype(np.uint8) * 255, "depth": np.full((16, 16), f, np.float32)})
        return out

    return process


def test_disclosure_is_on_by_default_with_the_projects_local_chain(take_dir, photo):
    """No certificate configured: every picture output is still marked and signed, by the
    project's own local chain, which verify names as such; masks and data are left alone."""
    # a project folder with no [rights] at all (without one, a local chain in any folder above, left
    # there by another test's job outside a project, would be the one found)
    (take_dir.parent.parent / "machinima.toml").write_text('production = "film"\n')
    step = PostStep(take_dir / "post" / "plain", "stylize", {"a": 1}, inputs={"rgb": "passes/rgb"})
    step.run(range(2), _frames(photo), progress=False)
    doc = json.loads((step.out_dir / "params.json").read_text())
    assert doc["disclosure"]["signed_with"].startswith("local chain of ") and "rights" not in doc
    reps = pv.verify_path(take_dir)
    if step.intermediate == "qoi":  # QOI frames: one sequence manifest, listed beside them
        assert [r.path.rsplit("/", 1)[-1] for r in reps if r.path.endswith("disclosure.png")] == ["disclosure.png"]
    reps = [r for r in reps if not r.path.endswith("disclosure.png")]
    assert sorted(r.path.rsplit("/", 2)[-2] for r in reps) == ["rgb", "rgb"]  # masks are not pictures to disclose
    assert all(r.status == "ok-local" and "local chain" in r.anchor and r.watermark_authentic for r in reps), [r.to_doc() for r in reps]
    local = take_dir.parent.parent / ".machinima" / "local-chain"
    assert (local / "root.pem").is_file() and oct((local / "signer.key").stat().st_mode & 0o777) == "0o600"
    from machinima.imageseq import read_image

    rgb1 = np.roll(photo[:256, :320], 3, axis=1)
    out = read_image(step.output_path("rgb", 1))
    assert not np.array_equal(out, rgb1) and np.abs(out.astype(int) - rgb1).mean() < 2  # marked, invisibly
    assert np.array_equal(read_image(step.output_path("mask", 1)), (rgb1[..., 0] > 128).astype(np.uint8) * 255)


def test_every_rgb_output_disclosed_with_override(take_dir, photo, identity, tmp_path):
    clearance = rights.require("film", ["me"], "face_replacement", override="my own face, test run", store=tmp_path / "rights")
    d = pv.Disclosure.for_step(take_dir / "post" / "swap", "faceswap-merge", identity, inputs={"rgb": "passes/rgb"})
    step = PostStep(take_dir / "post" / "swap", "faceswap-merge", {"blend": 0.5}, inputs={"rgb": "passes/rgb"},
                    rights=clearance, disclosure=d)
    rep = step.run(range(3), _frames(photo), progress=False)
    assert rep.done == [0, 1, 2]
    doc = json.loads((step.out_dir / "params.json").read_text())
    assert doc["rights"]["override"]["reason"] == "my own face, test run"
    assert doc["rights"]["override"]["missing"][0]["subject"] == "me"
    assert doc["disclosure"]["watermark"] == pv.WM_SCHEME
    for f in range(3):
        r = pv.verify_file(step.output_path("rgb", f), trust_anchors=identity.trust_anchors_pem)
        assert r.status == "override" and r.manifest == "trusted" and r.bad, r.to_doc()  # an override never passes quietly
        assert "my own face, test run" in r.reason
        assert r.take == take_dir.name and r.step == "swap" and r.kind == "faceswap-merge"
        assert r.override["reason"] == "my own face, test run"
        assert r.watermark_matches
    # data outputs are left alone: masks exact, EXR untouched, no manifest on the mask
    from machinima.imageseq import read_image

    rgb0 = np.ascontiguousarray(photo[:256, :320])
    assert np.array_equal(read_image(step.output_path("mask", 0)), (rgb0[..., 0] > 128).astype(np.uint8) * 255)
    assert pv.read_manifest(step.output_path("mask", 0))[0] == "absent"
    # resume: nothing redone; turning disclosure off changes the key, so frames are redone
    again = PostStep(take_dir / "post" / "swap", "faceswap-merge", {"blend": 0.5}, inputs={"rgb": "passes/rgb"}, rights=clearance,
                     disclosure=pv.Disclosure.for_step(take_dir / "post" / "swap", "faceswap-merge", identity))
    assert again.run(range(3), _frames(photo), progress=False).skipped == [0, 1, 2]
    # a later step that reads this one's frames lists both steps in its manifest's actions
    later = PostStep(take_dir / "post" / "look", "stylize", {}, inputs={"frames": "post/swap/rgb"},
                     disclosure=pv.Disclosure.for_step(take_dir / "post" / "look", "stylize", identity, inputs={"frames": "post/swap/rgb"}))
    later.run(range(1), _frames(photo), progress=False)
    _, man, _ = pv.read_manifest(later.output_path("rgb", 0))
    titles = [i["title"] for i in man["ingredients"]]
    # the take and the source frame (QOI frames: the source folder, in the step's sequence manifest)
    source = "post/swap/rgb" if later.intermediate == "qoi" else "post/swap/rgb/000000"
    assert titles[0] == f"take {take_dir.name} (take.json)" and source in titles
    acts = next(a for a in man["assertions"] if a["label"].startswith("c2pa.actions"))["data"]["actions"]
    assert [a["parameters"]["description"] for a in acts[1:]] == ["machinima post step faceswap-merge (swap)", "machinima post step stylize (look)"]
    from machinima.errors import MachinimaError

    with pytest.raises(MachinimaError, match="cannot be switched off in code"):
        PostStep(take_dir / "post" / "swap", "faceswap-merge", {"blend": 0.5}, disclosure=False)


def test_disclosure_from_config_and_audit(take_dir, photo, chain, tmp_path, monkeypatch):
    project = take_dir.parent.parent
    (project / "machinima.toml").write_text(
        f'production = "film"\n[rights]\ncert = "{chain.cert}"\nkey = "{chain.key}"\ntrust_anchors = "{chain.root_cert}"\n'
        'label = true\n')
    store = rights.RightsStore(project / "rights")
    doc = project / "alice-release.pdf"
    doc.write_bytes(b"%PDF signed release")
    from machinima.rights_cli import app as rights_app

    runner = CliRunner()
    res = runner.invoke(rights_app, ["add", "Alice", "--kind", "footage", "--production", "film", "--scope", "face_replacement",
                                     "--scope", "training", "--expires", "2099-12-31", "--document", str(doc), "--granted-by", "Alice",
                                     "--store", str(store.root)])
    assert res.exit_code == 0, res.output
    assert store.get("alice").document_sha256 == rights.document_hash(doc)
    assert store.signature_of(store.get("alice")).state == "trusted"  # signed with the production's key from machinima.toml
    res = runner.invoke(rights_app, ["add", "Bob", "--kind", "footage", "--scope", "voice", "--expires", "31.12.2027", "--document",
                                     str(doc), "--granted-by", "Bob", "--store", str(store.root)])
    assert res.exit_code != 0 and "YYYY-MM-DD" in str(res.exception)
    res = runner.invoke(rights_app, ["add", "Carol", "--scope", "training", "--expires", "2099-01-01", "--document", str(doc),
                                     "--granted-by", "Carol", "--store", str(store.root)])
    assert res.exit_code != 0 and "reference photos" in str(res.exception)  # a person's record is bound to a face
    clearance = rights.require("film", ["alice"], "face_replacement", store=store)
    monkeypatch.chdir(project)
    step = PostStep(take_dir / "post" / "swap", "faceswap-merge", {"blend": 0.5}, rights=clearance)
    assert step.disclosure is not None and step.disclosure.label == "AI-modified"
    step.run(range(2), _frames(photo), progress=False)
    r = pv.verify_file(step.output_path("rgb", 1))  # the project's anchors and key, from its machinima.toml
    assert r.status == "ok" and r.records == ["alice"] and r.watermark_authentic and "production anchors" in r.anchor

    # audit: identities with expiry; then an output copied in without disclosure is found
    rep = rights_cli_audit(take_dir, store)
    assert rep.identities["alice"]["expires"] == "2099-12-31" and rep.identities["alice"]["status"] == "valid"
    assert not rep.bad
    shutil.copy(project / "alice-release.pdf", project / "x")  # unrelated file: ignored
    import cv2

    cv2.imwrite(str(step.out_dir / "rgb" / "000099.png"), photo)
    rep = rights_cli_audit(project, store)
    assert rep.bad and [p for p, _ in rep.undisclosed] == [str(step.out_dir / "rgb" / "000099.png")]
    assert any("000099.png: no disclosure" in p for p in rep.problems)
    res = runner.invoke(rights_app, ["audit", str(take_dir), "--store", str(store.root)])
    assert res.exit_code == 1 and "no disclosure" in res.output and "alice" in res.output
    monkeypatch.chdir(tmp_path.parent)  # from elsewhere: the project folder's own machinima.toml names the store
    res = runner.invoke(rights_app, ["audit", str(project), "--json"])
    doc = json.loads(res.stdout)
    assert res.exit_code == 1 and doc["identities"]["alice"]["status"] == "valid" and len(doc["undisclosed"]) == 1
    monkeypatch.chdir(project)

    # verify: ok on a disclosed frame, non-zero on the folder with an unmarked file, a summary line
    from machinima.cli import app as main_app

    res = runner.invoke(main_app, ["verify", str(step.output_path("rgb", 0))])
    assert res.exit_code == 0 and "compositeWithTrainedAlgorithmicMedia" in res.output and "rights=alice" in res.output
    res = runner.invoke(main_app, ["verify", str(step.out_dir / "rgb")])
    assert res.exit_code == 1 and "3 file(s)" in res.output and "unmarked 1" in res.output
    res = runner.invoke(main_app, ["verify", "--json", str(step.out_dir / "rgb")])
    assert res.stdout.lstrip().startswith("{"), (res.stdout[:2000], res.exception)
    assert json.loads(res.stdout)["bad"] == 1


def rights_cli_audit(target, store):
    from machinima.rights.audit import audit

    return audit(target, store=store)


def test_broken_config_signs_nothing(take_dir, tmp_path, chain, monkeypatch):
    project = take_dir.parent.parent
    (project / "machinima.toml").write_text(f'[rights]\ncert = "{chain.cert}"\nkey = "{chain.root_key}"\ndisclose = true\n')
    monkeypatch.chdir(project)
    with pytest.raises(rights.DisclosureError, match="does not belong"):
        PostStep(take_dir / "post" / "swap", "faceswap-merge", {})
    (project / "machinima.toml").write_text('[rights]\nkey = "certs/signer.key"\n')
    with pytest.raises(rights.DisclosureError, match="no signing certificate configured"):
        PostStep(take_dir / "post" / "swap2", "faceswap-merge", {})
    assert not (take_dir / "post" / "swap2" / "params.json").exists()


def test_certs_command(tmp_path):
    from machinima.rights_cli import app as rights_app

    res = CliRunner().invoke(rights_app, ["certs", str(tmp_path / "c")])
    assert res.exit_code == 0 and "trust_anchors" in res.output
    ident = pv.load_identity(tmp_path / "c" / "signer.pem", tmp_path / "c" / "signer.key")
    assert ident.alg == "ES256"
    res = CliRunner().invoke(rights_app, ["certs", str(tmp_path / "c")])
    assert res.exit_code != 0 and "already exists" in str(res.exception)


def test_sign_and_list_commands(tmp_path, chain, photo, monkeypatch):
    import pickle

    import cv2

    from machinima.rights_cli import app as rights_app

    (tmp_path / "machinima.toml").write_text(f'[rights]\ncert = "{chain.cert}"\nkey = "{chain.key}"\nstore = "r"\n')
    cv2.imwrite(str(tmp_path / "poster.jpg"), photo)
    runner = CliRunner()
    res = runner.invoke(rights_app, ["sign", str(tmp_path / "poster.jpg"), "--take", "t1", "--step", "poster", "--out", str(tmp_path / "signed.jpg")])
    assert res.exit_code == 0, res.output
    rep = pv.verify_file(tmp_path / "signed.jpg")
    assert rep.manifest == "valid" and rep.take == "t1" and rep.step == "poster"
    assert rep.status == "untrusted"  # no trust_anchors in this machinima.toml: its own certificate is a stranger
    assert pv.read_manifest(tmp_path / "poster.jpg")[0] == "absent"  # --out leaves the original alone
    rights.RightsStore(tmp_path / "r").add(rights.RightsRecord("old", "footage", "Old", "untitled", ("voice",), expires=rights._parse_date("2001-01-01", "e", "t")))
    res = runner.invoke(rights_app, ["list"])
    assert res.exit_code == 0 and "expired" in res.output
    ident = pv.identity_from_config()
    ident.signer()
    assert pickle.loads(pickle.dumps(ident)).key_pem == ident.key_pem

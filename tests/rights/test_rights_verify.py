"""`machinima verify` refuses strangers: only the production's anchors (and the project's local
chain, named as such) are trusted; an untrusted signer, a broken chain, an expired or revoked
certificate, a hash mismatch, a watermark without its manifest and a forged watermark each exit
1 with a one-line reason. Certificates, CRLs and forgeries are made here with cryptography;
manifests are read back by c2pa-python's reader."""

import json
import time

import numpy as np
import pytest
from typer.testing import CliRunner

from machinima import provenance as pv
from machinima.cli import app
from machinima.poststep import PostStep
from rights_helpers import issue_signer, write_crl


def _frame(photo, f=0):
    return np.ascontiguousarray(np.roll(photo[:256, :320], 5 * f, axis=1))


def _step(take, photo, name="look", n=2, intermediate=None):
    step = PostStep(take / "post" / name, "stylize", {"n": n}, intermediate=intermediate)
    step.run(range(n), lambda fr: [{"rgb": _frame(photo, f), "mask": np.zeros((32, 32), np.uint8)} for f in fr], progress=False)
    return step


def _verify(*args):
    res = CliRunner().invoke(app, ["verify", *map(str, args)])
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    return res


def _signed_by(identity, take, photo, path, production="film", secret=b""):
    d = pv.Disclosure.for_step(take / "post" / "x", "stylize", identity, production=production, secret=secret)
    path.write_bytes(d.encode(_frame(photo), path.name))
    return path


def test_production_signed_outputs_pass_and_a_take_folder_skips_passes_and_masks(project, photo):
    root, take = project
    from machinima.passes import PassSet

    ps = PassSet.create(take / "passes", width=320, height=256, fps="24", engine="test")
    ps.write("rgb", 0, _frame(photo))  # a Blender render: not synthetic media, not disclosed
    ps.save()
    step = _step(take, photo)
    res = _verify(take)
    assert res.exit_code == 0, res.output
    # two frames (and, for QOI frames, the step's sequence manifest disclosure.png beside them)
    assert ("3 file(s): ok 3" if step.intermediate == "qoi" else "2 file(s): ok 2") in res.output
    doc = json.loads(_verify("--json", step.output_path("rgb", 0)).stdout)
    (f,) = doc["files"]
    assert f["status"] == "ok" and f["watermark_authentic"] and f["watermark_matches"] and doc["bad"] == 0
    assert any("production anchors" in a for a in doc["anchors"])


def test_a_self_signed_stranger_is_refused(project, photo, tmp_path_factory):
    root, take = project
    stranger = pv.make_test_chain(tmp_path_factory.mktemp("acme"), organization="Acme forgeries")
    f = _signed_by(pv.load_identity(stranger.cert, stranger.key), take, photo, root / "forged.png")
    res = _verify(f)
    assert res.exit_code == 1 and "untrusted" in res.output and "not issued by a trusted anchor" in res.output


def test_a_chain_that_claims_our_root_but_does_not_verify_is_broken(project, photo, tmp_path_factory):
    root, take = project
    lookalike = pv.make_test_chain(tmp_path_factory.mktemp("lookalike"))  # same organization name as the production's
    f = _signed_by(pv.load_identity(lookalike.cert, lookalike.key), take, photo, root / "lookalike.png")
    res = _verify(f)
    assert res.exit_code == 1 and "broken-chain" in res.output and "does not verify" in res.output


def test_an_expired_certificate_fails(project, photo, chain, tmp_path):
    import datetime as dt

    from cryptography import x509

    root, take = project
    cert, key, _ = issue_signer(chain, tmp_path / "short", seconds=2.0)
    f = _signed_by(pv.load_identity(cert, key), take, photo, root / "short.png")
    not_after = x509.load_pem_x509_certificates(cert.read_bytes())[0].not_valid_after_utc
    # c2pa allows some clock skew: wait until the certificate is well past its end
    time.sleep(max(0.0, (not_after - dt.datetime.now(dt.timezone.utc)).total_seconds() + 3.0))
    res = _verify(f)
    assert res.exit_code == 1 and "expired" in res.output and "had expired" in res.output


def test_a_revoked_certificate_fails(project, photo, chain, tmp_path):
    root, take = project
    cert, key, serial = issue_signer(chain, tmp_path / "leaked", name="leaked laptop signer")
    shared = pv.load_identity(chain.cert, chain.key).watermark_secret()  # a second signer marks with the production's shared secret
    f = _signed_by(pv.load_identity(cert, key), take, photo, root / "leaked.png", secret=shared)
    first = _verify(f)
    assert first.exit_code == 0, first.output
    write_crl(chain, root / "revoked.crl", [serial])
    with open(root / "machinima.toml", "a") as fh:
        fh.write('crl = "revoked.crl"\n')
    res = _verify(f)
    assert res.exit_code == 1 and "revoked" in res.output and str(serial) in res.output
    # a revocation list that no anchor signed is not believed (and said so)
    other = pv.make_test_chain(tmp_path / "other-ca", organization="someone else")
    write_crl(other, root / "revoked.crl", [serial])
    res = _verify(f)
    assert res.exit_code == 0 and "not signed by a trust anchor" in res.output


def test_a_changed_file_a_stripped_manifest_and_a_forged_mark_fail(project, photo, tmp_path):
    import cv2

    root, take = project
    step = _step(take, photo, intermediate="png")  # a manifest in each file (QOI: test_rights_sequence.py)
    good = step.output_path("rgb", 0)
    data = bytearray(good.read_bytes())
    i = data.find(b"IDAT", 64)
    data[i + 3000] ^= 0x5A
    (root / "changed.png").write_bytes(bytes(data))
    res = _verify(root / "changed.png")
    assert res.exit_code == 1 and "tampered" in res.output and "changed after it was signed" in res.output
    # a re-encoded copy keeps the mark, loses the manifest: not accepted as disclosure
    from machinima.imageseq import read_image

    cv2.imwrite(str(root / "copy.jpg"), read_image(good)[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
    res = _verify(root / "copy.jpg")
    assert res.exit_code == 1 and "watermark-only" in res.output and "no manifest" in res.output
    # anyone can embed a mark with the public layout; without the production's secret its tag fails
    fake = pv.embed_watermark(_frame(photo), "film", "urn:c2pa:00000000-0000-4000-8000-000000000000", b"guessed key")
    cv2.imwrite(str(root / "fake.png"), fake[..., ::-1])
    res = _verify(root / "fake.png")
    assert res.exit_code == 1 and "forged" in res.output
    assert pv.decode_watermark(fake).found  # presence needs no key


def test_the_projects_local_chain_is_trusted_by_name_only_here(tmp_path, photo, monkeypatch, tmp_path_factory):
    from machinima.take import Take

    monkeypatch.chdir(tmp_path)
    t = Take.create(tmp_path / "takes", production="film", scene="1", shot="a")
    t.finalize()
    t.close()
    step = _step(t.path, photo, n=1, intermediate="png")  # a manifest in the file, copied with it
    res = _verify(step.output_path("rgb", 0))
    assert res.exit_code == 0 and "ok-local" in res.output and "local chain of" in res.output and "this project only" in res.output
    # the same file in another project: a stranger there
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    (elsewhere / "machinima.toml").write_text('production = "other"\n')
    (elsewhere / "x.png").write_bytes(step.output_path("rgb", 0).read_bytes())
    monkeypatch.chdir(elsewhere)
    res = _verify(elsewhere / "x.png")
    assert res.exit_code == 1 and "untrusted" in res.output


def test_overrides_fail_verify_with_who_and_why(project, photo):
    from machinima import rights

    root, take = project
    c = rights.require("film", ["me"], "face_replacement", override="my own face, test run", store=root / "rights")
    step = PostStep(take / "post" / "swap", "faceswap-merge", {}, rights=c)
    step.run([0], lambda fr: [{"rgb": _frame(photo)}], progress=False)
    res = _verify(step.output_path("rgb", 0))
    assert res.exit_code == 1 and "override" in res.output and "my own face, test run" in res.output

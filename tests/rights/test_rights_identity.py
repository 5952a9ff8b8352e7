"""Rights bound to the face: records hold identity embeddings of reference photos; a face in the
material must match a valid, signed record (dlib's network, threshold 0.6); a typed name clears
nothing. On the real portraits pip packages ship (Eileen Collins, Grace Hopper)."""

import json

import numpy as np
import pytest

from machinima import identity as ident
from machinima import rights
from rights_helpers import bound_record, variants


@pytest.fixture
def store(tmp_path):
    return rights.RightsStore(tmp_path / "rights")


def _read(path):
    from machinima.imageseq import read_image

    return read_image(path)


def _faces(imgs, label="frame"):
    return list(rights.faces_in_frames(range(len(imgs)), imgs.__getitem__, every=1, label=label))


def test_dlib_separates_the_two_portraits_and_keeps_each_across_variants(portraits):
    """The network's truth on real photos, beside a trivial method (distance of 8x8 grey
    thumbnails of the face box) that cannot tell the two people apart from one of them changed."""
    import cv2

    emb = ident.get_embedder(ident.DLIB)
    refs, thumbs = {}, {}
    for who, p in portraits.items():
        img = _read(p)
        face = emb.find(img)[0]
        refs[who] = emb.embed(img, face.box)
        x0, y0, x1, y1 = (int(v) for v in face.box)
        thumbs[who] = cv2.resize(cv2.cvtColor(img[y0:y1, x0:x1], cv2.COLOR_RGB2GRAY), (8, 8)).astype(float)
    assert emb.distance(refs["collins"], refs["hopper"]) > emb.threshold
    trivial_wrong = 0
    for v in variants(_read(portraits["collins"]), 4):
        face = emb.find(v)[0]
        e = emb.embed(v, face.box)
        d_same, d_other = emb.distance(e, refs["collins"]), emb.distance(e, refs["hopper"])
        assert d_same < emb.threshold < d_other, (d_same, d_other)
        x0, y0, x1, y1 = (int(max(0, c)) for c in face.box)
        t = cv2.resize(cv2.cvtColor(v[y0:y1, x0:x1], cv2.COLOR_RGB2GRAY), (8, 8)).astype(float)
        trivial_wrong += np.abs(t - thumbs["collins"]).mean() > np.abs(t - thumbs["hopper"]).mean()
    assert trivial_wrong >= 1, trivial_wrong  # the darkened copy fools the trivial method; the network holds


def test_reference_photos_bind_the_record(portraits, identities, tmp_path):
    block = identities["collins"]
    assert set(block["embeddings"]) == {ident.DLIB, ident.MESH}
    assert len(block["embeddings"][ident.DLIB][0]) == 128 and block["photos"][0]["name"] == "collins.png"
    import cv2
    import skimage.data

    both = np.concatenate([cv2.resize(_read(portraits["collins"]), (600, 600)), cv2.resize(_read(portraits["hopper"]), (600, 600))], axis=1)
    cv2.imwrite(str(tmp_path / "both.png"), both[..., ::-1])
    with pytest.raises(rights.RightsError, match="shows 2 faces"):
        rights.reference_identity([tmp_path / "both.png"], methods=[ident.DLIB])
    cv2.imwrite(str(tmp_path / "coffee.png"), skimage.data.coffee()[..., ::-1])
    with pytest.raises(rights.RightsError, match="no face found"):
        rights.reference_identity([tmp_path / "coffee.png"], methods=[ident.DLIB])


def test_a_typed_name_does_not_clear_another_face(store, portraits, identities):
    """The walk-around: a record for an unrelated 'alice' let the astronaut clip through. Now a
    record named after anyone clears only the face it was made from."""
    store.add(bound_record("alice", identities["hopper"], subject="alice"))
    clip = variants(_read(portraits["collins"]), 3)
    with pytest.raises(rights.NotCleared) as ei:
        rights.require_cleared("film", "lip_sync", _faces(clip), store=store, what="clip.mp4")
    msg = str(ei.value)
    assert "frame 0, face 0: a face that matches no rights record" in msg and "nearest: 'alice'" in msg and "clip.mp4" in msg
    assert "--photo" in ei.value.hint and "--id alice" not in ei.value.hint  # never a taken id
    store.add(bound_record("eileen", identities["collins"], subject="Eileen Collins"))
    c = rights.require_cleared("film", "lip_sync", _faces(clip), store=store)
    assert c.record_ids == ["eileen"] and c.override is None
    (who,) = c.identities
    assert who["record"] == "eileen" and who["faces"] == 3 and who["max_distance"] < 0.6 and who["method"] == ident.DLIB
    assert c.to_provenance()["identities"] == c.identities


def test_expired_edited_and_foreign_records_clear_nothing(store, portraits, identities, tmp_path):
    clip = variants(_read(portraits["collins"]), 1)
    store.add(bound_record("eileen", identities["collins"], expires="2020-01-31"))
    with pytest.raises(rights.NotCleared, match=r"matches record 'eileen' \(0\.\d\d\), which expired on 2020-01-31"):
        rights.require_cleared("film", "face_replacement", _faces(clip), store=store)
    # extend the expiry by hand: the signature no longer matches, so the record clears nothing
    p = store.path_of("eileen")
    doc = json.loads(p.read_text())
    doc["expires"] = "2099-01-01"
    p.write_text(json.dumps(doc))
    with pytest.raises(rights.NotCleared, match="was changed after it was signed"):
        rights.require_cleared("film", "face_replacement", _faces(clip), store=store)
    # a record signed with a stranger's key (any self-made certificate) is not the production's
    from machinima import provenance as pv

    stranger = pv.make_test_chain(tmp_path / "stranger", organization="machinima test production")
    doc = pv.sign_doc(bound_record("eileen", identities["collins"]).to_doc(), pv.load_identity(stranger.cert, stranger.key))
    p.write_text(json.dumps(doc))
    with pytest.raises(rights.NotCleared, match="which no trust anchor issued"):
        rights.require_cleared("film", "face_replacement", _faces(clip), store=store)
    # a version 1 record (a name, no photos) binds no face
    v1 = {k: v for k, v in bound_record("eileen", None).to_doc().items() if k not in ("granted_by", "identity")}
    p.write_text(json.dumps({**v1, "version": 1}))
    with pytest.raises(rights.NotCleared, match="no reference photos"):
        rights.require_cleared("film", "face_replacement", _faces(clip), store=store)


def test_override_goes_on_and_is_recorded(store, portraits):
    c = rights.require_cleared("film", "training", _faces(variants(_read(portraits["hopper"]), 1)), store=store,
                               override="my own face, test run")
    assert c.override["reason"] == "my own face, test run" and c.override["by"] and c.override["at"]
    assert c.override["missing"][0]["reason"] == "unknown-face" and c.record_ids == []


def test_no_face_no_identity_needed_and_bad_inputs(store):
    textures = [np.full((96, 96, 3), 90, np.uint8)]
    assert rights.require_cleared("film", "training", _faces(textures), store=store).record_ids == []
    with pytest.raises(rights.RightsError, match="unknown rights scope"):
        rights.require_cleared("film", "swap", [], store=store)
    with pytest.raises(rights.RightsError, match="no production"):
        rights.require_cleared("", "training", [], store=store)


def test_mediapipe_mesh_is_the_weaker_fallback(monkeypatch, store, portraits, identities):
    """Without dlib: the mesh geometry still tells these two faces apart (same photo resized
    and mirrored), and says it is the weaker mode when it refuses."""
    mesh = ident.get_embedder(ident.MESH)
    assert mesh.weak and mesh.threshold == ident.THRESHOLDS[ident.MESH]
    monkeypatch.setattr(ident, "get_embedder", lambda method=None: mesh if method in (None, ident.MESH) else ident._cache[method])
    store.add(bound_record("eileen", identities["collins"]))
    clip = variants(_read(portraits["collins"]), 2)
    c = rights.require_cleared("film", "training", _faces(clip), store=store)
    assert c.record_ids == ["eileen"] and c.identities[0]["method"] == ident.MESH
    with pytest.raises(rights.NotCleared, match="mediapipe mesh mode"):
        rights.require_cleared("film", "training", _faces(variants(_read(portraits["hopper"]), 1)), store=store)


def test_rights_add_cli_binds_photos_and_refuses_a_nameless_shortcut(tmp_path, portraits):
    from typer.testing import CliRunner

    from machinima.rights_cli import app

    doc = tmp_path / "release.pdf"
    doc.write_bytes(b"%PDF consent")
    base = ["add", "Eileen Collins", "--id", "eileen", "--document", str(doc), "--scope", "training", "--expires", "2030-01-01",
            "--production", "film", "--store", str(tmp_path / "rights")]
    res = CliRunner().invoke(app, base)
    assert res.exit_code != 0  # --granted-by is required
    res = CliRunner().invoke(app, base + ["--granted-by", "Eileen Collins"])
    assert res.exit_code != 0 and "reference photos" in str(res.exception)
    res = CliRunner().invoke(app, base + ["--granted-by", "Eileen Collins", "--photo", str(portraits["collins"])])
    assert res.exit_code == 0, res.output
    rec = rights.RightsStore(tmp_path / "rights").get("eileen")
    assert rec.granted_by == "Eileen Collins" and rec.identity["photos"][0]["sha256"] and rec.signature["value"]
    assert rights.RightsStore(tmp_path / "rights").signature_of(rec).state == "trusted-local"

"""Rights records and enforcement (machinima.rights): refusal without a record, expired, other
production, wrong scope, override visible, malformed dates, references from datasets."""

import datetime as dt
import json

import pytest

from machinima import rights
from machinima.errors import MachinimaError


def _rec(rid="alice", production="film", scopes=("training", "face_replacement"), expires="2099-01-01", **kw):
    return rights.RightsRecord(id=rid, kind=kw.pop("kind", "person"), subject=kw.pop("subject", rid), production=production,
                               scopes=tuple(scopes), expires=rights._parse_date(expires, "expires", "t"),
                               document_sha256="a" * 64, document_location="/contracts/x.pdf", **kw)


@pytest.fixture
def store(tmp_path):
    return rights.RightsStore(tmp_path / "rights")


def test_valid_record_clears_and_round_trips(store):
    p = store.add(_rec())
    doc = json.loads(p.read_text())
    assert doc["schema"] == rights.SCHEMA and doc["version"] == rights.VERSION
    c = rights.require("film", ["alice"], "face_replacement", store=store)
    assert c.record_ids == ["alice"] and c.override is None
    prov = c.to_provenance()
    assert prov["records"][0]["document_sha256"] == "a" * 64
    assert store.get("alice").expires == dt.date(2099, 1, 1)


def test_refuses_without_record(store):
    with pytest.raises(rights.NotCleared) as ei:
        rights.require("film", ["bob"], "training", store=store)
    msg = str(ei.value)
    assert "no rights record for 'bob'" in msg and "machinima rights add 'bob' --id bob" in msg
    assert isinstance(ei.value, MachinimaError) and ei.value.problems[0].reason == "missing"


def test_refuses_expired(store):
    store.add(_rec(expires="2020-01-31"))
    with pytest.raises(rights.NotCleared, match="expired on 2020-01-31") as ei:
        rights.require("film", "alice", "training", store=store)
    assert ei.value.problems[0].reason == "expired"
    # valid on a date before the expiry
    assert rights.require("film", "alice", "training", store=store, on="2020-01-31").record_ids == ["alice"]


def test_refuses_other_production_and_wrong_scope(store):
    store.add(_rec(production="other-film"))
    with pytest.raises(rights.NotCleared, match="is for production 'other-film', not 'film'"):
        rights.require("film", ["alice"], "training", store=store)
    store.add(_rec(rid="carol", scopes=("voice",)))
    with pytest.raises(rights.NotCleared, match="covers voice, not lip_sync") as ei:
        rights.require("film", ["carol"], "lip_sync", store=store)
    assert ei.value.problems[0].reason == "scope"


def test_override_is_recorded(store):
    c = rights.require("film", ["me"], "training", override="my own face, test run", store=store)
    assert c.override["reason"] == "my own face, test run"
    assert c.override["missing"][0]["subject"] == "me"
    assert c.to_provenance()["override"]["missing"][0]["reason"] == "missing"


def test_dataset_references_person(store):
    store.add(_rec(rid="ds-alice", kind="dataset", subject="alice dataset", references=("alice",)))
    with pytest.raises(rights.NotCleared, match="referenced by 'ds-alice'"):
        rights.require("film", ["ds-alice"], "training", store=store)
    store.add(_rec())
    c = rights.require("film", ["ds-alice"], "training", store=store)
    assert c.record_ids == ["ds-alice", "alice"]


def test_malformed_date_and_bad_scope(store, tmp_path):
    store.add(_rec())
    p = store.path_of("alice")
    doc = json.loads(p.read_text())
    doc["expires"] = "31/12/2027"
    p.write_text(json.dumps(doc))
    with pytest.raises(rights.RecordFormatError, match=r"expires '31/12/2027' is not a date.*YYYY-MM-DD"):
        rights.require("film", ["alice"], "training", store=store)
    with pytest.raises(rights.RightsError, match="unknown rights scope"):
        rights.require("film", ["alice"], "swap", store=store)
    p.write_text("{not json")
    with pytest.raises(rights.RecordFormatError, match="not valid JSON"):
        store.records()
    with pytest.raises(rights.RecordFormatError, match="kind 'robot'"):
        _rec(kind="robot").check()


def test_newer_version_refused(store):
    doc = _rec().to_doc()
    doc["version"] = rights.VERSION + 1
    with pytest.raises(rights.RecordFormatError, match="newer"):
        rights.RightsRecord.from_doc(doc)


def test_default_store_from_config(tmp_path):
    from machinima.config import load_config

    (tmp_path / "machinima.toml").write_text('[rights]\nstore = "contracts/records"\n')
    assert rights.default_store_dir(load_config(tmp_path, env={})) == tmp_path / "contracts/records"
    (tmp_path / "machinima.toml").write_text('takes_root = "data/takes"\n')
    assert rights.default_store_dir(load_config(tmp_path, env={})) == tmp_path / "data/rights"


def test_collection_items_need_records(store, tmp_path):
    import numpy as np

    from machinima.collections import Collection

    store.add(_rec())
    col = Collection.create(tmp_path / "faceset", "faceset")
    a = col.add(np.zeros((8, 8, 3), np.uint8), rights=["alice"])
    b = col.add(np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(rights.NotCleared, match=rf"collection item {b.id} \(.*\) names no rights record"):
        rights.require_items("film", col.items(), "training", store=store)
    c = rights.require_items("film", col.items(), "training", override="test faces", store=store)
    assert c.override["missing"][0]["reason"] == "missing" and c.record_ids == ["alice"]
    col.update(b.id, rights=["alice"])
    assert rights.require_items("film", col.items(), "training", store=store).record_ids == ["alice"]
    col.update(a.id, rights=["ghost"])
    with pytest.raises(rights.NotCleared, match="no rights record for 'ghost'"):
        rights.require_items("film", col.items(), "training", store=store)
    col.close()


def test_frozen_v1_record_loads_and_clears_no_face():
    """A record as version 1 wrote it, frozen here: it upgrades to an unsigned version 2 record
    without an identity (a name alone binds no face)."""
    doc = json.loads('''{"schema": "machinima.rights-record", "version": 1, "id": "alice", "kind": "person",
      "subject": "Alice Doe", "production": "film", "scopes": ["training", "face_replacement"],
      "valid_from": "2026-01-01", "expires": "2027-06-30",
      "document": {"sha256": "%s", "location": "vault://contracts/0042"}, "holder": "Studio",
      "references": [], "notes": "", "created": "2026-11-26T04:30:00+00:00", "created_by": "ana"}''' % ("0" * 64))
    rec = rights.RightsRecord.from_doc(doc)
    assert rec.expires == dt.date(2027, 6, 30) and rec.valid_from == dt.date(2026, 1, 1)
    assert rec.to_doc() == {**doc, "version": 2, "granted_by": "", "identity": None}
    assert rec.identity is None and rec.signature is None and rec.embeddings("dlib-resnet-v1") == []
    assert rec.status("film", "training", dt.date(2025, 12, 31)) == "is valid only from 2026-01-01"


def test_frozen_v2_record_loads():
    doc = {"schema": "machinima.rights-record", "version": 2, "id": "alice", "kind": "person", "subject": "Alice Doe",
           "production": "film", "scopes": ["training"], "valid_from": None, "expires": "2027-06-30",
           "document": {"sha256": "0" * 64, "location": "vault://0042"}, "holder": "", "references": [], "notes": "",
           "created": "2026-11-26T04:30:00+00:00", "created_by": "ana", "granted_by": "Alice Doe",
           "identity": {"photos": [{"name": "a.jpg", "sha256": "1" * 64, "box": [1, 2, 3, 4], "method": "dlib-resnet-v1"}],
                        "embeddings": {"dlib-resnet-v1": [[0.5] * 128]}},
           "signature": {"alg": "ES256", "chain": "", "value": ""}}
    rec = rights.RightsRecord.from_doc(doc)
    assert rec.to_doc() == doc and len(rec.embeddings("dlib-resnet-v1")[0]) == 128


def test_hint_never_names_an_existing_record_id(store):
    store.add(_rec(expires="2020-01-01", subject="bob", rid="bob"))
    store.add(_rec(expires="2020-01-01", subject="bob", rid="bob-2"))
    with pytest.raises(rights.NotCleared) as ei:
        rights.require("film", ["bob"], "training", store=store)
    assert "--id bob-3 " in ei.value.hint and "--id bob " not in ei.value.hint
    from typer.testing import CliRunner

    from machinima.rights_cli import app

    res = CliRunner().invoke(app, ["add", "bob", "--kind", "footage", "--document-sha256", "a" * 64, "--granted-by", "Bob",
                                   "--scope", "training", "--expires", "2099-01-01", "--store", str(store.root)])
    assert res.exit_code != 0 and "--id bob-3" in res.exception.hint

import json
from pathlib import Path

import numpy as np
import pytest

from machinima import schema
from machinima.catalog import Catalog
from machinima.errors import DiskFullError, StoreError, TakeFormatError, TakeLockedError
from machinima.fsutil import atomic_write_json
from machinima.skeleton import rest_pose
from machinima.take import Take, delete, read_manifest, recover, recover_all


def _take(root, **kw):
    return Take.create(root, production="Film", scene="3", shot="20A", fps=kw.pop("fps", 24), **kw)


def test_schema_versions_are_frozen():
    # A change here is a format change: bump the version AND register an upgrade step.
    assert schema.CURRENT == {"take": 3, "store": 1, "mocap": 1, "blend": 1, "camera": 1, "event": 1, "marker": 1,
                              "collection": 1, "rights-record": 2, "disclosure-decision": 1, "passes": 1, "source-record": 1}
    from machinima import collections, provenance, rights

    assert rights.SCHEMA == "machinima.rights-record" and rights.VERSION == schema.CURRENT["rights-record"]
    assert provenance.decision.VERSION == schema.CURRENT["disclosure-decision"]
    assert collections.VERSION == schema.CURRENT["collection"]


def test_take_numbers_increment_per_shot(tmp_path):
    a = _take(tmp_path)
    b = _take(tmp_path)
    c = Take.create(tmp_path, production="Film", scene="3", shot="21", fps=24)
    assert (a.manifest.slate.take, b.manifest.slate.take, c.manifest.slate.take) == (1, 2, 1)
    assert a.id == "film_3_20a_t001"
    for t in (a, b, c):
        t.finalize()
    delete(b.path)
    assert _take(tmp_path).manifest.slate.take == 3  # a number in the trash is never reused


def test_record_finalize_and_catalog(tmp_path):
    t = _take(tmp_path, fps="29.97", timecode_in="01:00:00;00", performers=["ada"])
    t.add_performer("ada")
    t0 = t.store.origin_ns
    t.store.append("mocap/ada", t0 + np.arange(60) * 33_366_667, np.broadcast_to(rest_pose(), (60, 55, 7)))
    t.add_marker(t0 + 1_001_000_000, "action", "go")
    t.add_note("good take")
    t.finalize()
    m = read_manifest(t.path)
    assert m.status == "complete" and m.timecode_out.startswith("01:00:01;")
    assert m.streams[0]["samples"] == 60
    assert m.markers[0]["timecode"] == "01:00:01;00"
    cat = Catalog(tmp_path)
    assert [r["id"] for r in cat.search(performer="ada")] == [t.id]
    assert cat.search(status="recording") == []
    assert [r["id"] for r in cat.search(text="good")] == [t.id]
    assert Take.open(t.path).verify() == []


def test_two_writers_refused(tmp_path):
    t = _take(tmp_path)
    with pytest.raises(TakeLockedError, match="already open for writing"):
        Take.open(t.path, writable=True)
    t.finalize()
    Take.open(t.path, writable=True).close()  # free again


def test_bad_manifests_name_the_field(tmp_path):
    t = _take(tmp_path)
    t.finalize()
    path = t.path / "take.json"
    doc = json.loads(path.read_text())
    path.write_text(path.read_text()[:50])
    with pytest.raises(TakeFormatError, match="not valid JSON"):
        Take.open(t.path)
    bad = dict(doc, slate=dict(doc["slate"], take="one"))
    path.write_text(json.dumps(bad))
    with pytest.raises(TakeFormatError, match=r"slate\.take' must be int"):
        Take.open(t.path)
    path.write_text(json.dumps(dict(doc, status="done")))
    with pytest.raises(TakeFormatError, match="'status'"):
        Take.open(t.path)
    path.write_text(json.dumps({k: v for k, v in doc.items() if k != "fps"}))
    with pytest.raises(TakeFormatError, match="'fps' is missing"):
        Take.open(t.path)
    path.write_text(json.dumps(dict(doc, version=99)))
    with pytest.raises(TakeFormatError, match="newer"):
        Take.open(t.path)


def test_oldest_version_opens(tmp_path):
    folder = tmp_path / "old_take"
    folder.mkdir()
    v1 = {"schema": "machinima.take", "version": 1, "id": "old_take", "production": "Film", "scene": "1", "shot": "1",
          "take": 4, "fps": "25", "timecode_in": "10:00:00:00", "status": "complete", "note": "from 2026-09"}
    (folder / "take.json").write_text(json.dumps(v1))
    m = read_manifest(folder)
    assert m.slate.take == 4 and m.notes == ["from 2026-09"] and m.rate == 25
    assert m.circle is None and m.used_in == []  # version 3 fields, added by the 2 -> 3 step


def test_version_2_opens_and_circle_is_checked(tmp_path):
    folder = tmp_path / "v2_take"
    folder.mkdir()
    v2 = {"schema": "machinima.take", "version": 2, "id": "v2_take", "slate": {"production": "Film", "scene": "1", "shot": "1",
          "take": 2}, "fps": "29.97", "timecode_in": "01:00:00;00", "status": "complete"}
    (folder / "take.json").write_text(json.dumps(v2))
    m = read_manifest(folder)
    assert m.circle is None and m.used_in == [] and m.to_doc()["version"] == 3
    (folder / "take.json").write_text(json.dumps(dict(m.to_doc(), circle="yes")))
    with pytest.raises(TakeFormatError, match="field 'circle' must be null or an object"):
        read_manifest(folder)
    (folder / "take.json").write_text(json.dumps(dict(m.to_doc(), used_in=[{"cut": "a"}])))
    with pytest.raises(TakeFormatError, match=r"field 'used_in\[0\]'"):
        read_manifest(folder)


def test_missing_streams_and_non_take_folders(tmp_path):
    t = _take(tmp_path)
    t.finalize()
    (t.path / "streams.sqlite").unlink()
    with pytest.raises(StoreError, match="has no streams.sqlite"):
        _ = Take.open(t.path).store
    assert any("missing" in p for p in Take.open(t.path).verify())
    (tmp_path / "holiday-photos").mkdir()
    (tmp_path / "notes.txt").write_text("x")
    n, problems = Catalog(tmp_path).rebuild()
    assert n == 1 and problems == []


def test_recover_after_crash_marks_recovered(tmp_path):
    t = _take(tmp_path)
    t.add_performer("ada")
    t.store.append("mocap/ada", [1, 2, 3], np.broadcast_to(rest_pose(), (3, 55, 7)))
    t.store.flush()
    # simulate a crash: the process dies without finalize (lock released by the OS)
    t._store._db.close()
    t._store = None
    t._lock.release()
    assert recover_all(tmp_path) == [t.id]
    m = read_manifest(t.path)
    assert m.status == "recovered" and m.streams[0]["samples"] == 3
    assert recover(t.path).manifest.status == "recovered"  # idempotent


def test_manifest_write_on_full_disk_keeps_old(tmp_path, monkeypatch):
    path = tmp_path / "take.json"
    atomic_write_json(path, {"a": 1})
    import errno
    import os

    real_fsync = os.fsync

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(DiskFullError, match="previous version is intact"):
        atomic_write_json(path, {"a": 2})
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["take.json"]  # no temp file left


def test_delete_moves_to_trash(tmp_path):
    t = _take(tmp_path)
    t.finalize()
    dest = delete(t.path)
    assert not t.path.exists() and (dest / "take.json").exists() and dest.parent.name == ".trash"
    assert Catalog(tmp_path).search() == []

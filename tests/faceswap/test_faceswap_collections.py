"""The hub's image-collection format (machinima.collections), as facesets and datasets use it."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from machinima.collections import Collection, CollectionError, CollectionItemError, Source


def _img(v: int) -> np.ndarray:
    return np.full((16, 20, 3), v, np.uint8)


def test_add_iterate_update_remove(tmp_path):
    col = Collection.create(tmp_path / "fs", "faceset", info={"face_type": "whole", "size": 64})
    a = col.add(_img(10), source=Source("video", path="clip.mp4", frame=3), box=[1, 2, 30, 40], tags=["src"],
                meta={"landmarks": np.zeros((68, 2)), "face_type": "whole"}, rights=["r1"])
    b = col.add(_img(200), name="b.png", caption="a face", tags=["dst"])
    assert len(col) == 2 and a.width == 20 and a.height == 16
    assert [i.id for i in col.items(tag="src")] == [a.id]
    assert col.get(a.id).source.frame == 3 and col.get(a.id).meta["landmarks"][0] == [0.0, 0.0]
    col.update(b.id, tags=["dst", "blurry"], meta={"blur": 1.5})
    assert col.get(b.id).tags == ["dst", "blurry"] and col.get(b.id).meta["blur"] == 1.5
    assert np.array_equal(col.load(a), _img(10))
    col.remove(b.id)
    assert len(col) == 1 and not (tmp_path / "fs" / "images" / "b.png").exists()
    col.close()
    again = Collection.open(tmp_path / "fs")
    assert again.kind == "faceset" and again.info["size"] == 64 and again.version == 1
    with pytest.raises(CollectionError, match="already in the collection"):
        again.add(_img(1), name=again.get(a.id).file.split("/")[-1])


def test_verify_reports_missing_corrupt_changed_orphan_without_raising(tmp_path):
    col = Collection.create(tmp_path / "fs", "dataset")
    items = [col.add(_img(i * 40)) for i in range(4)]
    root = tmp_path / "fs"
    (root / items[0].file).unlink()
    (root / items[1].file).write_bytes(b"not a png")
    img = _img(1)
    img[0, 0] = 255
    from machinima.imageseq import write_image

    write_image(root / items[2].file, img)
    write_image(root / "images" / "stray.png", img)
    kinds = {(p.kind, p.item_id) for p in col.verify()}
    assert ("missing", items[0].id) in kinds and ("corrupt", items[1].id) in kinds
    assert ("changed", items[2].id) in kinds and ("orphan", None) in kinds
    problems = []
    good = [it.id for it, _ in col.iter_images(problems=problems)]
    assert good == [items[2].id, items[3].id] and len(problems) == 2
    with pytest.raises(CollectionItemError, match="missing"):
        col.load(items[0])


def test_not_a_collection_and_newer_version(tmp_path):
    with pytest.raises(CollectionError, match="not a collection"):
        Collection.open(tmp_path)
    Collection.create(tmp_path / "c", "faceset").close()
    con = sqlite3.connect(tmp_path / "c" / "index.sqlite")
    con.execute("UPDATE meta SET value='99' WHERE key='version'")
    con.commit()
    con.close()
    with pytest.raises(CollectionError, match="newer"):
        Collection.open(tmp_path / "c")

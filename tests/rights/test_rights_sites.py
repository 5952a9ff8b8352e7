"""The check lives in the library functions: the face-swap Trainer, merge, lip re-sync and the
LoRA trainer each refuse a face without a valid record when called from Python, pass with
identity-bound records, and record which identities they relied on; the audit follows it from
faceset to model to merged frames to delivery. Real pipelines on the real portraits."""

import json
import os
import wave

import numpy as np
import pytest

from machinima import rights
from rights_helpers import bound_record, portrait_project

TINY = dict(e_dims=4, ae_dims=16, d_dims=4, d_mask_dims=2)


@pytest.fixture(scope="module")
def world(tmp_path_factory, identities):
    """A project (its own local chain), a clip of each portrait, a faceset of each, two records."""
    root, faces = portrait_project(tmp_path_factory.mktemp("project"))
    store = rights.RightsStore(root / "rights")
    return {"root": root, "store": store, "faces": faces, "identities": identities}


@pytest.fixture
def records(world):
    store = world["store"]
    for p in store.root.glob("*.json"):
        p.unlink()
    store.add(bound_record("eileen", world["identities"]["collins"], subject="Eileen Collins"))
    store.add(bound_record("grace", world["identities"]["hopper"], subject="Grace Hopper"))
    return store


def _trainer(world, model, **kw):
    import torch

    from faceswap.model import ModelConfig
    from faceswap.train import TrainConfig, Trainer

    torch.set_num_threads(1)
    return Trainer(model, src=world["root"] / "faces" / "collins", dst=world["root"] / "faces" / "hopper",
                   model_config=ModelConfig(arch="df", res=64, **TINY), train_config=TrainConfig(batch=2, save_every=1000),
                   production="film", rights_store=world["store"].root, **kw)


def test_the_trainer_api_refuses_faces_without_records_then_records_who_trained_it(world, tmp_path):
    store = world["store"]
    for p in store.root.glob("*.json"):
        p.unlink()
    store.add(bound_record("alice", world["identities"]["hopper"], subject="alice"))  # only Hopper is cleared
    with pytest.raises(rights.NotCleared, match=r"training not cleared .* faceset collins item \d+ .*matches no rights record"):
        _trainer(world, tmp_path / "m")
    assert not (tmp_path / "m" / "model.json").exists()
    store.add(bound_record("eileen", world["identities"]["collins"], subject="Eileen Collins"))
    t = _trainer(world, tmp_path / "m")
    t.train(1, progress=False)
    doc = json.loads((tmp_path / "m" / "model.json").read_text())
    assert sorted(i["record"] for i in doc["rights"]["identities"]) == ["alice", "eileen"] and doc["rights"]["override"] is None


def test_merge_needs_the_target_faces_and_the_models_identities(world, records, tmp_path):
    from faceswap.merge import MergeOptions, merge

    model = tmp_path / "m"
    _trainer(world, model).train(1, progress=False)
    opts = MergeOptions(engine="none", blend="alpha", batch=4)
    target = world["root"] / "clips" / "hopper"
    out = world["root"] / "swapped"
    r = merge(target, model, out=out, options=opts, production="film", rights_store=records.root, progress=False)
    assert r.done == 3 and [i["record"] for i in r.rights["identities"]] == ["grace"]
    assert sorted(rec["id"] for rec in r.rights["records"]) == ["eileen", "grace"]  # the face in the frame, and the face put in
    from machinima import provenance as pv

    rep = pv.verify_file(r.video)
    assert rep.status == "ok-local" and rep.records and rep.watermark_matches, rep.to_doc()
    # the model's identity is no longer cleared for face replacement: the merge stops
    records.add(bound_record("eileen", world["identities"]["collins"], scopes=("training",)), replace=True)
    with pytest.raises(rights.NotCleared, match="record 'eileen' \\(the identity the model was trained on\\) covers training, not face_replacement"):
        merge(target, model, out=tmp_path / "o2", options=opts, production="film", rights_store=records.root, progress=False)


def test_lip_resync_checks_the_face_on_screen(world, records, tmp_path):
    from lipsync.video import resync_video
    from machinima.imageseq import write_video

    frames = [np.ascontiguousarray(np.roll(world["faces"]["collins"], 2 * i, axis=1)) for i in range(4)]
    write_video(tmp_path / "clip.mp4", frames, fps=25)
    with wave.open(str(tmp_path / "line.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        t = np.arange(4000) / 16000
        w.writeframes((np.sin(2 * np.pi * 220 * t) * 8000).astype("<i2").tobytes())
    records.add(bound_record("eileen", world["identities"]["collins"], scopes=("training",)), replace=True)  # not lip_sync
    from machinima.take import Take

    take = Take.create(world["root"] / "takes", production="film", scene="s1", shot="a")
    take.finalize()
    take.close()
    old = os.getcwd()
    os.chdir(world["root"])  # resync_video reads the project's rights store
    try:
        with pytest.raises(rights.NotCleared, match="lip_sync not cleared .*which covers training, not lip_sync"):
            resync_video(take.path, tmp_path / "clip.mp4", audio=tmp_path / "line.wav", production="film", subjects=["eileen"],
                         progress=False)
        records.add(bound_record("eileen", world["identities"]["collins"]), replace=True)
        rep = resync_video(take.path, tmp_path / "clip.mp4", audio=tmp_path / "line.wav", production="film",
                           subjects=["anyone"], progress=False)
    finally:
        os.chdir(old)
    params = json.loads((take.path / "post" / "lipsync" / "params.json").read_text())
    assert rep.resynced == 4 and [i["record"] for i in params["rights"]["identities"]] == ["eileen"]
    from machinima import provenance as pv

    mp4 = pv.verify_file(rep.mp4)
    assert mp4.status == "ok-local" and mp4.watermark_matches, mp4.to_doc()  # signed after the dialogue was muxed in


def test_the_lora_trainer_checks_every_face_of_the_dataset(world, records, tmp_path):
    from lora.dataset import caption_dataset, open_dataset
    from lora.errors import BaseModelError
    from lora.train import TrainConfig, Trainer

    ds = open_dataset(tmp_path / "ds", create=True, trigger="ohwx")
    ds.add(world["faces"]["hopper"], rights=["eileen"], source={"kind": "file", "path": "/photos/h.png"})  # a wrong label
    ds.add(world["faces"]["collins"], rights=["eileen"], source={"kind": "file", "path": "/photos/c.png"})
    caption_dataset(ds)
    ds.close()
    cfg = TrainConfig.from_preset("cpu", rank=2, resolution=32, bucket_step=8, steps=1, eval_draws=0, batch_size=1)
    records.path_of("grace").unlink()
    t = Trainer(tmp_path / "ds", tmp_path / "no-base", tmp_path / "l.safetensors", cfg, production="film", rights_store=records.root)
    with pytest.raises(rights.NotCleared, match=r"item 1 \(.*\), face 0: a face that matches no rights record"):
        t.check_inputs()
    records.add(bound_record("grace", world["identities"]["hopper"]))
    with pytest.raises(BaseModelError):  # the rights passed; the (missing) base model is the next check
        t.check_inputs()
    assert sorted(i["record"] for i in t.clearance.identities) == ["eileen", "grace"]


def test_audit_walks_facesets_models_steps_and_deliveries(world, records, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from faceswap.merge import MergeOptions, merge
    from machinima.imageseq import contact_sheet, list_frames, read_image, write_image
    from machinima.rights.audit import audit
    from machinima.rights_cli import app

    root = world["root"]
    _trainer(world, root / "models" / "collins-on-hopper").train(1, progress=False)
    r = merge(root / "clips" / "hopper", root / "models" / "collins-on-hopper", out=root / "swapped",
              options=MergeOptions(engine="none", blend="alpha", batch=4), production="film", rights_store=records.root, progress=False)
    sheet = contact_sheet([read_image(p) for p in list_frames(root / "swapped" / "rgb").values()], columns=3, width=600)
    write_image(root / "contact_sheet.png", sheet)  # a delivery made by hand: not disclosed
    rep = audit(root, store=records)
    assert {c["path"].rsplit("/", 1)[-1]: c["identities"] for c in rep.collections} == {"collins": {"eileen": 3}, "hopper": {"grace": 3}}
    (m,) = [m for m in rep.models if m["kind"] == "faceswap"]
    assert sorted(m["records"]) == ["eileen", "grace"] and not m["override"]
    assert "models/collins-on-hopper" in rep.identities["eileen"]["trained"][0] and rep.identities["grace"]["status"] == "valid"
    assert rep.bad and any("contact_sheet.png: unmarked" in p for p in rep.problems), rep.problems
    res = CliRunner().invoke(app, ["sign", str(root / "contact_sheet.png"), "--take", "-", "--step", "contact-sheet", "--mark"])
    assert res.exit_code == 0, res.output
    assert not audit(root, store=records).bad
    # a record expires: every faceset, model and step that relied on it is outside its rights
    records.add(bound_record("grace", world["identities"]["hopper"], expires="2020-01-01"), replace=True)
    monkeypatch.chdir(root)
    res = CliRunner().invoke(app, ["audit", str(root), "--json"])
    doc = json.loads(res.stdout)
    assert res.exit_code == 1 and doc["identities"]["grace"]["status"] == "expired"
    assert any("'grace'" in p and "expired" in p for p in doc["problems"])
    assert r.video is not None


def test_audit_passes_over_the_records_own_reference_photos(world, records, portraits, tmp_path):
    """The photos a record was bound with (`rights add --photo hopper.jpg`, kept in the project
    folder as the guide keeps them) are inputs, not undisclosed deliveries; a picture beside
    them that is no record's photo still is one."""
    import shutil

    from machinima.imageseq import write_image
    from machinima.rights.audit import audit

    project = tmp_path / "project"
    (project / "takes").mkdir(parents=True)
    (project / "machinima.toml").write_text('production = "film"\n')
    shutil.copy(portraits["hopper"], project / "grace-front.jpg")
    write_image(project / "still.png", np.full((8, 8, 3), 90, np.uint8))
    rep = audit(project, store=records)
    assert {d["path"].rsplit("/", 1)[-1]: d["status"] for d in rep.deliveries} == {"grace-front.jpg": "reference photo", "still.png": "unmarked"}
    assert rep.bad and not any("grace-front" in p for p in rep.problems) and any("still.png" in p for p in rep.problems), rep.problems

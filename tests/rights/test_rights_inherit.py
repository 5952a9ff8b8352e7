"""A face-swap merge's output carries the merge's clearance: lip re-sync on the merge step's own
signed frames accepts the face the merge put in by the merge's records (read from the step's
signed manifest, verified, never from a typed name), and says so in its provenance; the same
frames copied to a plain folder refuse; an expired or out-of-scope source record refuses; a
second person outside the merged face region is checked on their own face.

The swapped face is built to match neither cleared person, as a short-trained model's does (the
demo's is ~0.63 from both): half the source's face over half the destination's, stretched. The
first test checks that premise: the plain copy is refused because the face matches no record."""

import json
import shutil
import wave

import numpy as np
import pytest

from machinima import rights
from rights_helpers import bound_record, portrait_project

TINY = dict(e_dims=4, ae_dims=16, d_dims=4, d_mask_dims=2)
RES = 64


class NewFace:
    """A swap whose face is neither person's: half the source's aligned face over the
    destination's, stretched 1.6x vertically (dlib: ~0.65 from Hopper, ~0.69 from Collins)."""

    def __init__(self, face: np.ndarray, landmarks: np.ndarray) -> None:
        from faceswap.truth import FixedFace

        self.fixed = FixedFace(face, landmarks, "whole", RES)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        import cv2

        y = self.fixed(x)
        mix = 0.5 * x + 0.5 * y[:, :3]
        for n in range(len(x)):
            big = cv2.resize(np.ascontiguousarray(mix[n].transpose(1, 2, 0)), (RES, int(RES * 1.6)))
            o = (big.shape[0] - RES) // 2
            y[n, :3] = big[o:o + RES].transpose(2, 0, 1)
        return y


@pytest.fixture(scope="module")
def world(tmp_path_factory, identities):
    """A project (own local chain), a take, clips and facesets of both portraits, a 2-face plate."""
    from faceswap.backends import get_backend
    from machinima.imageseq import write_image
    from machinima.take import Take

    root, faces = portrait_project(tmp_path_factory.mktemp("project"))
    for i in range(3):  # Hopper on the left, Collins on the right
        canvas = np.full((320, 600, 3), 90, np.uint8)
        canvas[10:310, 20 + 2 * i:276 + 2 * i] = faces["hopper"]
        canvas[30:286, 320:576] = faces["collins"]
        write_image(root / "clips" / "two" / f"{i:06d}.png", canvas)
    be = get_backend("mediapipe")
    lm = be.detect(faces["collins"])[0].landmarks
    be.close()
    take = Take.create(root / "takes", production="film", scene="s1", shot="a")
    take.finalize()
    take.close()
    with wave.open(str(root / "line.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes((np.sin(2 * np.pi * 220 * np.arange(4000) / 16000) * 8000).astype("<i2").tobytes())
    return {"root": root, "store": rights.RightsStore(root / "rights"), "faces": faces, "identities": identities,
            "swapper": NewFace(faces["collins"], lm), "take": take.path}


def _records(world, **eileen):
    store = world["store"]
    for p in store.root.glob("*.json"):
        p.unlink()
    store.add(bound_record("eileen", world["identities"]["collins"], subject="Eileen Collins", **eileen))
    store.add(bound_record("grace", world["identities"]["hopper"], subject="Grace Hopper"))
    return store


def _model(world, path, src="collins", dst="hopper"):
    import torch

    from faceswap.model import ModelConfig
    from faceswap.train import TrainConfig, Trainer

    torch.set_num_threads(1)
    if not (path / "model.json").exists():
        Trainer(path, src=world["root"] / "faces" / src, dst=world["root"] / "faces" / dst,
                model_config=ModelConfig(arch="df", res=RES, **TINY), train_config=TrainConfig(batch=2, save_every=1000),
                production="film", rights_store=world["store"].root).train(1, progress=False)
    return path


def _merge(world, model, target, out, **opt):
    from faceswap.merge import MergeOptions, merge

    return merge(world["root"] / "clips" / target, model, out=world["root"] / out, swapper=world["swapper"], production="film",
                 options=MergeOptions(res=RES, face_type="whole", blend="alpha", batch=4, **opt), rights_store=world["store"].root,
                 progress=False, video=False)


def _resync(world, plate, step_id):
    from lipsync.video import resync_video

    return resync_video(world["take"], plate, audio=world["root"] / "line.wav", production="film", subjects=["a label"],
                        step_id=step_id, plate_fps="25", progress=False)


@pytest.fixture(scope="module")
def merged(world):
    """Collins (the source: the model's identity) swapped onto Hopper (the destination), both cleared."""
    _records(world)
    model = _model(world, world["root"] / "models" / "collins-on-hopper")
    r = _merge(world, model, "hopper", "swapped")
    assert r.done == 3 and r.rights["swap"]["source"] == ["eileen"] and r.rights["swap"]["destination"] == ["grace"], r.rights
    return world["root"] / "swapped"


def test_resync_on_the_merge_step_inherits_its_clearance_and_says_so(world, merged, monkeypatch):
    from machinima import provenance as pv
    from machinima.rights.audit import audit

    _records(world)
    monkeypatch.chdir(world["root"])  # the project's rights store and trust
    rep = _resync(world, merged / "rgb", "lipsync")
    assert rep.resynced == 3
    params = json.loads((world["take"] / "post" / "lipsync" / "params.json").read_text())
    (inh,) = params["rights"]["inherited"]
    assert inh["step_id"] == "faceswap-collins-on-hopper" and inh["source"] == ["eileen"] and inh["destination"] == ["grace"]
    assert inh["faces"] >= 1 and inh["scope"] == "lip_sync" and inh["from_step"] == str(merged)  # frames 0 and 2 sampled
    assert sorted(r["id"] for r in params["rights"]["records"]) == ["eileen", "grace"]
    assert not params["rights"].get("identities")  # no face matched a record on its own: all were inherited
    mp4 = pv.verify_file(rep.mp4)  # the signed manifest of the lip-sync movie names the inheritance too
    assert mp4.status == "ok-local" and mp4.rights["inherited"][0]["step_id"] == "faceswap-collins-on-hopper", mp4.to_doc()
    doc = audit(world["root"], store=world["store"]).to_doc()
    assert [(i["step"], i["source"], i["destination"]) for i in doc["inherited"]] == [("lipsync", ["eileen"], ["grace"])]


def test_the_same_frames_copied_to_a_plain_folder_refuse(world, merged, monkeypatch, tmp_path):
    _records(world)
    monkeypatch.chdir(world["root"])
    plain = world["root"] / "plain"
    shutil.copytree(merged / "rgb", plain, dirs_exist_ok=True)
    with pytest.raises(rights.NotCleared, match=r"lip_sync not cleared .* a face that matches no rights record .*no clearance "
                                                r"inherited: .*plain is not the output of a face-swap merge step"):
        _resync(world, plain, "lipsync-plain")
    # a frame of the step changed after signing: nothing is inherited either
    tampered = world["root"] / "tampered"
    shutil.copytree(merged, tampered, dirs_exist_ok=True)
    from machinima.imageseq import list_frames, read_image, write_image

    f0 = list_frames(tampered / "rgb")[0]
    img = read_image(f0)
    img[:8, :8] = 0
    write_image(f0, img)
    with pytest.raises(rights.NotCleared, match=r"no clearance inherited: .*(not the frame the merge step signed|tampered)"):
        _resync(world, tampered / "rgb", "lipsync-tampered")


@pytest.mark.parametrize("eileen, why", [(dict(expires="2020-01-01"), "expired on 2020-01-01"),
                                         (dict(scopes=("training", "face_replacement")), "covers training, face_replacement, not lip_sync")])
def test_an_expired_or_out_of_scope_source_record_refuses(world, merged, monkeypatch, eileen, why):
    _records(world, **eileen)
    monkeypatch.chdir(world["root"])
    with pytest.raises(rights.NotCleared, match=rf"record 'eileen' \(the source of face-swap merge swapped, whose clearance these "
                                                rf"frames inherit\) {why}"):
        _resync(world, merged / "rgb", "lipsync-refused")
    assert not (world["take"] / "post" / "lipsync-refused").exists()


def test_a_second_person_outside_the_merged_face_is_checked_on_their_own_face(world, monkeypatch):
    """Hopper swapped (a model of her own faces: grace is source and destination), Collins beside
    her untouched: her record covers face replacement, not lip sync."""
    from faceswap.merge import track_faces
    from faceswap.backends import get_backend
    from faceswap.sources import open_source

    _records(world, scopes=("training", "face_replacement"))
    model = _model(world, world["root"] / "models" / "hopper-on-hopper", src="hopper")
    be = get_backend("mediapipe")
    per_frame, _, _ = track_faces(open_source(world["root"] / "clips" / "two"), [0, 1, 2], be)
    be.close()
    (left,) = [t for t, lm in per_frame[0].items() if lm[:, 0].mean() < 300]
    r = _merge(world, model, "two", "swapped-two", tracks=[left])
    swap = r.rights["swap"]
    assert swap["tracks"] == [f"track {left}"] and swap["destination"] == ["grace"] and swap["source"] == [], swap  # Collins was not replaced
    monkeypatch.chdir(world["root"])
    with pytest.raises(rights.NotCleared, match=r"frame 0, face \d: the face matches record 'eileen' .*not lip_sync"):
        _resync(world, world["root"] / "swapped-two" / "rgb", "lipsync-two")
    _records(world)  # Collins cleared for lip sync too: her face passes on its own, Hopper's by inheritance
    _resync(world, world["root"] / "swapped-two" / "rgb", "lipsync-two")
    params = json.loads((world["take"] / "post" / "lipsync-two" / "params.json").read_text())
    assert [i["record"] for i in params["rights"]["identities"]] == ["eileen"] and params["rights"]["inherited"][0]["faces"] >= 1

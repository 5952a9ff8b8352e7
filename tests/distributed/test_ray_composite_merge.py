"""The real composite and face-swap merge on a local Ray cluster: outputs identical to the
local run (pixels, keys, provenance apart from timestamps), and a worker killed mid-chunk costs
only that chunk (chunks.jsonl shows it) with the same output as a clean run."""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from machinima.distributed import StepSpec, ledger, run_job
from machinima.provenance import record_decision

from ray_helpers import KillOnce, assert_same_output, frame_files, ledger_lines, params_apart_from_time

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """The composite demo scene, small: a take with rgb/depth/light passes and an mp4 plate."""
    from composite.demo_scene import make_demo

    root = tmp_path_factory.mktemp("comp")
    take, plate, pos = make_demo(root, width=160, height=96, frames=12)
    record_decision(take, False, "pixel-exact Ray test: no watermark (its manifest id is random per frame)")
    return take, plate, pos


def _settings(plate, pos, step_id):
    from composite.pipeline import CompositeSettings
    from composite.placement import PlacementSettings

    return CompositeSettings(plate=Path(plate), matte="green", placement=PlacementSettings(position=pos), step_id=step_id, video=False, workers=1)


def test_composite_on_ray_is_identical_and_a_killed_worker_redoes_one_chunk(cluster, scene):
    from composite.distributed import CompositeJob
    from composite.pipeline import CompositePipeline, run_composite

    take, plate, pos = scene
    local = run_composite(take, _settings(plate, pos, "comp-local"), progress=False)
    assert len(local.report.done) == 12
    on_ray = run_composite(take, _settings(plate, pos, "comp-ray"), progress=False, ray="local", chunk_size=4)
    assert on_ray.report.done == list(range(12)) and on_ray.report.chunks == 3
    assert_same_output(local.out_dir, on_ray.out_dir, ("rgb", "alpha"), 12)
    assert {w["pid"] for w in on_ray.report.workers} and sum(w["frames"] for w in on_ray.report.workers) == 12

    # a worker dies in chunk 1 (frames 4-7) after frames 4 and 5 were written
    p = CompositePipeline(take, _settings(plate, pos, "comp-kill"))
    prep = p.prepare(progress=False)
    prep.close()
    job = KillOnce(CompositeJob(StepSpec.of(prep.step), str(take), p.s), die_at=6, marker=str(prep.step.out_dir / "died"))
    rep = run_job(job, prep.frames, address="local", chunk_size=4, frame_inputs=None, progress=False)
    assert (prep.step.out_dir / "died").exists()
    assert rep.redone_chunks == [1]
    att = ledger.attempts(prep.step.out_dir, rep.job_id)
    assert att == {0: {"starts": 1, "ends": 1}, 1: {"starts": 2, "ends": 1}, 2: {"starts": 1, "ends": 1}}
    end1 = [r for r in ledger.read(prep.step.out_dir, rep.job_id) if r["event"] == "end" and r["chunk"] == 1][0]
    # the retry redid only what was in flight: frames after the one that killed it, and those of 4-5
    # still queued for writing (write-behind) when the worker died
    assert set(end1["skipped"]) <= {4, 5} and sorted(end1["skipped"] + end1["done"]) == [4, 5, 6, 7]
    frames_recorded = [r["frame"] for r in ledger_lines(prep.step.out_dir)]
    assert sorted(frames_recorded) == list(range(12))  # every frame written once
    assert frame_files(prep.step.out_dir, "rgb") == frame_files(local.out_dir, "rgb")
    assert frame_files(prep.step.out_dir, "alpha") == frame_files(local.out_dir, "alpha")


# --- face-swap merge ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def faceswap_data(tmp_path_factory):
    """A moving face clip (matplotlib's grace_hopper.jpg) and a tiny DF model trained 4 steps."""
    import cv2
    import matplotlib.cbook as cbook
    import torch
    from PIL import Image

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "faceswap"))
    from faceswap_testdata import moving_clip, write_clip

    from faceswap.extract import extract
    from faceswap.model import ModelConfig
    from faceswap.train import TrainConfig, Trainer

    with cbook.get_sample_data("grace_hopper.jpg") as fh:
        grace = np.ascontiguousarray(np.asarray(Image.open(fh).convert("RGB")))
    root = tmp_path_factory.mktemp("fs")
    write_clip(root / "gh", moving_clip(grace, 4))
    faces = extract(root / "gh", root / "bob", face_type="whole", size=64, progress=False)
    assert faces.added == 4
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    t = Trainer(root / "m", src=root / "bob", dst=root / "bob", model_config=ModelConfig(arch="df", res=64, e_dims=4, ae_dims=16, d_dims=4, d_mask_dims=2),
                train_config=TrainConfig(batch=2, lr=1e-3, save_every=1000, log_every=1), rights={"override": "tests"})
    t.train(2, progress=False)
    torch.set_num_threads(n)
    small = cv2.resize(grace, (192, 224), interpolation=cv2.INTER_AREA)
    write_clip(root / "clip", moving_clip(small, 8, shift=(2.0, 1.0), zoom=0.01))
    return root / "clip", root / "m", root


def _merge(clip, model, out, **kw):
    from faceswap.merge import MergeOptions, merge

    out.mkdir(parents=True, exist_ok=True)
    record_decision(out, False, "pixel-exact Ray test")
    return merge(clip, model, out=out, options=MergeOptions(engine="torch", device="cpu", batch=1), production="film",
                 override="test material", rights_store=out.parent / "rights", video=False, progress=False, **kw)


def test_merge_on_ray_is_identical_and_a_killed_worker_redoes_one_chunk(cluster, faceswap_data, monkeypatch):
    import faceswap.distributed as fsd

    clip, model, root = faceswap_data
    local = _merge(clip, model, root / "local")
    assert local.done == 8
    on_ray = _merge(clip, model, root / "ray", ray="local", chunk_size=3)
    assert on_ray.done == 8 and sum(w["frames"] for w in on_ray.workers) == 8
    a, b = frame_files(root / "local", "rgb"), frame_files(root / "ray", "rgb")
    assert len(a) == 8 and a == b
    from machinima.imageseq import find_frame, read_image

    changed = np.abs(read_image(clip / "000000.png").astype(int) - read_image(find_frame(root / "ray" / "rgb", 0))).mean()
    assert changed > 0.5  # the network really pasted a face: identical outputs are not two untouched copies
    assert params_apart_from_time(root / "local") == params_apart_from_time(root / "ray")
    keys = lambda d: {r["frame"]: r["key"] for r in ledger_lines(d)}  # noqa: E731
    assert keys(root / "local") == keys(root / "ray")

    # the worker dies on frame 4 (chunk 1 = frames 3-5) after frame 3 was written
    real = fsd.MergeJob
    out = root / "kill"
    monkeypatch.setattr(fsd, "MergeJob", lambda *a, **k: KillOnce(real(*a, **k), die_at=4, marker=str(out / "died")))
    killed = _merge(clip, model, out, ray="local", chunk_size=3)
    assert (out / "died").exists() and killed.done == 8
    runs = ledger.read(out)
    job = runs[0]["job"]
    assert ledger.attempts(out, job) == {0: {"starts": 1, "ends": 1}, 1: {"starts": 2, "ends": 1}, 2: {"starts": 1, "ends": 1}}
    end1 = [r for r in runs if r["event"] == "end" and r["chunk"] == 1][0]
    assert set(end1["skipped"]) <= {3} and sorted(end1["skipped"] + end1["done"]) == [3, 4, 5]
    assert sorted(r["frame"] for r in ledger_lines(out)) == list(range(8))
    assert frame_files(out, "rgb") == a
    shutil.rmtree(root / "rights", ignore_errors=True)


def test_storage_probe_names_what_a_node_cannot_see(cluster, tmp_path):
    from machinima.distributed.storage import probe_shared, sees

    assert probe_shared(cluster, tmp_path / "step") >= 1
    assert not list((tmp_path / "step").glob(".ray-probe-*"))  # the token file is cleaned up
    assert "does not exist there" in sees(str(tmp_path / "elsewhere" / ".ray-probe-x"), "x")
    (tmp_path / "tok").write_text("other")
    assert "another run's token" in sees(str(tmp_path / "tok"), "x")
    assert sees(str(tmp_path / "tok"), "other") is None


def test_composite_on_ray_signs_each_frame_as_the_local_run_does(cluster, scene, tmp_path):
    """Disclosure on: every frame carries a signed manifest whose machinima assertion (take, step,
    params hash, frame, rights, watermark scheme) is the local run's; only the manifest's own id
    (random per frame, carried by the watermark) and the time differ."""
    from composite.pipeline import run_composite
    from machinima.imageseq import find_frame
    from machinima.provenance.sequence import sequence_hashes
    from machinima.provenance.verify import read_manifest

    take, plate, pos = scene
    copies = []
    for where in ("local", "ray"):
        t = Path(shutil.copytree(take, tmp_path / where / take.name))
        for p in t.glob("disclosure*.json"):
            p.unlink()  # the copy discloses (the scene's take records "off" for the pixel tests)
        shutil.rmtree(t / "post", ignore_errors=True)
        copies.append(t)
    s = _settings(plate, pos, "comp")
    s.frames = (0, 4)
    local = run_composite(copies[0], s, progress=False)
    on_ray = run_composite(copies[1], s, progress=False, ray="local", chunk_size=2)

    def assertion(path):
        state, m, _ = read_manifest(path)
        assert state in ("valid", "trusted"), state
        data = next(a["data"] for a in m["assertions"] if a["label"] not in ("c2pa.actions.v2", "c2pa.actions") and "frame" in a.get("data", {}))
        data = json.loads(json.dumps(data))
        data["watermark"].pop("manifest_tag")
        return data

    for f in range(4):
        a, b = assertion(find_frame(local.out_dir / "rgb", f)), assertion(find_frame(on_ray.out_dir / "rgb", f))
        assert a == b and a["step"] == "comp"
        for out in (local, on_ray):
            path = find_frame(out.out_dir / "rgb", f)
            if path.suffix == ".qoi":  # QOI frames share the step's sequence manifest, which lists each frame's hash
                listed = sequence_hashes(read_manifest(path)[1])
                assert a["frame"] is None and listed[path.relative_to(out.out_dir).as_posix()] == hashlib.sha256(path.read_bytes()).hexdigest()
            else:  # a PNG frame carries its own manifest, naming the frame
                assert a["frame"] == f


def test_plan_streams_on_ray_as_step_by_step(cluster, tmp_path):
    """``post run --ray``: the composite's chunks on the cluster, the archive's windows submitted
    from the plan's helper thread to the same cluster while the composite runs; the frames are a
    step-by-step run's byte for byte, and each archive frame is written once."""
    import composite.plan
    import stylize.plan
    from composite.demo_scene import make_demo
    from machinima.postplan import run_plan

    take, plate, pos = make_demo(tmp_path, width=96, height=64, frames=8)
    record_decision(take, False, "pixel-exact plan test")
    other = Path(shutil.copytree(take, tmp_path / "copy" / take.name))
    kinds = {"composite": composite.plan.run, "archive": stylize.plan.run_archive}

    def plan(t):
        p = t.parent / "p.toml"
        p.write_text(f'name = "r"\ntake = "{t}"\n[[step]]\nid = "comp"\nkind = "composite"\nplate = "{plate}"\nkey = "green"\n'
                     f'place = [{pos[0]}, {pos[1]}, {pos[2]}]\nworkers = 1\nchunk = 2\n'
                     '[[step]]\nid = "archive"\nkind = "archive"\nfrom = "@comp"\npreset = "vhs-1994"\n')
        return p

    rep = run_plan(plan(take), progress=False, kinds=kinds, ray="local")
    assert rep.ran == ["comp", "archive"]
    assert ledger.read(take / "post" / "comp")  # the composite ran as Ray chunks
    run_plan(plan(other), progress=False, kinds=kinds, stream=False)
    a, b = frame_files(take / "post" / "archive", "frames"), frame_files(other / "post" / "archive", "frames")
    assert len(a) == 8 and a == b
    assert sorted(r["frame"] for r in ledger_lines(take / "post" / "archive")) == list(range(8))

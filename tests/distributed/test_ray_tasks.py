"""Whole tasks on Ray: a LoRA sweep, one trial per task, gives the same LoRAs as the trials
trained one after another in-process; a trial already finished is not trained again."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lora"))


def _tensors(path):
    from safetensors.numpy import load_file

    return load_file(str(path))


@pytest.mark.slow  # two Ray workers import torch + diffusers cold (~20 s each on the busy 2-core machine), then train
def test_lora_sweep_on_ray_matches_the_trials_in_process(cluster, tmp_path):
    import numpy as np
    import torch
    from lora_helpers import make_dataset

    from lora.sweep import expand, run_sweep, trial_out
    from lora.tiny import hash_embedder, tiny_base
    from lora.train import TrainConfig

    torch.set_num_threads(1)
    base = tiny_base(tmp_path / "tiny-sd")
    ds = make_dataset(tmp_path / "ds", n=2)
    cfg = TrainConfig.from_preset("cpu", rank=4, resolution=32, bucket_step=8, steps=3, lr=2e-3, batch_size=2, eval_draws=0, sample_every=0)
    assert expand("lr=2e-3,5e-4;rank=2,4") == [{"lr": 2e-3, "rank": 2}, {"lr": 2e-3, "rank": 4}, {"lr": 5e-4, "rank": 2}, {"lr": 5e-4, "rank": 4}]
    sweep = "rank=2,4"
    kw = dict(embed=hash_embedder(), rights_override="synthetic test images")
    on_ray = run_sweep(ds, base, tmp_path / "ray" / "l.safetensors", cfg, sweep, ray="local", progress=False, **kw)
    local = run_sweep(ds, base, tmp_path / "local" / "l.safetensors", cfg, "rank=4", progress=False, **kw)  # one trial to compare
    assert [r["trial"] for r in on_ray] == ["rank2", "rank4"] and [r["trial"] for r in local] == ["rank4"]
    assert all(r["status"] == "done" and r["steps"] == 3 for r in on_ray)
    a, b = _tensors(trial_out(tmp_path / "local" / "l.safetensors", {"rank": 4})), _tensors(trial_out(tmp_path / "ray" / "l.safetensors", {"rank": 4}))
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    ranks = {o["rank"]: _tensors(trial_out(tmp_path / "ray" / "l.safetensors", o)) for o in expand(sweep)}
    assert {v.shape[0] for v in ranks[2].values() if v.ndim == 2} >= {2} and {v.shape[0] for v in ranks[4].values() if v.ndim == 2} >= {4}


def test_dream_shots_in_parallel_on_ray_match_the_local_run(cluster, tmp_path, monkeypatch):
    import cv2
    import numpy as np

    from machinima.imageseq import write_image
    from machinima.provenance import record_decision
    from ray_helpers import frame_files, params_apart_from_time
    from stylize.dream_cli import dream

    monkeypatch.chdir(tmp_path)
    for name, seed in (("a", 3), ("b", 4)):
        rng = np.random.default_rng(seed)
        write_image(tmp_path / f"{name}.png", cv2.resize(rng.integers(0, 255, (12, 16, 3), dtype=np.uint8), (96, 72), interpolation=cv2.INTER_CUBIC))
    for where in ("local", "ray"):
        for name in ("a", "b"):
            (tmp_path / where / f"dream-drift-{name}").mkdir(parents=True)
            record_decision(tmp_path / where / f"dream-drift-{name}", False, "pixel-exact Ray test")
    common = dict(dream_file="drift", frames=4, step_id=None, mp4=False, gpus=0)
    dream(["a.png", "b.png"], out=Path("local"), ray=None, **common)
    dream(["a.png", "b.png"], out=Path("ray"), ray="local", **common)
    for name in ("a", "b"):
        a, b = tmp_path / "local" / f"dream-drift-{name}", tmp_path / "ray" / f"dream-drift-{name}"
        assert len(frame_files(a, "frames")) == 4 and frame_files(a, "frames") == frame_files(b, "frames")
        pa, pb = params_apart_from_time(a), params_apart_from_time(b)
        va, vb = pa.pop("versions"), pb.pop("versions")  # modules imported: the worker loads only what the look needs
        assert pa == pb and {k: va[k] for k in vb if k in va} == {k: vb[k] for k in va if k in vb} and {"numpy", "machinima"} <= set(vb)
    assert frame_files(tmp_path / "ray" / "dream-drift-a", "frames") != frame_files(tmp_path / "ray" / "dream-drift-b", "frames")


def test_animate_segments_on_ray_match_the_local_run(cluster, tmp_path):
    import functools

    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "animatediff"))
    from animatediff_helpers import look_doc, make_take

    from machinima.provenance import record_decision
    from ray_helpers import frame_files, params_apart_from_time
    from stylize.animate_distributed import animate_take_on_ray
    from stylize.animatediff import animate_take, parse_animate_look, tiny_engine, tiny_motion_components

    torch.set_num_threads(1)
    take = make_take(tmp_path, n=8, size=24)
    record_decision(take, False, "pixel-exact Ray test")
    look, motion = parse_animate_look(look_doc(shots=[{"name": "a", "frames": [0, 3], "seed": 3}, {"name": "b", "frames": [4, 7]}],
                                               model={"steps": 2}, animatediff={"context_length": 4, "context_overlap": 2}))
    comps = tiny_motion_components(0)
    local = animate_take(take, look, motion, engine=tiny_engine(look, motion, comps), step_id="ad-local", progress=False, video=False)
    on_ray = animate_take_on_ray(take, look, motion, address="local", step_id="ad-ray", progress=False, video=False,
                                 engine_factory=functools.partial(tiny_engine, look, motion, comps))
    assert sorted(local.report.done) == on_ray.report.done == list(range(8)) and len(on_ray.segments) == 2
    a, b = frame_files(local.out_dir, "frames"), frame_files(on_ray.out_dir, "frames")
    assert len(a) == 8 and a == b
    pa, pb = params_apart_from_time(local.out_dir), params_apart_from_time(on_ray.out_dir)
    va, vb = pa.pop("versions"), pb.pop("versions")
    assert pa == pb and {k: va[k] for k in vb if k in va} == {k: vb[k] for k in va if k in vb} and {"torch", "diffusers"} <= set(vb)

"""Whole tasks on Ray: a LoRA sweep, one trial per task, gives the same LoRAs as the trials
trained one after another in-process; a trial already finished is not trained again."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lora"))


@pytest.fixture(scope="module")
def cluster():
    os.environ["RAY_AUTH_MODE"] = "disabled"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def _tensors(path):
    from safetensors.numpy import load_file

    return load_file(str(path))


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
    local = run_sweep(ds, base, tmp_path / "local" / "l.safetensors", cfg, sweep, progress=False, **kw)
    on_ray = run_sweep(ds, base, tmp_path / "ray" / "l.safetensors", cfg, sweep, ray="local", progress=False, **kw)
    assert [r["trial"] for r in local] == [r["trial"] for r in on_ray] == ["rank2", "rank4"]
    assert all(r["status"] == "done" and r["steps"] == 3 for r in on_ray)
    for o in expand(sweep):
        a, b = _tensors(trial_out(tmp_path / "local" / "l.safetensors", o)), _tensors(trial_out(tmp_path / "ray" / "l.safetensors", o))
        assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    ranks = {o["rank"]: _tensors(trial_out(tmp_path / "ray" / "l.safetensors", o)) for o in expand(sweep)}
    assert {v.shape[0] for v in ranks[2].values() if v.ndim == 2} >= {2} and {v.shape[0] for v in ranks[4].values() if v.ndim == 2} >= {4}

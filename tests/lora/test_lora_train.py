"""LoRA training on a tiny random base (CPU, 32 px): loss, exact resume, output layouts, loading."""

from __future__ import annotations

import json
import os
import signal

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from lora.tiny import hash_embedder
from lora.train import TrainConfig, train

from lora_helpers import make_dataset


def cfg(**kw):
    base = dict(rank=4, resolution=32, bucket_step=8, steps=16, lr=2e-3, batch_size=2, sample_steps=2, sample_seeds=(0,),
                eval_draws=2)
    base.update(kw)
    return TrainConfig.from_preset("cpu", **base)


def run(ds, base, out, c, **kw):
    return train(ds, base, out, c, embed=hash_embedder(), rights_override="synthetic test images", progress=False, **kw)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_base_dir):
    tmp = tmp_path_factory.mktemp("trained")
    ds = make_dataset(tmp / "ds")
    res = run(ds, tiny_base_dir, tmp / "out" / "hero.safetensors", cfg(steps=40, save_every=20))
    return res, ds


def test_training_lowers_loss_and_writes_everything(trained):
    res, _ = trained
    assert res.status == "done" and res.step == 40 and len(res.losses) == 40
    assert res.eval_loss_end < res.eval_loss_start * 0.97, (res.eval_loss_start, res.eval_loss_end)
    out = res.out
    with safe_open(str(out), "pt") as f:
        meta = f.metadata()
        keys = list(f.keys())
    assert meta["machinima.rank"] == "4" and meta["machinima.steps"] == "40" and meta["machinima.trigger"] == "ohwx"
    assert len(meta["machinima.base_hash"]) == 64 and len(meta["machinima.dataset_hash"]) == 64
    assert meta["ss_network_dim"] == "4" and json.loads(meta["machinima.rights"])["scope"] == "training"  # no face: nothing to override
    assert all(k.startswith("lora_unet_") and k.endswith((".lora_down.weight", ".lora_up.weight", ".alpha")) for k in keys)
    assert (out.with_name("hero.diffusers") / "pytorch_lora_weights.safetensors").exists()
    assert (res.work / "loss.png").stat().st_size > 1000
    assert res.samples and res.samples[-1].exists()


def test_resume_after_interrupt_gives_the_same_weights(tmp_path, tiny_base_dir):
    ds = make_dataset(tmp_path / "ds", n=5)  # 5 images, batch 2: uneven epochs cross the interrupt
    c = cfg(steps=9, save_every=4, noise_offset=0.05, lr_scheduler="cosine", warmup_steps=2)
    full = run(ds, tiny_base_dir, tmp_path / "a" / "l.safetensors", c)

    def ctrl_c(trainer, step, loss):
        if step == 6:
            os.kill(os.getpid(), signal.SIGINT)  # a real Ctrl-C: the step finishes, a checkpoint is written

    part = run(ds, tiny_base_dir, tmp_path / "b" / "l.safetensors", c, on_step=ctrl_c)
    assert part.status == "interrupted" and part.step == 6 and part.out is None
    assert not (tmp_path / "b" / "l.safetensors").exists()
    rest = run(ds, tiny_base_dir, tmp_path / "b" / "l.safetensors", c)
    assert rest.resumed_from == 6 and rest.status == "done" and rest.step == 9
    a, b = load_file(str(full.out)), load_file(str(rest.out))
    assert a.keys() == b.keys()
    worst = max(float((a[k] - b[k]).abs().max()) for k in a)
    assert worst <= 1e-6, worst
    assert rest.losses == pytest.approx(full.losses, abs=1e-6)


def test_resume_refuses_other_settings(tmp_path, tiny_base_dir):
    from lora.errors import TrainConfigError

    ds = make_dataset(tmp_path / "ds")
    out = tmp_path / "o" / "l.safetensors"
    run(ds, tiny_base_dir, out, cfg(steps=2, eval_draws=0))
    with pytest.raises(TrainConfigError, match="other settings.*rank"):
        run(ds, tiny_base_dir, out, cfg(steps=2, rank=8, eval_draws=0))
    res = run(ds, tiny_base_dir, out, cfg(steps=2, rank=8, eval_draws=0), fresh=True)
    assert res.status == "done" and res.resumed_from is None


def _pipe(base_dir):
    from diffusers import DDIMScheduler, StableDiffusionPipeline
    from lora.train import load_base

    b = load_base(base_dir, need_text_encoder=False)
    pipe = StableDiffusionPipeline(vae=b.vae, text_encoder=None, tokenizer=None, unet=b.unet,
                                   scheduler=DDIMScheduler.from_config(b.scheduler.config, steps_offset=1), safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _paint(pipe):
    e = hash_embedder()
    return pipe(prompt_embeds=e("ohwx"), negative_prompt_embeds=e(""), num_inference_steps=3, guidance_scale=2.0, height=32,
                width=32, output_type="np", generator=torch.Generator().manual_seed(0)).images[0]


def test_saved_lora_loads_with_diffusers_and_changes_the_output(trained, tiny_base_dir):
    res, _ = trained
    pipe = _pipe(tiny_base_dir)
    before = _paint(pipe)
    pipe.load_lora_weights(str(res.out.parent), weight_name=res.out.name, adapter_name="hero")  # kohya layout
    after = _paint(pipe)
    assert np.abs(after - before).max() > 1e-3
    pipe2 = _pipe(tiny_base_dir)
    pipe2.load_lora_weights(str(res.out.with_name("hero.diffusers")))  # diffusers layout: the same LoRA
    assert np.abs(_paint(pipe2) - after).max() < 1e-4


def test_kohya_file_converts_back_through_diffusers_to_the_same_weights(trained):
    from diffusers.loaders.lora_conversion_utils import _convert_non_diffusers_lora_to_diffusers
    from diffusers.utils import convert_unet_state_dict_to_peft

    res, _ = trained
    kohya = load_file(str(res.out))
    converted, alphas = _convert_non_diffusers_lora_to_diffusers(dict(kohya))
    peft_sd = convert_unet_state_dict_to_peft({k.removeprefix("unet."): v for k, v in converted.items()})
    ours = {k.removeprefix("unet."): v for k, v in load_file(str(res.work / "checkpoints" / "step-000040" / "adapter.safetensors")).items()}
    ours = {k.replace(".default.weight", ".weight"): v for k, v in ours.items()}
    assert set(peft_sd) == set(ours) and len(ours) > 0
    for k in ours:
        assert torch.equal(peft_sd[k], ours[k]), k
    assert set(alphas.values()) == {4.0}


def test_stylize_look_loads_the_lora_and_changes_frames(trained, tiny_base_dir):
    from stylize.engines import DiffusionEngine
    from stylize.look import Look
    from lora.train import load_base

    res, _ = trained
    frame = (np.indices((32, 32)).sum(0) * 4 % 255).astype(np.uint8)[..., None].repeat(3, 2)

    def stylized(loras):
        doc = {"engine": "diffusion", "prompt": "ohwx", "seed": 1, "model": {"base": "tiny", "steps": 4, "strength": 0.7, "guidance": 2.0,
                                                                             "loras": loras},
               "controls": [], "cadence": {"mode": "every", "init_blend": 0.0, "color_match": False, "detect_cuts": False}}
        look = Look.from_doc(doc)
        b = load_base(tiny_base_dir, need_text_encoder=False)
        eng = DiffusionEngine.from_components(look, unet=b.unet, vae=b.vae, embed=hash_embedder(), runtime={"device": "cpu", "dtype": "fp32", "batch": 1})
        return eng.stylize([frame], [{}], prompts=[("ohwx", "")], seeds=[1], strengths=[0.7])[0], eng

    plain, _ = stylized([])
    with_lora, eng = stylized([{"path": str(res.out), "weight": 1.0}])
    assert "lora0" in eng.describe()["models"]
    assert np.abs(with_lora.astype(int) - plain.astype(int)).max() > 0


def test_cli_trains_unet_and_text_encoder_on_a_full_tiny_base(tmp_path):
    """`machinima lora train` end to end on a base with a (tiny) CLIP text encoder: both LoRAs in
    the kohya file, converted back by diffusers to the weights we trained, and loaded by a pipeline."""
    from diffusers import StableDiffusionPipeline
    from diffusers.loaders.lora_conversion_utils import _convert_non_diffusers_lora_to_diffusers
    from typer.testing import CliRunner

    from lora.cli import app
    from lora.tiny import tiny_base

    from lora_helpers import make_dataset

    base = tiny_base(tmp_path / "base", text_encoder=True)
    ds = make_dataset(tmp_path / "ds", n=2)
    out = tmp_path / "hero.safetensors"
    res = CliRunner().invoke(app, ["train", str(ds), "--base", str(base), "--out", str(out), "--steps", "4", "--rank", "2",
                                   "--resolution", "32", "--bucket-step", "8", "--lr", "0.01", "--train-text-encoder",
                                   "--save-precision", "fp32", "--sample-seeds", "0", "--override", "synthetic test images"])
    assert res.exit_code == 0, (res.output, res.exception)
    assert "LoRA:" in res.output and "held loss" in res.output
    sd = load_file(str(out))
    te_keys = [k for k in sd if k.startswith("lora_te_text_model_encoder_layers_")]
    assert te_keys and any(k.startswith("lora_unet_") for k in sd)
    converted, _ = _convert_non_diffusers_lora_to_diffusers(dict(sd))
    ck = load_file(str(tmp_path / "hero.work" / "checkpoints" / "step-000004" / "adapter.safetensors"))
    q = "encoder.layers.0.self_attn.q_proj"  # transformers 5 flattens CLIPTextModel (no text_model.)
    assert torch.equal(converted[f"text_encoder.text_model.{q.replace('q_proj', 'to_q_lora')}.down.weight"],
                       ck[f"text_encoder.{q}.lora_A.default.weight"])
    assert float(ck[f"text_encoder.{q}.lora_B.default.weight"].abs().max()) > 0  # the text encoder LoRA did train
    pipe = StableDiffusionPipeline.from_pretrained(str(base), safety_checker=None, requires_safety_checker=False, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)

    def paint():
        return pipe("photo of ohwx", num_inference_steps=2, height=32, width=32, output_type="np",
                    generator=torch.Generator().manual_seed(0)).images[0]

    before = paint()
    pipe.load_lora_weights(str(out.parent), weight_name=out.name)
    assert np.abs(paint() - before).max() > 1e-3
    assert (tmp_path / "hero.work" / "samples" / "step-000004.png").exists()
    te_before = pipe.text_encoder(torch.tensor([[1, 2, 3]]))[0]
    pipe.unload_lora_weights()
    assert not torch.allclose(pipe.text_encoder(torch.tensor([[1, 2, 3]]))[0], te_before), "the text encoder LoRA was not applied"


def test_buckets_keep_aspect_and_area():
    from lora.train import assign_bucket, fit_to_bucket, make_buckets

    b = make_buckets(512, 64)
    assert (512, 512) in b and all(w % 64 == 0 and h % 64 == 0 and w * h <= 512 * 512 for w, h in b)
    assert assign_bucket(1920, 1080, b) == (640, 384) and assign_bucket(600, 600, b) == (512, 512)
    w, h = assign_bucket(800, 1200, b)
    assert h > w
    assert fit_to_bucket(np.zeros((1080, 1920, 3), np.uint8), (640, 384)).shape == (384, 640, 3)


def test_prior_preservation_buckets_and_previews(tmp_path, tiny_base_dir):
    ds = make_dataset(tmp_path / "ds", n=4, sizes=[(32, 32), (32, 32), (48, 32), (48, 32)])
    prior = make_dataset(tmp_path / "prior", n=2, trigger="person")
    c = cfg(steps=4, sample_every=2, eval_draws=0)
    res = run(ds, tiny_base_dir, tmp_path / "p" / "l.safetensors", c, prior=prior)
    plain = run(ds, tiny_base_dir, tmp_path / "q" / "l.safetensors", c)
    assert res.status == "done" and [p.name for p in res.samples] == ["step-000002.png", "step-000004.png"]
    assert res.losses != plain.losses  # the prior loss is part of the objective
    import json

    assert json.loads((res.work / "params.json").read_text())["settings"]["prior"] == 2


def test_gradient_checkpointing_trains_the_same_weights(tmp_path, tiny_base_dir):
    ds = make_dataset(tmp_path / "ds", n=2)
    a = run(ds, tiny_base_dir, tmp_path / "a" / "l.safetensors", cfg(steps=3, eval_draws=0, sample_prompts=("x",), sample_seeds=(0,)))
    b = run(ds, tiny_base_dir, tmp_path / "b" / "l.safetensors", cfg(steps=3, eval_draws=0, sample_prompts=("x",), sample_seeds=(0,),
                                                                  gradient_checkpointing=True))
    wa, wb = load_file(str(a.out)), load_file(str(b.out))
    assert max(float((wa[k] - wb[k]).abs().max()) for k in wa) <= 1e-6
    assert float(wa[next(k for k in wa if k.endswith("lora_up.weight"))].abs().max()) > 0


@pytest.mark.gpu
def test_channels_last_option_trains_the_unet_in_channels_last(tmp_path, tiny_base_dir):
    from lora.train import Trainer

    ds = make_dataset(tmp_path / "ds", n=2)
    c = TrainConfig.from_preset("24gb", rank=4, resolution=32, bucket_step=8, steps=2, batch_size=2, eval_draws=0, channels_last=True)
    tr = Trainer(ds, tiny_base_dir, tmp_path / "o" / "l.safetensors", c, embed=hash_embedder(), rights_override="synthetic test images",
                 progress=False)
    tr.check_inputs()
    tr.load_models()
    tr.prepare_data()
    tr.setup_training()
    assert tr.base.unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    loss, _ = tr.train_step()
    assert np.isfinite(loss)

"""Diffusion engine and the in-memory pipeline on tiny random models (CPU)."""

import numpy as np
import pytest
import torch

from stylize import stylize_frames
from stylize.errors import ModelMissingError, StylizeError
from stylize.look import Look
from stylize.qc import flicker
from stylize.tiny import tiny_engine

from stylize_helpers import translating

N = 6


def look_doc(**kw):
    doc = {"engine": "diffusion", "prompt": "a painted street", "seed": 3,
           "model": {"base": "tiny", "steps": 4, "strength": 0.6, "guidance": 1.0},
           "controls": [{"kind": "depth"}], "cadence": {"mode": "every", "init_blend": 0.0, "color_match": False, "detect_cuts": False}}
    for k, v in kw.items():
        if isinstance(v, dict) and isinstance(doc.get(k), dict):
            doc[k] = {**doc[k], **v}
        else:
            doc[k] = v
    return doc


@pytest.fixture(scope="module")
def clip():
    frames = translating(N, 32, 32, dx=1)
    depth = [np.full((32, 32), 2.0, np.float32) + np.linspace(0, 3, 32, dtype=np.float32)[None] for _ in frames]
    return frames, {"depth": depth}


def run(look, tiny, clip, **kw):
    frames, passes = clip
    eng = tiny_engine(look, tiny, **kw)
    return stylize_frames(frames, look, passes=passes, engine=eng), eng


@pytest.mark.parametrize("mode", ["every", "hold", "propagate"])
def test_modes_shapes_and_dtypes(mode, tiny, clip):
    look = Look.from_doc(look_doc(cadence={"mode": mode, "every": 3, "init_blend": 0.3, "color_match": True}))
    out, eng = run(look, tiny, clip)
    assert len(out) == N and all(o.shape == (32, 32, 3) and o.dtype == np.uint8 for o in out)
    if mode == "hold":
        assert np.array_equal(out[1], out[0]) and not np.array_equal(out[3], out[0])
    if mode == "propagate":
        assert not np.array_equal(out[1], out[0])
    assert eng.describe()["engine"] == "diffusion"


def test_same_seed_same_frames_other_seed_differs(tiny, clip):
    look = Look.from_doc(look_doc())
    a, _ = run(look, tiny, clip)
    b, _ = run(look, tiny, clip)
    c, _ = run(Look.from_doc(look_doc(seed=4)), tiny, clip)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert any(not np.array_equal(x, y) for x, y in zip(a, c))


def test_batching_keeps_frames_close(tiny, clip):
    look = Look.from_doc(look_doc())
    a, _ = run(look, tiny, clip)
    b, eng = run(look, tiny, clip, runtime={"dtype": "fp32", "batch": 4, "device": "cpu", "channels_last": True, "vae_slicing": True, "vae_tiling": True})
    assert eng.batch == 4
    tiny["vae"].disable_tiling()
    tiny["vae"].disable_slicing()
    tiny["unet"].to(memory_format=torch.contiguous_format)
    for cn in tiny["controlnets"]:
        cn.to(memory_format=torch.contiguous_format)
    assert max(np.abs(x.astype(int) - y.astype(int)).max() for x, y in zip(a, b)) <= 2


def test_multi_controlnet_two_controls_each_matter(tiny, clip):
    frames, passes = clip
    look = Look.from_doc(look_doc(controls=[{"kind": "depth", "weight": 1.0}, {"kind": "canny", "weight": 0.8, "start": 0.0, "end": 0.5}]))
    eng = tiny_engine(look, tiny)
    assert type(eng.pipe.controlnet).__name__ == "MultiControlNetModel"
    base = stylize_frames(frames[:2], look, passes={"depth": passes["depth"][:2]}, engine=eng)
    flat = [np.full((32, 32), 9.0, np.float32)] * 2
    other = stylize_frames(frames[:2], look, passes={"depth": flat}, engine=eng)
    assert not np.array_equal(base[0], other[0])
    look0 = Look.from_doc(look_doc(controls=[{"kind": "depth", "weight": 1.0}, {"kind": "canny", "weight": 0.0}]))
    zero = stylize_frames(frames[:2], look0, passes={"depth": passes["depth"][:2]}, engine=tiny_engine(look0, tiny))
    assert not np.array_equal(base[0], zero[0])  # the second control's weight changes the picture


def test_txt2img_with_controlnet(tiny, clip):
    look = Look.from_doc(look_doc(model={"mode": "txt2img", "steps": 2}))
    out, eng = run(look, tiny, clip)
    assert eng.describe()["pipeline"] == "StableDiffusionControlNetPipeline" and out[0].shape == (32, 32, 3)


def test_lora_file_made_here_loads_and_changes_frames(tmp_path, tiny, clip):
    from diffusers import StableDiffusionPipeline
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    from stylize.tiny import tiny_components

    donor = tiny_components(0)["unet"]
    donor.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"], init_lora_weights=False))
    StableDiffusionPipeline.save_lora_weights(tmp_path, unet_lora_layers=get_peft_model_state_dict(donor), weight_name="ink.safetensors")
    frames, passes = clip
    plain = Look.from_doc(look_doc(controls=[]))
    a = stylize_frames(frames[:2], plain, engine=tiny_engine(plain, tiny))
    with_lora = Look.from_doc(look_doc(controls=[], model={"loras": [{"path": str(tmp_path / "ink.safetensors"), "weight": 0.9}]}))
    comps = {**tiny, "unet": tiny_components(0)["unet"]}  # a fresh UNet: the shared one stays LoRA-free
    eng = tiny_engine(with_lora, comps)
    assert eng.describe()["models"]["lora0"]["weight"] == 0.9
    b = stylize_frames(frames[:2], with_lora, engine=eng)
    assert not np.array_equal(a[0], b[0])
    missing = Look.from_doc(look_doc(controls=[], model={"loras": [{"path": str(tmp_path / "nope.safetensors")}]}))
    with pytest.raises(ModelMissingError, match="nope.safetensors"):
        tiny_engine(missing, comps)


def test_missing_models_say_what_to_put_where(tmp_path, tiny):
    from machinima.config import load_config

    cfg = load_config(tmp_path, env={})
    look = Look.from_doc(look_doc(model={"base": "sd15"}))
    with pytest.raises(ModelMissingError) as exc:
        from stylize.engines import build_engine

        build_engine(look, cfg)
    msg = str(exc.value)
    assert str(tmp_path / "models" / "sd15") in msg and "put it there" in msg
    # base present (a saved tiny pipeline), its ControlNet missing: the message names the ControlNet
    eng = tiny_engine(Look.from_doc(look_doc(controls=[])), tiny)
    eng.pipe.save_pretrained(tmp_path / "models" / "sd15")
    look = Look.from_doc(look_doc(model={"base": "sd15"}, controls=[{"kind": "depth", "model": "controlnets/depth"}]))
    with pytest.raises(ModelMissingError, match=r"ControlNet for 'depth'.*controlnets/depth"):
        build_engine(look, cfg)
    # everything present but no text encoder: a clear message too
    with pytest.raises(ModelMissingError, match="text encoder"):
        build_engine(Look.from_doc(look_doc(model={"base": "sd15"}, controls=[])), cfg)


def test_propagation_flickers_less_than_independent_frames(tiny):
    frames = translating(9, 32, 32, dx=1, seed=5)
    ind = Look.from_doc(look_doc(controls=[], seed_mode="frame", model={"strength": 0.8}))
    prop = Look.from_doc(look_doc(controls=[], seed_mode="frame", model={"strength": 0.8},
                                  cadence={"mode": "propagate", "every": 4, "init_blend": 0.3, "color_match": True}))
    a = stylize_frames(frames, ind, engine=tiny_engine(ind, tiny))
    b = stylize_frames(frames, prop, engine=tiny_engine(prop, tiny))
    fa = flicker(dict(enumerate(a)), dict(enumerate(frames)), [[0, 8]])
    fb = flicker(dict(enumerate(b)), dict(enumerate(frames)), [[0, 8]])
    assert fb["mean"] < 0.7 * fa["mean"], (fa, fb)


def test_api_rejects_bad_frames(tiny):
    look = Look.from_doc(look_doc(controls=[]))
    with pytest.raises(StylizeError, match="uint8"):
        stylize_frames([np.zeros((32, 32, 3), np.float32)], look, engine=tiny_engine(look, tiny))
    named = Look.from_doc(look_doc(controls=[{"kind": "depth", "annotator": "/nonexistent/annotators"}]))
    with pytest.raises(ModelMissingError, match="no depth annotator weights at /nonexistent/annotators"):
        stylize_frames([np.zeros((32, 32, 3), np.uint8)], named, engine=tiny_engine(named, tiny))


def test_real_text_encoder_and_loading_everything_from_local_folders(tmp_path, tiny):
    """The user path: a diffusers folder with text encoder, a ControlNet folder and a LoRA file
    under models_dir, named by a look; prompt embeddings come from the real encoder (cached)."""
    from machinima.config import load_config
    from stylize.engines import DiffusionEngine, build_engine
    from stylize.tiny import tiny_text_encoder

    te, tok = tiny_text_encoder(tmp_path / "tok")
    doc = look_doc(controls=[{"kind": "canny", "model": "controlnets/canny"}], model={"base": "sd15", "guidance": 2.0})
    look = Look.from_doc(doc)
    built = DiffusionEngine.from_components(look, unet=tiny["unet"], vae=tiny["vae"], controlnets=tiny["controlnets"][:1], text_encoder=te, tokenizer=tok)
    built.pipe.save_pretrained(tmp_path / "models" / "sd15")
    tiny["controlnets"][0].save_pretrained(tmp_path / "models" / "controlnets" / "canny")
    eng = build_engine(look, load_config(tmp_path, env={}))
    d = eng.describe()
    assert d["pipeline"] == "StableDiffusionControlNetImg2ImgPipeline" and set(d["models"]) == {"base", "controlnet_canny"}
    assert len(d["models"]["base"]["fingerprint"]) == 16
    frames = translating(2, 32, 32)
    a = stylize_frames(frames, look, engine=eng)
    assert len(eng._cache) == 1  # one prompt, encoded once for both frames
    b = stylize_frames(frames, Look.from_doc({**doc, "prompt": "a quiet river"}), engine=eng)
    assert not np.array_equal(a[0], b[0])  # the text encoder's prompt reaches the UNet
    from diffusers import AutoencoderTiny

    AutoencoderTiny(encoder_block_out_channels=(16, 16), decoder_block_out_channels=(16, 16), num_encoder_blocks=(1, 1),
                    num_decoder_blocks=(1, 1), latent_channels=4).save_pretrained(tmp_path / "models" / "taesd")
    fast = Look.from_doc({**doc, "model": {**doc["model"], "tiny_vae": "taesd"}})
    eng = build_engine(fast, load_config(tmp_path, env={}))
    assert type(eng.pipe.vae).__name__ == "AutoencoderTiny" and "tiny_vae" in eng.describe()["models"]
    assert stylize_frames(frames, fast, engine=eng)[0].shape == (32, 32, 3)
    bf = DiffusionEngine.from_components(look, unet=tiny["unet"], vae=tiny["vae"], controlnets=tiny["controlnets"][:1], text_encoder=te,
                                         tokenizer=tok, runtime={"dtype": "bf16", "batch": 2, "device": "cpu"})
    out = stylize_frames(frames, look, engine=bf)
    assert bf.describe()["dtype"] == "bfloat16" and out[0].dtype == np.uint8 and out[0].shape == (32, 32, 3)
    tiny["unet"].to(torch.float32)
    tiny["vae"].to(torch.float32)
    for cn in tiny["controlnets"]:
        cn.to(torch.float32)


@pytest.mark.parametrize("mode,controls", [("img2img", [{"kind": "canny"}]), ("txt2img", [])])
def test_sdxl_family_pipelines(mode, controls, tiny):  # tiny: one torch thread
    from stylize.tiny import tiny_sdxl_components

    look = Look.from_doc(look_doc(model={"family": "sdxl", "mode": mode, "steps": 2}, controls=controls))
    eng = tiny_engine(look, tiny_sdxl_components(len(controls)))
    out = stylize_frames(translating(2, 32, 32), look, engine=eng)
    assert eng.describe()["pipeline"].startswith("StableDiffusionXL") and out[1].shape == (32, 32, 3)


def test_odd_frame_sizes_come_back_at_their_size(tiny):
    look = Look.from_doc(look_doc(controls=[{"kind": "canny"}], model={"steps": 2}))
    frames = [np.ascontiguousarray(f[:, :30]) for f in translating(2, 38, 40)]
    out = stylize_frames(frames, look, engine=tiny_engine(look, tiny))
    assert out[0].shape == (38, 30, 3)
    sized = Look.from_doc(look_doc(controls=[{"kind": "canny"}], model={"steps": 2}, runtime={"width": 16, "height": 16}))
    assert stylize_frames(frames, sized, engine=tiny_engine(sized, tiny))[1].shape == (38, 30, 3)


def test_cross_frame_attention_to_the_shots_first_keyframe(tiny, clip):
    plain = Look.from_doc(look_doc(model={"guidance": 2.0}))
    cf = Look.from_doc(look_doc(model={"guidance": 2.0}, cadence={"cross_frame": True}))
    a, _ = run(plain, tiny, clip)
    b, eng = run(cf, tiny, clip, runtime={"dtype": "fp32", "batch": 2, "device": "cpu"})
    c, _ = run(cf, tiny, clip, runtime={"dtype": "fp32", "batch": 2, "device": "cpu"})
    assert eng.describe()["cross_frame"] is True
    assert np.abs(a[0].astype(int) - b[0].astype(int)).max() <= 3  # the anchor attends to itself: unchanged
    assert all(np.array_equal(x, y) for x, y in zip(b, c))
    from diffusers.models.attention_processor import Attention, AttnProcessor2_0

    tiny["unet"].set_attn_processor(AttnProcessor2_0())
    # the processor itself: the anchor is unchanged, the other frames now attend to it
    from stylize.engines import AnchorAttnProcessor

    torch.manual_seed(0)
    attn = Attention(query_dim=16, heads=2, dim_head=8)
    x = torch.randn(2, 10, 16)  # [anchor, frame]
    plain_out = AttnProcessor2_0()(attn, x)
    cf_out = AnchorAttnProcessor(1)(attn, x)
    assert torch.allclose(cf_out[0], plain_out[0], atol=1e-5)
    assert (cf_out[1] - plain_out[1]).abs().mean() > 1e-2
    same = torch.cat([x[:1], x[:1]])
    assert torch.allclose(AnchorAttnProcessor(1)(attn, same)[1], plain_out[0], atol=1e-5)
    cfg = torch.cat([x, x])  # [neg anchor, neg frame, pos anchor, pos frame]: each half has its own anchor
    assert torch.allclose(AnchorAttnProcessor(2)(attn, cfg)[2], plain_out[0], atol=1e-5)


def test_compile_covers_unet_controlnet_and_both_vae_halves():
    """``compile = true`` compiles what a frame spends its time in: UNet, ControlNet and the
    VAE's encoder and decoder (img2img encodes every frame). Set up only: nothing runs here."""
    from torch._dynamo.eval_frame import OptimizedModule

    from stylize.tiny import tiny_components

    look = Look.from_doc(look_doc(runtime={"compile": True}))
    eng = tiny_engine(look, tiny_components(1), runtime={"dtype": "fp32", "batch": 1, "device": "cpu", "compile": True})
    assert isinstance(eng.pipe.unet, OptimizedModule) and isinstance(eng.pipe.controlnet, OptimizedModule)
    assert eng.pipe.vae.encoder._compiled_call_impl is not None and eng.pipe.vae.decoder._compiled_call_impl is not None

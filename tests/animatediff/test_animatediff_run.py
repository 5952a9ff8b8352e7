"""AnimateDiff video-to-video in sliding windows: all frames, no seams, determinism, resume,
ControlNet variant, and the clear errors (missing adapter, LoRA, bad settings)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from machinima.imageseq import find_frame, list_frames

from stylize.animatediff import (AnimateDiffEngine, animate_take, load_motion_adapter, parse_animate_look,
                                 plan_segments, tiny_engine)
from stylize.errors import LookError, ModelMissingError

from animatediff_helpers import look_doc, make_take, translating, write_tiny_models


def _run(comps, frames, seed=1, **ad):
    look, motion = parse_animate_look(look_doc(animatediff=ad))
    eng = tiny_engine(look, motion, comps)
    return np.stack(eng.video(frames, [], prompts=[look.prompt_for(0)] * len(frames), seed=seed)).astype(np.float64)


def test_long_take_in_windows_has_every_frame_and_no_seams(motion_comps):
    frames = translating(24)
    ref = _run(motion_comps, frames, context_length=24, context_overlap=0)   # one window: no borders at all
    blended = _run(motion_comps, frames, context_length=8, context_overlap=4)
    hard = _run(motion_comps, frames, context_length=8, context_overlap=0, context_shift=False)  # hard cuts at 8, 16
    assert blended.shape == (24, 32, 32, 3)

    def seam_ratio(out, borders):
        """Mean jump at window borders / mean jump inside windows, of the deviation from the
        one-window reference (same noise, so the noise floor cancels)."""
        jump = np.abs(np.diff(out - ref, axis=0)).mean(axis=(1, 2, 3))
        inside = [i for i in range(len(jump)) if i not in borders]
        return jump[borders].mean() / jump[inside].mean()

    hard_ratio = seam_ratio(hard, [7, 15])
    blended_ratio = seam_ratio(blended, [3, 7, 11, 15, 19])
    assert hard_ratio > 1.08, f"the measure must see the hard cuts ({hard_ratio:.3f})"
    assert blended_ratio < 1.04, f"seams at window borders: {blended_ratio:.3f} (hard cuts: {hard_ratio:.3f})"
    # and in the pictures themselves: frame-to-frame change at borders is no larger than inside
    d = np.abs(np.diff(blended, axis=0)).mean(axis=(1, 2, 3))
    border = [3, 7, 11, 15, 19]
    inside = [i for i in range(23) if i not in border]
    assert d[border].max() <= d[inside].max() * 1.05 and d[border].mean() <= d[inside].mean() * 1.05


def test_same_seed_same_frames_other_seed_other_frames(motion_comps):
    frames = translating(12)
    a = _run(motion_comps, frames, seed=3)
    b = _run(motion_comps, frames, seed=3)
    c = _run(motion_comps, frames, seed=4)
    assert np.array_equal(a, b)
    assert np.abs(a - c).mean() > 1.0


def test_take_runs_resumes_and_redoes_on_change(motion_comps, tmp_path):
    take = make_take(tmp_path, n=12)
    look, motion = parse_animate_look(look_doc())
    eng = tiny_engine(look, motion, motion_comps)
    res = animate_take(take, look, motion, engine=eng, progress=False)
    assert sorted(res.report.done) == list(range(12)) and res.video is not None and res.video.stat().st_size > 0
    params = json.loads((res.out_dir / "params.json").read_text())
    assert params["step"] == "animatediff" and params["params"]["animatediff"]["context_overlap"] == 4
    from machinima.imageseq import read_image

    first = read_image(find_frame(res.out_dir / "frames", 5))  # pixels: each signature is new, the picture is not
    again = animate_take(take, look, motion, engine=eng, progress=False)
    assert again.report.done == [] and sorted(again.report.skipped) == list(range(12))
    # a lost frame: its segment is recomputed, the other frames are kept, the redone frame is identical
    find_frame(res.out_dir / "frames", 5).unlink()
    part = animate_take(take, look, motion, engine=eng, progress=False)
    assert part.report.done == [5] and np.array_equal(read_image(find_frame(res.out_dir / "frames", 5)), first)
    look.prompt = "a charcoal drawing"
    changed = animate_take(take, look, motion, engine=eng, progress=False)
    assert sorted(changed.report.done) == list(range(12))


def test_shots_are_separate_segments():
    look, _ = parse_animate_look(look_doc(shots=[{"name": "a", "frames": [0, 9], "seed": 3}, {"name": "b", "frames": [10, 19], "strength": 0.4}]))
    segs = plan_segments(look, list(range(0, 24)))
    assert [(s.frames[0], s.frames[-1], s.shot) for s in segs] == [(0, 9, "a"), (10, 19, "b"), (20, 23, None)]
    assert segs[0].seed == 3 and segs[1].strength == 0.4 and segs[2].seed == 7
    assert [(s.frames[0], s.frames[-1]) for s in plan_segments(look, [0, 1, 2, 5, 6])] == [(0, 2), (5, 6)]
    # passes every 2nd frame (`blender render --step 2`): frames 2 apart are one video, not one-frame segments
    assert [(s.frames[0], s.frames[-1]) for s in plan_segments(look, [20, 22, 26, 28], 2)] == [(20, 22), (26, 28)]
    assert [len(s.frames) for s in plan_segments(look, list(range(0, 10, 2)), 2)] == [5]


def test_controlnet_variant_runs_and_the_control_matters(motion_comps):
    from stylize.controls import canny_control

    frames = translating(10)
    doc = look_doc(controls=[{"kind": "canny", "model": "cn/canny", "weight": 1.0}], model={"steps": 2, "strength": 1.0})
    look, motion = parse_animate_look(doc)
    eng = tiny_engine(look, motion, motion_comps)
    assert type(eng.pipe).__name__ == "AnimateDiffVideoToVideoControlNetPipeline"
    edges = [canny_control(f) for f in frames]
    out = eng.video(frames, [edges], prompts=[("a", "b")] * 10, seed=1)
    blank = eng.video(frames, [[np.zeros_like(e) for e in edges]], prompts=[("a", "b")] * 10, seed=1)
    assert len(out) == 10 and not np.array_equal(np.stack(out), np.stack(blank))  # the edges reach the UNet


def _config(tmp_path):
    from machinima.config import load_config

    (tmp_path / "models").mkdir(exist_ok=True)
    return load_config(tmp_path, overrides={"models_dir": str(tmp_path / "models")}, env={})


def test_missing_motion_adapter_says_what_to_put_where(tmp_path):
    look, motion = parse_animate_look(look_doc())
    with pytest.raises(ModelMissingError) as exc:
        AnimateDiffEngine.from_look(look, motion, _config(tmp_path))
    text = str(exc.value) + " " + (exc.value.hint or "")
    assert "motion adapter" in text and str(tmp_path / "models" / "motion" / "tiny") in text and "MotionAdapter folder" in text
    assert "`machinima models check`" in text and "docs/models.md" in text  # the trail goes on (issue 26)


def test_motion_adapter_folder_loads_and_single_file_needs_its_config(motion_comps, tmp_path):
    ad = motion_comps["motion_adapter"]
    ad.save_pretrained(tmp_path / "ad")
    loaded = load_motion_adapter(tmp_path / "ad")
    assert loaded.config.motion_max_seq_length == ad.config.motion_max_seq_length
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelMissingError, match="no config.json"):
        load_motion_adapter(tmp_path / "empty")
    (tmp_path / "mm.safetensors").write_bytes(b"x")
    with pytest.raises(ModelMissingError, match="needs its config"):
        load_motion_adapter(tmp_path / "mm.safetensors")


def test_missing_motion_lora_is_named(motion_comps, tmp_path):
    look, motion = parse_animate_look(look_doc(animatediff={"motion_loras": [{"path": "zoom-in.safetensors", "weight": 0.8}]}))
    with pytest.raises(ModelMissingError, match="motion LoRA"):
        tiny_engine(look, motion, motion_comps, lora_dir=tmp_path)


@pytest.mark.parametrize("doc,match", [
    ({"engine": "diffusion", "model": {"base": "x"}}, "animatediff table"),
    (look_doc(animatediff={"context_overlap": 8}), "overlap"),
    (look_doc(animatediff={"fuse": "max"}), "fuse"),
    (look_doc(animatediff={"windw": 3}), "unknown setting 'windw'"),
    (look_doc(animatediff={"context_length": "16"}), "animatediff.context_length must be int"),
    (look_doc(model={"mode": "txt2img"}), "video-to-video"),
    (look_doc(model={"family": "sdxl"}), "SD 1.5"),
])
def test_bad_looks_are_refused_by_name(doc, match):
    with pytest.raises(LookError, match=match):
        parse_animate_look(doc)


def test_window_longer_than_the_adapter_is_refused(threads):
    from stylize.animatediff import tiny_motion_components

    comps = tiny_motion_components(0, max_frames=8)
    look, motion = parse_animate_look(look_doc(animatediff={"context_length": 12, "context_overlap": 4}))
    eng = tiny_engine(look, motion, comps)
    with pytest.raises(LookError, match="longer than this motion adapter supports"):
        eng.video(translating(16), [], prompts=[("a", "b")] * 16, seed=0)


def test_cli_missing_motion_adapter_is_one_clear_line(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    take = make_take(tmp_path / "takes", n=4)
    (tmp_path / "models").mkdir()
    env = {**os.environ, "MACHINIMA_PROJECT": str(tmp_path), "MACHINIMA_MODELS_DIR": str(tmp_path / "models")}
    exe = Path(sys.executable).parent / "machinima"
    r = subprocess.run([str(exe), "animate", str(take), "--look", "animatediff-sd15"], capture_output=True, text=True, env=env, timeout=120)
    out = r.stdout + r.stderr
    assert r.returncode != 0 and "Traceback" not in out
    assert "motion adapter" in out and "animatediff-v1-5-3" in out


def _motion_lora_file(comps, folder):
    """A LoRA on the motion modules' attention (as motion LoRAs are), saved in the diffusers format."""
    from diffusers import AnimateDiffVideoToVideoPipeline
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig, get_peft_model_state_dict

    unet = comps["unet"]
    unet.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_v"], init_lora_weights=False), adapter_name="mk")
    sd = {k: v for k, v in get_peft_model_state_dict(unet, adapter_name="mk").items() if "motion_modules" in k}
    unet.delete_adapters("mk")
    AnimateDiffVideoToVideoPipeline.save_lora_weights(folder, unet_lora_layers=convert_state_dict_to_diffusers(sd), weight_name="zoom.safetensors")
    return len(sd)


def test_motion_lora_from_a_local_file_changes_the_motion(threads, tmp_path):
    from stylize.animatediff import tiny_motion_components

    plain, with_lora = tiny_motion_components(0), tiny_motion_components(0)  # same seed: same weights
    assert _motion_lora_file(tiny_motion_components(0), tmp_path) > 0
    frames = translating(8)
    look, motion = parse_animate_look(look_doc(model={"steps": 2, "strength": 1.0}))
    base = tiny_engine(look, motion, plain).video(frames, [], prompts=[("a", "b")] * 8, seed=1)
    look, motion = parse_animate_look(look_doc(model={"steps": 2, "strength": 1.0},
                                               animatediff={"motion_loras": [{"path": "zoom.safetensors", "weight": 1.0}]}))
    eng = tiny_engine(look, motion, with_lora, lora_dir=tmp_path)
    assert eng.models["motion_lora0"]["weight"] == 1.0
    moved = eng.video(frames, [], prompts=[("a", "b")] * 8, seed=1)
    assert not np.array_equal(np.stack(base), np.stack(moved))


def test_single_file_motion_adapter_with_its_config_folder(motion_comps, tmp_path):
    from safetensors.torch import save_file

    ad = motion_comps["motion_adapter"]
    ad.save_config(tmp_path / "cfg")
    save_file({k: v.contiguous() for k, v in ad.state_dict().items()}, str(tmp_path / "mm_tiny.safetensors"))
    loaded = load_motion_adapter(tmp_path / "mm_tiny.safetensors", tmp_path / "cfg")
    name, p = next((n, p) for n, p in ad.named_parameters() if "proj_out" in n)
    assert np.allclose(dict(loaded.named_parameters())[name].detach().numpy(), p.detach().numpy())


def test_one_command_with_the_shipped_look_loads_local_models_and_makes_the_take(threads, tmp_path, monkeypatch):
    from stylize.animate_cli import animate

    take = make_take(tmp_path / "takes", n=12, depth=True)
    write_tiny_models(tmp_path / "models")
    monkeypatch.setenv("MACHINIMA_PROJECT", str(tmp_path))
    monkeypatch.setenv("MACHINIMA_MODELS_DIR", str(tmp_path / "models"))
    kw = dict(look="animatediff-sd15", motion_adapter=None, frames=None, context=8, overlap=4, looped=None,
              input_folder=None, step_id="ad", root=None, no_video=False, ray=None, gpus=0)
    animate(str(take), **kw)
    out = take / "post" / "ad"
    assert len(list_frames(out / "frames")) == 12 and (out / "ad.mp4").stat().st_size > 0
    from machinima import provenance as pv

    rep = pv.verify_file(out / "ad.mp4")  # the step's movie is signed like its frames (issue 24)
    assert rep.kind == "animatediff" and rep.manifest == "trusted" and not rep.bad, rep.to_doc()  # frames under 128 px: unwatermarked
    params = json.loads((out / "params.json").read_text())
    models = params["params"]["engine"]["models"]
    assert {"motion_adapter", "base", "controlnet_depth"} <= set(models)
    assert params["params"]["engine"]["pipeline"] == "AnimateDiffVideoToVideoControlNetPipeline"
    assert params["inputs"]["segments"][0]["windows_per_step"] >= 2


@pytest.mark.gpu
def test_fp16_on_cuda_with_offload_off(motion_comps):
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    from stylize.animatediff import tiny_motion_components

    comps = tiny_motion_components(0)
    look, motion = parse_animate_look(look_doc(runtime={"memory": "12gb"}))
    eng = tiny_engine(look, motion, comps, runtime={"device": "cuda", "dtype": "fp16"})
    out = eng.video(translating(20), [], prompts=[("a", "b")] * 20, seed=1)
    assert eng.dtype == torch.float16 and len(out) == 20 and all(np.isfinite(o).all() for o in out)


def test_windows_batched_per_call_give_the_same_frames(motion_comps):
    frames = translating(12)
    one = _run(motion_comps, frames, window_batch=1)
    three = _run(motion_comps, frames, window_batch=3)
    assert np.abs(one - three).max() <= 1.0  # float summation order only


def test_looped_take_runs_every_frame_and_differs_from_open(motion_comps):
    frames = translating(12)
    looped = _run(motion_comps, frames, looped=True)
    open_ = _run(motion_comps, frames)
    assert looped.shape == open_.shape == (12, 32, 32, 3) and not np.array_equal(looped, open_)


def test_ctrl_c_stops_within_a_segment_and_the_rerun_finishes(motion_comps, tmp_path):
    import os
    import signal

    from machinima.poststep import Interrupted

    take = make_take(tmp_path, n=12)
    look, motion = parse_animate_look(look_doc(shots=[{"name": "a", "frames": [0, 5]}, {"name": "b", "frames": [6, 11]}]))
    eng = tiny_engine(look, motion, motion_comps)
    real, calls = eng.video, []

    def video(*a, **kw):
        calls.append(1)
        if len(calls) == 2:  # Ctrl-C while the second shot is being made
            os.kill(os.getpid(), signal.SIGINT)
        return real(*a, **kw)

    eng.video = video
    with pytest.raises(Interrupted):
        animate_take(take, look, motion, engine=eng, progress=False, video=False)
    out = take / "post" / "animatediff-look" / "frames"
    assert sorted(list_frames(out)) == list(range(6))
    res = animate_take(take, look, motion, engine=eng, progress=False)
    assert sorted(res.report.skipped) == list(range(6)) and sorted(res.report.done) == list(range(6, 12))
    assert res.video is not None


def test_passes_every_2nd_frame_make_one_video_and_a_held_movie(motion_comps, tmp_path):
    """`blender render --step 2` passes: the frames there are, 2 apart, are one AnimateDiff video
    (they were one-frame segments), and the movie holds each frame to keep the take's timing."""
    import av

    from machinima.passes import PassSet

    take = make_take(tmp_path, n=12)
    ps = PassSet.open(take / "passes")
    for name in ps.meta["passes"]:
        for f, p in ps.frame_files(name).items():
            if f % 2:
                p.unlink()
    ps.meta["frames"] = list(range(0, 12, 2))
    ps.save()
    look, motion = parse_animate_look(look_doc())
    res = animate_take(take, look, motion, engine=tiny_engine(look, motion, motion_comps), progress=False)
    assert sorted(res.report.done) == list(range(0, 12, 2)) and len(res.segments) == 1
    assert res.frames_note.startswith("every 2nd frame (0..10, 6 frames)")
    with av.open(str(res.video)) as c:
        assert sum(1 for _ in c.decode(video=0)) == 11

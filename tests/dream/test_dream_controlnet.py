"""Dreams with ControlNet diffusion looks on tiny random models: the scheduled strength, prompt,
seed and CFG reach the real pipeline call on the frames the schedule says (a spy that records
and forwards, the pipeline itself runs), controls come from the take's passes or the fed-back
frame, and 3D warps take their depth from a local depth model, the take, or a plane (warned)."""

import json

import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner

from machinima.imageseq import find_frame, list_frames, read_image, write_image
from stylize.dream import DreamRun, parse_dream
from stylize.dream_cli import dream
from stylize.dream_warp import intrinsics_from_fov, rotation_matrix, warp_3d
from stylize.errors import ControlError
from stylize.look import Look

LOOK = {"name": "cn", "engine": "diffusion", "prompt": "unused by dreams", "seed": 1,
        "model": {"base": "sd15", "steps": 4, "strength": 0.6, "guidance": 1.0},
        "controls": [{"kind": "depth", "model": "controlnets/depth"}, {"kind": "canny", "model": "controlnets/canny"}]}


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A project folder whose models_dir holds a tiny SD 1.5-shaped pipeline (with a text
    encoder), two ControlNets and a tiny depth model, as a user would put real ones there."""
    from stylize.engines import DiffusionEngine
    from stylize.tiny import tiny_components, tiny_depth_model, tiny_text_encoder

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("project")
    comps = tiny_components(2)
    te, tok = tiny_text_encoder(root / "tok")
    base = DiffusionEngine.from_components(Look.from_doc({**LOOK, "controls": []}), unet=comps["unet"], vae=comps["vae"],
                                           text_encoder=te, tokenizer=tok)
    base.pipe.save_pretrained(root / "models" / "sd15")  # the base model folder; ControlNets in folders of their own
    comps["controlnets"][0].save_pretrained(root / "models" / "controlnets" / "depth")
    comps["controlnets"][1].save_pretrained(root / "models" / "controlnets" / "canny")
    tiny_depth_model(root / "models" / "depth" / "tiny-da")
    (root / "cn.toml").write_text(json_to_toml(LOOK))
    yield root, comps
    torch.set_num_threads(threads)


def json_to_toml(doc):
    import tomli_w

    return tomli_w.dumps(doc)


def _picture(h=48, w=64, seed=3):
    import cv2

    rng = np.random.default_rng(seed)
    return cv2.resize(rng.integers(0, 255, (h // 8, w // 8, 3), dtype=np.uint8), (w, h), interpolation=cv2.INTER_CUBIC)


class Spy:
    """Records each call's keyword arguments, then calls the real pipeline with them."""

    def __init__(self, pipe):
        self.__dict__.update(_pipe=pipe, calls=[])

    def __call__(self, **kw):
        self.calls.append(kw)
        return self._pipe(**kw)

    def __getattr__(self, name):
        return getattr(self._pipe, name)

    def __setattr__(self, name, value):
        setattr(self._pipe, name, value)


def test_scheduled_strength_prompt_seed_and_cfg_reach_the_pipeline_on_their_frames(project):
    from stylize.engines import hash_embedder
    from stylize.tiny import tiny_engine

    _, comps = project
    d = parse_dream({"frames": 7, "cadence": 2, "interpolation": "step", "seed_behavior": "schedule", "color_coherence": "none",
                     "schedules": {"strength": "0:(0.5), 3:(0.75)", "seed": "0:(11), 4:(20), 6:(3)", "cfg": "0:(1.0), 4:(3.5)",
                                   "zoom": "0:(1.02)"},
                     "prompts": {"0": "a forest", "4": "a flooded city"}})
    look = Look.from_doc(LOOK)
    eng = tiny_engine(look, comps)
    eng.pipe = spy = Spy(eng.pipe)
    outs: dict[int, np.ndarray] = {}
    run = DreamRun(d, eng, _picture(), previous=lambda f: outs[f], diffused=outs.get)
    run.controls = lambda f, img: {"depth": np.full_like(img, 128), "canny": img}
    for f in range(d.frames):
        outs[f] = run.frame(f)
    embed = hash_embedder(comps["cross_dim"])
    expect = {0: (0.5, 11, 1.0, "a forest"), 2: (0.5, 11, 1.0, "a forest"), 4: (0.75, 20, 3.5, "a flooded city"),
              6: (0.75, 3, 3.5, "a flooded city")}
    assert len(spy.calls) == len(expect)  # cadence 2: frames 1, 3, 5 are warps, never diffused
    for (f, (strength, seed, cfg, prompt)), kw in zip(expect.items(), spy.calls):
        assert kw["strength"] == strength, f
        assert kw["generator"][0].initial_seed() == seed, f
        assert kw["guidance_scale"] == cfg, f
        assert torch.equal(kw["prompt_embeds"], embed(prompt)), f
        assert kw["control_image"][0].shape[-2:] == (48, 64) and len(kw["control_image"]) == 2, f
    assert all(o.shape == (48, 64, 3) and o.dtype == np.uint8 for o in outs.values())
    assert not np.array_equal(outs[4], outs[3])  # a diffused frame is the pipeline's, not the warp


def _cli(args, env):
    app = typer.Typer()
    app.command()(dream)
    return CliRunner().invoke(app, args, env=env)


def _take(root, n=3, size=(48, 64), pose=False):
    from machinima.passes import PassSet
    from machinima.take import Take

    take = Take.create(root, production="p", scene="1", shot="1", fps=24)
    take.finalize()
    ps = PassSet.create(take.passes_dir(), width=size[1], height=size[0], fps="24")
    for f in range(n):
        ps.write("rgb", f, _picture(*size, seed=f))
        ps.write("depth", f, np.linspace(2.0, 8.0, size[0] * size[1], dtype=np.float32).reshape(size))
        if pose:
            ps.write("pose", f, np.zeros((*size, 3), np.uint8))
    ps.save()
    return take


def test_a_controlnet_look_dreams_from_a_take_and_from_a_picture(tmp_path, project):
    root, _ = project
    env = {"MACHINIMA_MODELS_DIR": str(root / "models")}
    (tmp_path / "cn.toml").write_text((root / "cn.toml").read_text())
    (tmp_path / "d.toml").write_text('look = "cn.toml"\nframes = 3\ncadence = 1\n[schedules]\nstrength = "0:(0.6)"\n')
    take = _take(tmp_path / "takes")
    r = _cli([str(take.path), "--dream", str(tmp_path / "d.toml"), "--no-mp4"], env)
    assert r.exit_code == 0, (r.output, r.exception)
    out = take.post_dir("dream-d")
    assert sorted(list_frames(out / "frames")) == [0, 1, 2]
    params = json.loads((out / "params.json").read_text())["params"]
    assert params["controls"][0] == {"kind": "depth", "from": "depth pass"}  # the take's exact depth
    assert params["controls"][1]["kind"] == "canny" and params["controls"][1]["from"] == "picture"
    assert params["engine"]["pipeline"] == "StableDiffusionControlNetImg2ImgPipeline"
    # from a picture: depth has no pass, so the annotator's fallback, said so
    write_image(tmp_path / "still.png", _picture())
    r = _cli([str(tmp_path / "still.png"), "--dream", str(tmp_path / "d.toml"), "--no-mp4"], env)
    assert r.exit_code == 0, (r.output, r.exception)
    assert "warning: depth: uses the flat plane (no depth information) fallback" in " ".join(r.output.split())
    # a pose ControlNet needs a take's pose pass: one clear error before any frame
    doc = {**LOOK, "controls": [{"kind": "pose", "model": "controlnets/depth"}]}
    (tmp_path / "cn.toml").write_text(json_to_toml(doc))
    r = _cli([str(tmp_path / "still.png"), "--dream", str(tmp_path / "d.toml"), "--step-id", "pose"], env)
    assert isinstance(r.exception, ControlError) and "needs a take's pose pass" in str(r.exception)
    assert not (tmp_path / "pose" / "frames").exists()


def test_3d_depth_from_a_local_depth_model_else_the_take_else_a_warned_plane(tmp_path, project):
    from stylize.depth import DepthModel

    root, _ = project
    env = {"MACHINIMA_MODELS_DIR": str(root / "models")}
    write_image(tmp_path / "still.png", _picture())
    base = 'look = "painted"\nframes = 2\nmode = "3d"\ncadence = 2\ncolor_coherence = "none"\nfov = 40\ndepth = 5.0\n' \
           '[schedules]\nrotation_3d_y = "0:(2.0)"\ntranslation_z = "0:(0.2)"\n'
    (tmp_path / "m.toml").write_text(base.replace("depth = 5.0\n", 'depth = 5.0\ndepth_model = "depth/tiny-da"\n'))
    r = _cli([str(tmp_path / "still.png"), "--dream", str(tmp_path / "m.toml"), "--no-mp4"], env)
    assert r.exit_code == 0, (r.output, r.exception)
    out = tmp_path / "dream-m"
    f0, f1 = read_image(find_frame(out / "frames", 0)), read_image(find_frame(out / "frames", 1))
    depth = DepthModel(root / "models" / "depth" / "tiny-da").metres(f0, 5.0)
    expect = warp_3d(f0, depth, intrinsics_from_fov(64, 48, 40), rotation_matrix(0, 2.0, 0), np.array([0, 0, 0.2]))
    assert np.abs(f1.astype(int) - expect.astype(int)).max() <= 1  # frame 1 = frame 0 moved over the model's depth
    params = json.loads((out / "params.json").read_text())["params"]
    assert params["depth"]["from"] == "depth model" and params["depth"]["model"] == "DepthAnythingForDepthEstimation"
    plane = warp_3d(f0, np.full((48, 64), 5.0, np.float32), intrinsics_from_fov(64, 48, 40), rotation_matrix(0, 2.0, 0), np.array([0, 0, 0.2]))
    assert np.abs(f1.astype(int) - plane.astype(int)).mean() > 0.5  # not the plane
    (tmp_path / "p.toml").write_text(base)
    r = _cli([str(tmp_path / "still.png"), "--dream", str(tmp_path / "p.toml"), "--no-mp4"], env)
    assert r.exit_code == 0, (r.output, r.exception)
    assert "warning: 3D warps use a plane at 5 m" in " ".join(r.output.split())
    take = _take(tmp_path / "takes", n=2)
    r = _cli([str(take.path), "--dream", str(tmp_path / "p.toml"), "--no-mp4"], env)
    assert r.exit_code == 0 and "plane" not in r.output
    assert json.loads((take.post_dir("dream-p") / "params.json").read_text())["params"]["depth"] == {"from": "depth pass"}


def test_schedule_values_the_loop_reads_are_the_schedule_at_each_frame():
    d = parse_dream({"frames": 40, "schedules": {"zoom": "0:(1.0), 12:(1.015 + 0.005*sin(t/5))", "cfg": "0:(7), 20:(4)"}})
    for f in (0, 7, 12, 25, 39):
        assert d.value("zoom", f) == d.schedules["zoom"].at(f) and d.cfg(f) == d.schedules["cfg"].at(f)
    d.frames = 10  # --frames shortens the run: the table follows, frames past it are still answered
    assert d.value("zoom", 30) == d.schedules["zoom"].at(30) and d.cfg(5) == d.schedules["cfg"].at(5)
    assert parse_dream({"frames": 4}).cfg(2) is None  # no cfg schedule: the look's guidance
    with pytest.raises(Exception, match="cfg"):
        parse_dream({"frames": 4, "schedules": {"cfg": "0:(2 - t)"}})


def test_dream_frames_read_the_latest_rendered_take_frame():
    from stylize.dream_cli import take_frame

    every_2nd = [10, 12, 14]  # a take whose passes hold every 2nd frame, from frame 10
    assert [take_frame(every_2nd, f) for f in range(7)] == [10, 10, 12, 12, 14, 14, 14]

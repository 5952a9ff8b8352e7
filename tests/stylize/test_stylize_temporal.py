"""Temporal truth: a real photo moved along a known camera path, its exact motion as the render's
motion pass, and the warp error of the stylized frames under that motion (not under a flow we
estimated ourselves). Baselines in the same test: the input's own warp error (resampling) and
independent frames (cadence 1, no init)."""

import json

import numpy as np

from machinima.imageseq import find_frame
import pytest

from stylize import flow as F
from stylize.engines import ClassicalEngine
from stylize.errors import ControlError, LookError, ModelMissingError
from stylize.look import Look
from stylize.motion import PassMotion, RaftFlow, choose_motion, read_motion, write_motion
from stylize.pipeline import StylizePipeline
from stylize.sources import ArraySource
from stylize.truth import CameraPath, flow_between, motion_pass, moving_picture, temporal_error

from stylize_helpers import make_take, photo

N, SIZE = 9, (64, 64)


@pytest.fixture(scope="module")
def clip():
    return moving_picture(photo(), N, SIZE), motion_pass(N, SIZE)


def _interior(a):
    return a[16:-16, 16:-16]  # 8 frames move the picture ~13 px: what left the frame has no motion


def test_motion_pass_chains_and_inverts_to_the_exact_flow(clip):
    _, motion = clip
    m = PassMotion(lambda f: motion[f], list(range(N)))
    for t, k in ((5, 4), (7, 3), (2, 6), (0, 8), (8, 0)):
        err = np.abs(_interior(m.flow(t, k)) - _interior(flow_between(t, k, SIZE))).max()
        assert err < 0.01, (t, k, err)  # chained backward and inverted forward motion: exact
    assert np.array_equal(m.flow(4, 4), np.zeros((*SIZE, 2), np.float32))
    gappy = PassMotion(lambda f: motion[f], [0, 1, 2, 4])
    with pytest.raises(ControlError, match="no frame 3"):
        gappy.flow(4, 1)


def test_motion_pass_files_in_the_agreed_format(tmp_path):
    import OpenEXR

    m = flow_between(3, 2, (12, 16))
    write_motion(tmp_path / "a.exr", m)
    assert np.array_equal(read_motion(tmp_path / "a.exr"), m)
    # Blender-style channel names (a view layer's Vector.X/Y) read the same
    OpenEXR.File({"type": OpenEXR.scanlineimage}, {"ViewLayer.Vector.X": m[..., 0].copy(), "ViewLayer.Vector.Y": m[..., 1].copy()}).write(
        str(tmp_path / "b.exr"))
    assert np.array_equal(read_motion(tmp_path / "b.exr"), m)
    (tmp_path / "c.exr").write_bytes(b"not an exr")
    with pytest.raises(ControlError, match="not a readable EXR"):
        read_motion(tmp_path / "c.exr")


def test_warp_error_under_exact_motion_is_low_for_the_input_and_high_for_jitter(clip):
    frames, motion = clip
    # what the resampling of the input alone leaves: the floor of anything that follows the motion
    floor = temporal_error(frames, motion)
    assert 0 < floor < 4
    jitter = [np.roll(f, 2 * (i % 2), axis=1) for i, f in enumerate(frames)]  # 2 px back and forth
    assert temporal_error(jitter, motion) > 3 * floor
    still = [frames[0]] * N  # a picture that stays while the camera moves
    assert temporal_error(still, motion) > 3 * floor


def _run(look_doc, frames, motion, engine=None):
    look = Look.from_doc(look_doc)
    if engine is None:
        engine = ClassicalEngine(look)
        engine.batch = 1
    pipe = StylizePipeline(look, engine, ArraySource(frames, {"motion": motion}))
    return pipe(), pipe


def _classical(mode, init, every=4):
    return {"engine": "classical", "classical": {"sigma_s": 20.0},
            "cadence": {"mode": mode, "every": every, "init_blend": 0.3 if init else 0.0, "init_noise": init,
                        "color_match": False, "detect_cuts": False}}


def test_classical_temporal_truth_cadence_and_keyframe_init(clip):
    frames, motion = clip
    err = {}
    for mode in ("every", "propagate"):
        for init in (False, True):
            out, pipe = _run(_classical(mode, init), frames, motion)
            assert pipe.motion.describe()["method"] == "motion-pass"
            err[mode, init] = temporal_error(out, motion)
    floor = temporal_error(frames, motion)
    assert err["propagate", True] <= 1.2 * err["every", True], err
    assert err["every", True] < 0.85 * err["every", False], err  # init carries the painted pixels along (2.17 -> 1.54)
    assert all(e > floor * 0.3 for e in err.values())  # nothing beats the input's own resampling by magic


def test_tiny_diffusion_temporal_truth_cadence_and_keyframe_init(clip, tiny):
    from stylize.tiny import tiny_engine

    frames, motion = clip
    err = {}
    for mode in ("every", "propagate"):
        for init in (False, True):
            doc = {**_classical(mode, init), "engine": "diffusion", "prompt": "a cat", "seed": 5,
                   "model": {"base": "tiny", "steps": 4, "strength": 0.6, "guidance": 1.0}}
            look = Look.from_doc(doc)
            out, _ = _run(doc, frames, motion, tiny_engine(look, tiny))
            err[mode, init] = temporal_error(out, motion)
    assert err["propagate", True] <= 1.2 * err["every", True], err
    # keyframe init: the previous keyframe's noise carried along the motion (and its pixels blended
    # in); with init off every keyframe starts from noise fixed on the screen while the cat moves
    assert err["every", True] < 0.9 * err["every", False], err  # 34.6 -> 29.2 here


def test_carried_noise_is_a_pure_function_of_the_plan(clip, tiny):
    """A resumed run recomputes a keyframe's noise from the chain (flows only): the same array."""
    from stylize.tiny import tiny_engine

    frames, motion = clip
    look = Look.from_doc({**_classical("propagate", True), "engine": "diffusion", "seed": 5,
                          "model": {"base": "tiny", "steps": 4, "strength": 0.6, "guidance": 1.0}})
    eng = tiny_engine(look, tiny)
    a = StylizePipeline(look, eng, ArraySource(frames, {"motion": motion}))
    a()
    last = a.plan().keyframes[-1]
    b = StylizePipeline(look, eng, ArraySource(frames, {"motion": motion}))
    assert np.array_equal(a.noise_for(last), b.noise_for(last))
    fresh = eng.noise(look.seed, *SIZE)
    assert not np.array_equal(b.noise_for(last), fresh)  # carried, not the seed's own


def test_warp_noise_keeps_exact_samples_and_fills_what_entered_the_frame():
    rng = np.random.default_rng(0)
    noise = rng.standard_normal((4, 8, 8)).astype(np.float32)
    fresh = rng.standard_normal((4, 8, 8)).astype(np.float32)
    f = np.zeros((16, 16, 2), np.float32)
    f[..., 0] = -4.0  # frame t(x) = frame k(x - 4 px): two latent pixels to the right
    out = F.warp_noise(noise, f, fresh)
    assert np.array_equal(out[:, :, 2:], noise[:, :, :-2])  # the same draws, moved with the picture
    assert np.array_equal(out[:, :, :2], fresh[:, :, :2])  # what came into view: fresh noise


def test_flow_choice_is_recorded_in_params(tmp_path, clip):
    from machinima.imageseq import read_image
    from stylize.runner import run_source, stylize_take
    from stylize.sources import FolderSource, PassSource

    frames, motion = clip
    take = make_take(tmp_path / "takes", n=N, size=SIZE[0], frames=frames, motion=motion, pose=False, masks=())
    src = PassSource(take / "passes")
    assert src.has_motion() and np.allclose(src.motion(3), motion[3])
    look = Look.from_doc({**_classical("propagate", True), "name": "p"})
    res = stylize_take(take, look, progress=False, video=False)
    params = json.loads((res.out_dir / "params.json").read_text())
    assert params["params"]["flow"]["method"] == "motion-pass" and "flow: motion-pass" in params["notes"]
    out = [read_image(find_frame(res.out_dir / "frames", f)) for f in range(N)]
    assert temporal_error(out, motion) < 2 * temporal_error(frames, motion) + 1.0
    # DIS where the source has no motion pass, or when the look asks for it
    dis = Look.from_doc({**_classical("propagate", True), "name": "d", "cadence": {**_classical("propagate", True)["cadence"], "flow": "dis"}})
    r = run_source(src, dis, ClassicalEngine(dis), tmp_path / "dis", progress=False, video=False)
    assert json.loads((r.out_dir / "params.json").read_text())["params"]["flow"]["method"] == "dis"
    folder = FolderSource(take / "passes" / "rgb")
    assert choose_motion("auto", "", folder).describe()["method"] == "dis"
    with pytest.raises(ControlError, match="no motion pass"):
        choose_motion("motion", "", folder)
    with pytest.raises(LookError, match="needs cadence.raft"):
        Look.from_doc({"cadence": {"flow": "raft"}})


def test_raft_from_a_local_state_dict(tmp_path, tiny):
    """torchvision's RAFT architecture, weights from a file (random here: the plumbing, the
    convention of the answer and the params, not the quality of trained weights)."""
    import torch
    from torchvision.models.optical_flow import raft_small

    from machinima.config import load_config

    torch.manual_seed(0)
    (tmp_path / "models" / "flow").mkdir(parents=True)
    torch.save(raft_small(weights=None).state_dict(), tmp_path / "models" / "flow" / "raft_small.pth")
    cfg = load_config(tmp_path, env={})
    frames = moving_picture(photo(), 3, (40, 56))
    src = ArraySource(frames)
    m = choose_motion("auto", "flow/raft_small.pth", src, config=cfg)
    d = m.describe()
    assert d["method"] == "raft" and d["arch"] == "raft_small" and len(d["fingerprint"]) == 16
    f = m.flow(1, 0)
    assert f.shape == (40, 56, 2) and f.dtype == np.float32 and np.isfinite(f).all()
    with pytest.raises(ModelMissingError, match="not found"):
        choose_motion("raft", "flow/none.pth", src, config=cfg)
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "models" / "flow" / "bad.pth")
    with pytest.raises(ModelMissingError, match="not a torchvision RAFT state dict"):
        RaftFlow(tmp_path / "models" / "flow" / "bad.pth")

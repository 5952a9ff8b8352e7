"""Annotators: controlnet_aux's detectors from weights at a local path (random weights built here,
saved in the files controlnet_aux reads), a transformers depth model from a folder, and the
weight-free OpenCV fallbacks, each named as what it is."""

import json

import numpy as np
import pytest

from machinima.config import load_config
from stylize import controls as C
from stylize.annotators import build_annotator
from stylize.errors import ModelMissingError
from stylize.look import Look

from stylize_helpers import make_take, photo


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """<models_dir>/annotators with controlnet_aux's lineart and PiDiNet files (random weights),
    and a tiny random Depth Anything folder under depth/."""
    import torch
    from controlnet_aux.lineart import Generator
    from controlnet_aux.pidi.model import pidinet

    from stylize.tiny import tiny_depth_model

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("project")
    ann = root / "models" / "annotators"
    ann.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(Generator(3, 1, 3).state_dict(), ann / "sk_model.pth")
    torch.save(Generator(3, 1, 3).state_dict(), ann / "sk_model2.pth")
    # the published table5_pidinet.pth is a training checkpoint: {"state_dict": {"module.<name>": ...}}
    torch.save({"state_dict": {f"module.{k}": v for k, v in pidinet().state_dict().items()}}, ann / "table5_pidinet.pth")
    tiny_depth_model(root / "models" / "depth" / "tiny-da")
    yield load_config(root, env={})
    torch.set_num_threads(threads)


def _img():
    return np.ascontiguousarray(photo()[:96, :128])


def test_controlnet_aux_lineart_and_softedge_from_local_weights(models):
    import cv2
    from controlnet_aux.lineart import LineartDetector
    from controlnet_aux.pidi import PidiNetDetector

    img = _img()
    for kind, det in (("lineart", LineartDetector), ("softedge", PidiNetDetector)):
        ann = build_annotator(kind, config=models)
        assert not ann.fallback and ann.name == f"controlnet_aux {det.__name__}" and ann.warning == ""
        out = ann(img)
        assert out.shape == (96, 128, 3) and out.dtype == np.uint8
        # the same picture through controlnet_aux's own detector, loaded by its own from_pretrained, at the
        # resolution we ask of it (the short side 96 rounded to controlnet_aux's multiples of 64)
        ref = det.from_pretrained(str(models.models_dir / "annotators"))(img, detect_resolution=128, image_resolution=128, output_type="np")
        assert np.array_equal(out, cv2.resize(ref, (128, 96), interpolation=cv2.INTER_AREA))
        assert not np.array_equal(out, C.image_control(kind, img))  # not the OpenCV fallback
        d = ann.describe()
        assert d["fallback"] is False and all(len(v) == 16 for v in d["weights"].values())


def test_fallbacks_are_named_and_explicit_folders_must_hold_their_weights(tmp_path):
    bare = load_config(tmp_path, env={})
    img = _img()
    for kind in ("lineart", "softedge", "depth", "normal"):
        ann = build_annotator(kind, config=bare)
        assert ann.fallback and str(tmp_path / "models" / "annotators") in ann.warning
        assert ann.warning.startswith(f"{kind}: uses the ") and "fallback" in ann.warning
        assert ann(img).shape == (96, 128, 3)
    assert np.array_equal(build_annotator("lineart", config=bare)(img), C.lineart_control(img))
    assert "OpenCV difference of Gaussians" in build_annotator("lineart", config=bare).name
    assert build_annotator("softedge", "opencv", config=bare).describe()["reason"] == "asked for"
    with pytest.raises(ModelMissingError, match=r"no lineart annotator weights at .*mine \(sk_model.pth\+sk_model2.pth\)"):
        build_annotator("lineart", "mine", config=bare)


def test_luminance_normals_tilt_away_from_bright_ground():
    ramp = np.repeat(np.linspace(0, 255, 64, dtype=np.float32)[None, :], 48, axis=0).astype(np.uint8)
    n = C.luminance_normals(np.dstack([ramp] * 3))[8:-8, 8:-8].astype(int)
    # brighter (nearer) to the right: the surface faces left (x < 0), not up or down, toward the camera
    assert (n[..., 0] < 120).all() and (np.abs(n[..., 1] - 128) <= 1).all() and (n[..., 2] > 200).all()


def test_depth_from_a_transformers_model_folder(models):
    from stylize.depth import DepthModel

    img = _img()
    ann = build_annotator("depth", "depth/tiny-da", config=models)
    assert ann.name == "transformers DepthAnythingForDepthEstimation" and not ann.fallback
    out = ann(img)
    inv = DepthModel(models.models_dir / "depth" / "tiny-da").inverse(img).astype(np.float64)
    expect = ((inv - inv.min()) / (inv.max() - inv.min()) * 255 + 0.5).astype(np.uint8)
    assert np.array_equal(out[..., 0], expect) and out.std() > 1
    m = DepthModel(models.models_dir / "depth" / "tiny-da").metres(img, 6.0)
    assert m.shape == (96, 128) and abs(float(np.median(m)) - 6.0) < 0.5 and (m > 0).all()
    with pytest.raises(ModelMissingError, match="no depth model"):
        DepthModel(models.models_dir / "annotators")


def test_a_look_asking_for_lineart_without_weights_says_it_uses_the_fallback(tmp_path, models):
    from typer.testing import CliRunner

    from stylize.cli import app
    from stylize.runner import stylize_take

    take = make_take(tmp_path / "takes", n=4)
    look_file = tmp_path / "ink.toml"
    look_file.write_text('engine = "classical"\n[[controls]]\nkind = "lineart"\n[[controls]]\nkind = "depth"\n'
                         '[cadence]\nmode = "every"\n')
    r = CliRunner().invoke(app, [str(take), "--look", str(look_file)], env={"MACHINIMA_MODELS_DIR": str(tmp_path / "none")})
    assert r.exit_code == 0, r.output
    assert "warning: lineart: uses the OpenCV difference of Gaussians fallback (no controlnet_aux weights at" in " ".join(r.output.split())
    params = json.loads((take / "post" / "stylize-ink" / "params.json").read_text())
    ctl = params["params"]["controls"]
    assert ctl[0]["fallback"] is True and ctl[1] == {"kind": "depth", "from": "depth pass"}  # the take's exact depth
    assert any("lineart: uses the OpenCV" in n for n in params["notes"])
    # with the weights where the look expects them: controlnet_aux's detector, no warning, a new key
    res = stylize_take(take, Look.from_doc({"name": "ink", "engine": "classical", "controls": [{"kind": "lineart"}, {"kind": "depth"}],
                                            "cadence": {"mode": "every"}}), config=models, progress=False, video=False)
    assert res.warnings == [] and len(res.report.done) == 4  # the annotator changed: every frame redone
    ctl = json.loads((res.out_dir / "params.json").read_text())["params"]["controls"]
    assert ctl[0]["annotator"] == "controlnet_aux LineartDetector"


def test_footage_depth_control_comes_from_the_picture_and_a_take_must_render_its_pass(tmp_path, models):
    from stylize import stylize_frames
    from stylize.errors import ControlError
    from stylize.pipeline import StylizePipeline
    from stylize.engines import ClassicalEngine
    from stylize.sources import ArraySource, PassSource

    look = Look.from_doc({"engine": "classical", "controls": [{"kind": "depth", "annotator": "depth/tiny-da"}], "cadence": {"mode": "every"}})
    frames = [_img(), _img()]
    pipe = StylizePipeline(look, ClassicalEngine(look), ArraySource(frames), config=models)
    assert pipe.controls.describe()[0]["annotator"] == "transformers DepthAnythingForDepthEstimation"
    out = stylize_frames(frames, look, config=models)
    flat = stylize_frames(frames, Look.from_doc({"engine": "classical", "controls": [{"kind": "depth", "annotator": "opencv"}],
                                                 "cadence": {"mode": "every"}}))
    assert not np.array_equal(out[0], flat[0])  # the estimated depth's haze, not the fallback plane's
    take = make_take(tmp_path / "takes", n=2)
    (take / "passes" / "passes.json").write_text(
        json.dumps({**json.loads((take / "passes" / "passes.json").read_text()), "passes": {"rgb": {"format": "png"}}}))
    bare = Look.from_doc({"engine": "classical", "controls": [{"kind": "depth"}]})
    with pytest.raises(ControlError, match="no 'depth' pass") as exc:
        StylizePipeline(bare, ClassicalEngine(bare), PassSource(take / "passes")).plan()
    assert "annotator" in exc.value.hint

"""Wav2Lip fed as the published network expects: a random-weight generator of the published
shape (built in code) records what it receives: BGR, the 96x96 crop with its lower half masked
stacked on the whole crop, and an 80x16 mel window; on the GPU when there is one."""

import numpy as np
import pytest
import torch

from lipsync.errors import MouthModelError
from lipsync.wav2lip import IMG, build_generator, load_generator, mel_window, melspectrogram, repaint


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny torch work on a busy 2-core machine runs far slower on 2 threads than on 1."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    model = build_generator()
    path = tmp_path_factory.mktemp("w2l") / "wav2lip.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}, path)  # the released layout
    return path, model


def _crop():
    """Red over the upper half, blue over the lower half (RGB)."""
    crop = np.zeros((IMG, IMG, 3), np.uint8)
    crop[: IMG // 2, :, 0] = 255
    crop[IMG // 2:, :, 2] = 255
    return crop


def test_network_receives_bgr_masked_crop_and_mel(weights):
    path, model = weights
    assert 35e6 < sum(p.numel() for p in model.parameters()) < 38e6  # the published generator's size
    loaded = load_generator(path.parent)
    seen = {}
    loaded.register_forward_pre_hook(lambda m, args: seen.update(audio=args[0].clone(), face=args[1].clone()))
    mel = melspectrogram(np.random.default_rng(0).normal(0, 0.1, 16000).astype(np.float32))
    assert mel.shape == (80, 81) and mel.min() >= -4 and mel.max() <= 4  # 16 kHz, hop 200: 80 mel frames a second
    out = repaint(loaded, _crop(), mel_window(mel, 5, 25))
    assert out.shape == (IMG, IMG, 3) and out.dtype == np.uint8
    audio, face = seen["audio"], seen["face"]
    assert audio.shape == (1, 1, 80, 16) and audio.dtype == torch.float32
    assert torch.equal(audio[0, 0], torch.from_numpy(mel[:, 16:32]))  # frame 5 at 25 fps: 80 * 5 / 25 = mel frame 16
    assert face.shape == (1, 6, IMG, IMG)
    masked, ref = face[0, :3], face[0, 3:]
    assert masked[:, IMG // 2:].abs().max() == 0  # lower half masked
    # BGR: the red upper half is channel 2, the blue lower half channel 0, in [0, 1]
    assert ref[2, : IMG // 2].min() == 1 and ref[0, : IMG // 2].max() == 0
    assert ref[0, IMG // 2:].min() == 1 and ref[2, IMG // 2:].max() == 0
    assert torch.equal(masked[:, : IMG // 2], ref[:, : IMG // 2])


def test_output_comes_back_rgb():
    class Echo(torch.nn.Module):  # returns the reference crop it was given: shows the round trip only
        def forward(self, audio, face):
            return face[:, 3:]

    crop = _crop()
    assert np.array_equal(repaint(Echo(), crop, np.zeros((80, 16), np.float32)), crop)
    with pytest.raises(MouthModelError, match="96x96"):
        repaint(Echo(), crop[:64], np.zeros((80, 16), np.float32))


def test_mel_window_like_the_inference_script():
    mel = np.arange(80 * 40, dtype=np.float32).reshape(80, 40)
    assert np.array_equal(mel_window(mel, 0, 25), mel[:, :16])
    assert np.array_equal(mel_window(mel, 10, 25), mel[:, -16:])  # 32 + 16 > 40: the last 16 frames


def test_weights_errors(tmp_path):
    with pytest.raises(MouthModelError, match="not found"):
        load_generator(tmp_path / "none.pth")
    with pytest.raises(MouthModelError, match=r"no Wav2Lip weights \(\*.pth\)"):
        load_generator(tmp_path)
    torch.save({"state_dict": {"junk": torch.zeros(1)}}, tmp_path / "other.pth")
    with pytest.raises(MouthModelError, match="does not fit"):
        load_generator(tmp_path / "other.pth")


def test_device_follows_cuda(weights):
    from lipsync.wav2lip import best_device

    assert best_device() == ("cuda" if torch.cuda.is_available() else "cpu")


@pytest.mark.gpu
def test_repaint_on_the_gpu(weights):
    path, _ = weights
    model = load_generator(path, "cuda")
    assert next(model.parameters()).is_cuda
    out = repaint(model, _crop(), np.zeros((80, 16), np.float32), "cuda")
    assert out.shape == (IMG, IMG, 3)


def test_video_step_with_wav2lip_weights(weights, tmp_path, face, speech):
    """The post step with --weights: the crop goes through the network and comes back into the frame."""
    from lipsync_helpers import make_take, write_wav

    from lipsync.video import resync_video
    from machinima.imageseq import write_image

    path, _ = weights
    take = make_take(tmp_path / "takes", ("eileen",), fps=25)
    from machinima.provenance import record_decision  # pixel-exact checks below: no watermark, a recorded decision

    record_decision(take, False, "pixel-exact Wav2Lip test")
    (tmp_path / "plate").mkdir()
    for i in range(2):
        write_image(tmp_path / "plate" / f"{i:06d}.png", face)
    write_wav(tmp_path / "line.wav", speech[0][:8000])
    rep = resync_video(take, tmp_path / "plate", audio=tmp_path / "line.wav", weights=path, override="test portrait", progress=False)
    assert rep.engine == "wav2lip" and rep.resynced == 2
    from machinima.imageseq import find_frame, read_image

    out = read_image(find_frame(take / "post" / "lipsync" / "frames", 0))
    changed = np.abs(out.astype(int) - np.asarray(face).astype(int)).max(axis=2) > 0
    ys, xs = np.nonzero(changed)
    assert changed.any() and changed[:40].sum() == 0  # repainted inside the face box only
    assert 100 < ys.mean() < 400 and 100 < xs.mean() < 400

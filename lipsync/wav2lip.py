"""The Wav2Lip generator (Prajwal et al., 2020), for users who have its weights.

The published architecture: a face encoder over the 96x96 face crop with its lower half masked,
stacked with a reference frame (6 channels); an audio encoder over an 80x16 mel-spectrogram
window (0.2 s); a decoder with skip connections that repaints the face, lower half included.
Weights load from a local file (the released ``wav2lip.pth`` / ``wav2lip_gan.pth`` layout:
``{"state_dict": {"module.…": …}}`` or a plain state dict); nothing is downloaded.

The published network was trained on OpenCV frames, so it takes and gives BGR: ``repaint`` turns
our RGB crops into BGR before the network and its output back into RGB. It runs on the GPU when
there is one (``best_device``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import MouthModelError

MEL_STEP = 16  # mel frames per window
IMG = 96


def _torch():
    import torch
    from torch import nn

    return torch, nn


def build_generator():
    torch, nn = _torch()

    class Conv2d(nn.Module):
        def __init__(self, cin, cout, k, s, p, residual=False):
            super().__init__()
            self.conv_block = nn.Sequential(nn.Conv2d(cin, cout, k, s, p), nn.BatchNorm2d(cout))
            self.act = nn.ReLU()
            self.residual = residual

        def forward(self, x):
            out = self.conv_block(x)
            return self.act(out + x if self.residual else out)

    class Conv2dTranspose(nn.Module):
        def __init__(self, cin, cout, k, s, p, output_padding=0):
            super().__init__()
            self.conv_block = nn.Sequential(nn.ConvTranspose2d(cin, cout, k, s, p, output_padding), nn.BatchNorm2d(cout))
            self.act = nn.ReLU()

        def forward(self, x):
            return self.act(self.conv_block(x))

    def res(c):
        return Conv2d(c, c, 3, 1, 1, residual=True)

    class Wav2Lip(nn.Module):
        def __init__(self):
            super().__init__()
            self.face_encoder_blocks = nn.ModuleList([
                nn.Sequential(Conv2d(6, 16, 7, 1, 3)),
                nn.Sequential(Conv2d(16, 32, 3, 2, 1), res(32), res(32)),
                nn.Sequential(Conv2d(32, 64, 3, 2, 1), res(64), res(64), res(64)),
                nn.Sequential(Conv2d(64, 128, 3, 2, 1), res(128), res(128)),
                nn.Sequential(Conv2d(128, 256, 3, 2, 1), res(256), res(256)),
                nn.Sequential(Conv2d(256, 512, 3, 2, 1), res(512)),
                nn.Sequential(Conv2d(512, 512, 3, 1, 0), Conv2d(512, 512, 1, 1, 0)),
            ])
            self.audio_encoder = nn.Sequential(
                Conv2d(1, 32, 3, 1, 1), res(32), res(32),
                Conv2d(32, 64, 3, (3, 1), 1), res(64), res(64),
                Conv2d(64, 128, 3, 3, 1), res(128), res(128),
                Conv2d(128, 256, 3, (3, 2), 1), res(256),
                Conv2d(256, 512, 3, 1, 0), Conv2d(512, 512, 1, 1, 0),
            )
            self.face_decoder_blocks = nn.ModuleList([
                nn.Sequential(Conv2d(512, 512, 1, 1, 0)),
                nn.Sequential(Conv2dTranspose(1024, 512, 3, 1, 0), res(512)),
                nn.Sequential(Conv2dTranspose(1024, 512, 3, 2, 1, 1), res(512), res(512)),
                nn.Sequential(Conv2dTranspose(768, 384, 3, 2, 1, 1), res(384), res(384)),
                nn.Sequential(Conv2dTranspose(512, 256, 3, 2, 1, 1), res(256), res(256)),
                nn.Sequential(Conv2dTranspose(320, 128, 3, 2, 1, 1), res(128), res(128)),
                nn.Sequential(Conv2dTranspose(160, 64, 3, 2, 1, 1), res(64), res(64)),
            ])
            self.output_block = nn.Sequential(Conv2d(80, 32, 3, 1, 1), nn.Conv2d(32, 3, 1, 1, 0), nn.Sigmoid())

        def forward(self, audio, face):
            """audio (B, 1, 80, 16), face (B, 6, 96, 96) in [0, 1] -> (B, 3, 96, 96)."""
            x = self.audio_encoder(audio)
            feats = []
            f = face
            for block in self.face_encoder_blocks:
                f = block(f)
                feats.append(f)
            for block in self.face_decoder_blocks:
                x = block(x)
                x = torch.cat((x, feats.pop()), dim=1)
            return self.output_block(x)

    return Wav2Lip()


def best_device() -> str:
    """``cuda`` when torch sees a GPU, else ``cpu``."""
    torch, _ = _torch()
    return "cuda" if torch.cuda.is_available() else "cpu"


def load_generator(path: str | Path, device: str = "cpu"):
    torch, _ = _torch()
    path = Path(path)
    if path.is_dir():
        cands = sorted(path.glob("*.pth")) + sorted(path.glob("*.pt"))
        if not cands:
            raise MouthModelError(f"no Wav2Lip weights (*.pth) in {path}", hint="put wav2lip.pth or wav2lip_gan.pth there")
        path = cands[0]
    if not path.exists():
        raise MouthModelError(f"Wav2Lip weights not found at {path}", hint="put wav2lip.pth (or wav2lip_gan.pth) there; nothing is downloaded")
    try:
        ckpt = torch.load(path, map_location=device, weights_only=False)
    except Exception as exc:
        raise MouthModelError(f"{path} is not a readable PyTorch checkpoint ({exc})") from None
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise MouthModelError(f"{path} holds no state dict")
    state = {k.replace("module.", "", 1): v for k, v in state.items()}
    model = build_generator()
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise MouthModelError(f"{path} does not fit the Wav2Lip generator: {len(missing)} missing, {len(unexpected)} unexpected keys (e.g. {(missing or unexpected)[0]})")
    return model.to(device).eval()


# --- audio features as Wav2Lip was trained on (16 kHz, 80 mels, hop 200, [-4, 4]) ------------
def _slaney_mel(sr=16000, n_fft=800, n_mels=80, fmin=55.0, fmax=7600.0) -> np.ndarray:
    def hz_to_mel(f):
        f = np.asarray(f, float)
        lin = f / (200.0 / 3)
        return np.where(f >= 1000, 15 + np.log(np.maximum(f, 1e-9) / 1000) / (np.log(6.4) / 27), lin)

    def mel_to_hz(m):
        m = np.asarray(m, float)
        return np.where(m >= 15, 1000 * np.exp((np.log(6.4) / 27) * (m - 15)), m * (200.0 / 3))

    freqs = np.linspace(0, sr / 2, n_fft // 2 + 1)
    pts = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    fb = np.zeros((n_mels, freqs.size))
    for i in range(n_mels):
        lo, c, hi = pts[i], pts[i + 1], pts[i + 2]
        fb[i] = np.maximum(0, np.minimum((freqs - lo) / (c - lo), (hi - freqs) / (hi - c)))
        fb[i] *= 2.0 / (hi - lo)
    return fb


_MEL = None


def melspectrogram(samples: np.ndarray) -> np.ndarray:
    """(80, T) normalised log-mel, T = len/200 + 1 (Wav2Lip's hparams)."""
    global _MEL
    if _MEL is None:
        _MEL = _slaney_mel()
    x = np.asarray(samples, np.float64)
    x = np.concatenate([x[:1], x[1:] - 0.97 * x[:-1]])
    pad = 400  # librosa's centred frames
    xp = np.pad(x, (pad, pad), mode="reflect") if x.size > pad else np.pad(x, (pad, pad))
    n = 1 + (xp.size - 800) // 200
    idx = np.arange(800)[None, :] + 200 * np.arange(n)[:, None]
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(800) / 800)  # periodic, as librosa's stft uses
    spec = np.abs(np.fft.rfft(xp[idx] * hann, 800)).T
    db = 20 * np.log10(np.maximum(1e-5, _MEL @ spec)) - 20
    return np.clip((2 * 4) * ((db + 100) / 100) - 4, -4, 4).astype(np.float32)


def mel_window(mel: np.ndarray, frame: int, fps: float) -> np.ndarray:
    """The 80x16 window that Wav2Lip pairs with video frame ``frame`` (its inference script: the
    window starts at ``int(frame * 80 / fps)``; past the end, the last 16 mel frames)."""
    start = int(frame * (80.0 / fps))
    if start + MEL_STEP > mel.shape[1]:
        win = mel[:, max(0, mel.shape[1] - MEL_STEP):]
        return np.pad(win, ((0, 0), (0, MEL_STEP - win.shape[1])), mode="edge") if win.shape[1] < MEL_STEP else win
    return mel[:, start:start + MEL_STEP]


def repaint(model, face_crop: np.ndarray, mel_win: np.ndarray, device: str = "cpu") -> np.ndarray:
    """Repaint one 96x96 RGB face crop (uint8) for its mel window; returns RGB uint8 96x96x3.
    The network sees what it was trained on: BGR in [0, 1], the crop with its lower half zeroed
    stacked on the unmasked crop (6 channels), and the (1, 1, 80, 16) mel window."""
    torch, _ = _torch()
    if face_crop.shape[:2] != (IMG, IMG) or mel_win.shape != (80, MEL_STEP):
        raise MouthModelError(f"Wav2Lip needs a {IMG}x{IMG} face crop and an 80x{MEL_STEP} mel window, got {face_crop.shape[:2]} and {mel_win.shape}")
    f = np.ascontiguousarray(face_crop[..., 2::-1]).astype(np.float32) / 255.0  # RGB -> BGR
    masked = f.copy()
    masked[IMG // 2:] = 0
    inp = np.concatenate([masked, f], axis=2).transpose(2, 0, 1)[None]
    with torch.no_grad():
        out = model(torch.from_numpy(np.ascontiguousarray(mel_win, np.float32)[None, None]).to(device), torch.from_numpy(inp).to(device))
    bgr = (out[0].permute(1, 2, 0).float().cpu().numpy() * 255).clip(0, 255).astype(np.uint8)
    return np.ascontiguousarray(bgr[..., ::-1])  # BGR -> RGB

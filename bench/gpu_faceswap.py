"""Face-swap merge figures for bench/gpu_figures.py: the network at 1080p.

Frames: matplotlib's grace_hopper.jpg (face about 300 px wide) drifting and zooming over a 1080p
background, as bench/faceswap.py makes them; the photo moves by a known affine map, so its 68
landmarks (bench/data/grace_hopper_landmarks.json, found once by the mediapipe backend) move
with it and the merge needs no detector here (the GPU machine has no mediapipe; detection and
tracking are CPU work that merge caches per take, measured by bench/faceswap.py).

Figures, ms a frame: the network alone (a batch of aligned faces), ``Compositor.frames`` in
memory with the network (align, swap in batches, mask, colour transfer, paste the face's region)
and without it (the floor), and ``faceswap.merge.merge`` disk to disk (PNG in, PNG out, ledger).
The model: a DF autoencoder at the default size (128 px, dims 64/256/64), random weights.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

GOAL_MS = 10.0
LANDMARKS = Path(__file__).resolve().parent / "data" / "grace_hopper_landmarks.json"


def moving_face(n: int, w: int, h: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """n frames of w x h and the face's 68 landmarks in each (moved with the photo)."""
    import cv2

    from gpu_figures import bench_module

    g = bench_module("faceswap").photo()
    lm0 = np.array(json.loads(LANDMARKS.read_text())["landmarks"], np.float64)
    k = h / 1080
    bg = cv2.resize(g[:120, :120], (w, h), interpolation=cv2.INTER_LINEAR)
    imgs, lms = [], []
    for i in range(n):
        s = (1.6 + 0.004 * i) * k
        m = np.array([[s, 0, (600 + 4 * i) * k], [0, s, (80 + 1.5 * i) * k]])
        f = bg.copy()
        cv2.warpAffine(g, m, (w, h), dst=f, borderMode=cv2.BORDER_TRANSPARENT)
        imgs.append(f)
        lms.append(lm0 @ m[:, :2].T + m[:, 2])
    return imgs, lms


class KnownFaces:
    """A face backend that knows each frame's landmarks (looked up by a hash of the pixels)."""

    cacheable = False

    def __init__(self, frames: list[np.ndarray], landmarks: list[np.ndarray]) -> None:
        self.table = {self.key(f): lm for f, lm in zip(frames, landmarks)}

    @staticmethod
    def key(image: np.ndarray) -> str:
        return hashlib.sha1(np.ascontiguousarray(image[::7, ::5]).tobytes()).hexdigest()

    def detect(self, image: np.ndarray) -> list[Any]:
        from faceswap.landmarks import Face, box_of

        lm = self.table.get(self.key(image))
        return [] if lm is None else [Face(box_of(lm), lm.copy())]

    def landmarks(self, image: np.ndarray, box: np.ndarray) -> Any:
        faces = self.detect(image)
        return faces[0] if faces else None


def random_model(folder: Path, cfg: Any) -> Path:
    """A model folder merge accepts (model.json + checkpoint.pt), random weights."""
    import torch

    from faceswap.model import FaceModel
    from faceswap.train import SCHEMA, VERSION

    torch.manual_seed(0)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({"model": FaceModel(cfg).state_dict()}, folder / "checkpoint.pt")
    (folder / "model.json").write_text(json.dumps({"schema": SCHEMA, "version": VERSION, "model": cfg.to_doc(), "iteration": 0}))
    return folder


def merge_1080p(run: Any, shared: dict[str, Any]) -> None:
    from faceswap.merge import Compositor, MergeOptions, merge
    from faceswap.model import ModelConfig
    from faceswap.onnx_export import TorchSwapper
    from machinima.imageseq import write_image

    put = run.fig.put
    w, h, n = (480, 270, 8) if run.smoke else (1920, 1080, 48)
    cfg = ModelConfig(res=64, e_dims=16, ae_dims=64, d_dims=16, d_mask_dims=8) if run.smoke else ModelConfig()
    imgs, lms = moving_face(n, w, h)
    model = random_model(run.tmp / "fs-model", cfg)
    batch = 8
    put("faceswap.settings", {"size": [w, h], "frames": n, "faces_per_frame": 1, "model": {**cfg.to_doc(), "weights": "random"},
                              "batch": batch, "color": "rct", "engine": "torch", "device": run.dev})
    swapper = TorchSwapper(model, device=run.dev)
    res = swapper.res
    faces = np.random.default_rng(0).random((batch, 3, res, res), dtype=np.float32)
    swapper(faces)
    _, secs = run.timed(lambda: [swapper(faces) for _ in range(5)])
    put("faceswap.network_ms_per_face", round(secs / (5 * batch) * 1e3, 3))

    def in_memory(sw: Any, blend: str, workers: int = 2) -> float:
        comp = Compositor(sw, res, cfg.face_type, MergeOptions(blend=blend, batch=batch, workers=workers))
        todo = [f.copy() for f in imgs]
        comp.frames(todo[:batch], [{0: lm} for lm in lms[:batch]], inplace=True)  # warm-up
        todo = [f.copy() for f in imgs]

        def go() -> None:
            for i in range(0, n, batch):
                comp.frames(todo[i:i + batch], [{0: lm} for lm in lms[i:i + batch]], inplace=True)

        _, secs = run.timed(go)
        return round(secs / n * 1e3, 2)

    mem = {"alpha": in_memory(swapper, "alpha"), "seamless": in_memory(swapper, "seamless"),
           "alpha_8_workers": in_memory(swapper, "alpha", 8), "no_network_alpha": in_memory(None, "alpha")}
    put("faceswap.in_memory_ms_per_frame", mem)
    folder = run.tmp / "fs-frames"
    for i, f in enumerate(imgs):
        write_image(folder / f"{i:06d}.png", f)
    disk = {}
    for name, blend in (("alpha", "alpha"), ("seamless", "seamless")):
        rep = merge(folder, model, out=run.tmp / f"fs-out-{name}", options=MergeOptions(blend=blend, batch=batch, device=run.dev),
                    override="benchmark", rights_store=run.tmp / "rights", production="bench", backend=KnownFaces(imgs, lms),
                    progress=False, video=False)
        if rep.done != n:
            raise RuntimeError(f"merge wrote {rep.done} of {n} frames: {rep.messages()[:3]}")
        disk[name] = round(rep.seconds_swap / n * 1e3, 2)
    put("faceswap.disk_to_disk_ms_per_frame", disk)
    put("faceswap.goals", {"in_memory_ms_per_frame": {"goal": GOAL_MS, "got": mem["alpha"], "met": mem["alpha"] <= GOAL_MS}})

"""A trainable occlusion segmenter (XSeg-like): which pixels of an aligned face are face, and
which are a hand, hair, a mic or a glass in front of it.

Trained on your facesets with synthetic occluders (skin-coloured blobs, bars, patches cut from
other faces, drawn over the face and cut out of the target mask), so it needs no hand-drawn
masks to start; exported to ONNX with the ``masks.OnnxSegmenter`` contract (input
``1x3xSxS`` RGB [0, 1], output ``1x1xSxS`` face probability) and used by merge with
``--occlusion-model DIR/segmenter.onnx``.

    machinima faceswap train-mask --faceset facesets/bob --out models/bob-mask --iters 3000
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .errors import FacesetError
from .faceset import load_training_set
from .masks import hull_mask


def _net(width: int = 16):
    import torch
    from torch import nn

    class Block(nn.Sequential):
        def __init__(self, cin: int, cout: int) -> None:
            super().__init__(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                             nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

    class SegNet(nn.Module):
        """A small U-Net: 3 levels down, 3 up, skip connections; sigmoid output."""

        def __init__(self, w: int) -> None:
            super().__init__()
            self.d1, self.d2, self.d3 = Block(3, w), Block(w, w * 2), Block(w * 2, w * 4)
            self.mid = Block(w * 4, w * 4)
            self.u3, self.u2, self.u1 = Block(w * 8, w * 2), Block(w * 4, w), Block(w * 2, w)
            self.out = nn.Conv2d(w, 1, 1)
            self.pool = nn.MaxPool2d(2)

        def forward(self, x):
            def up(t):
                return nn.functional.interpolate(t, scale_factor=2, mode="bilinear", align_corners=False)

            a = self.d1(x)
            b = self.d2(self.pool(a))
            c = self.d3(self.pool(b))
            m = self.mid(self.pool(c))
            c2 = self.u3(torch.cat([up(m), c], 1))
            b2 = self.u2(torch.cat([up(c2), b], 1))
            a2 = self.u1(torch.cat([up(b2), a], 1))
            return torch.sigmoid(self.out(a2))

    return SegNet(width)


def occlude(img: np.ndarray, mask: np.ndarray, rng: np.random.Generator, donors: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Draw 1-2 random occluders over ``img`` (float [0,1]); return (image, mask without them)."""
    import cv2

    img, mask = img.copy(), mask.copy()
    h, w = mask.shape
    for _ in range(int(rng.integers(1, 3))):
        occ = np.zeros((h, w), np.uint8)
        kind = int(rng.integers(0, 3))
        if kind == 0:  # hand-like blob
            c = (int(rng.uniform(0.2, 0.8) * w), int(rng.uniform(0.4, 1.0) * h))
            axes = (int(rng.uniform(0.12, 0.3) * w), int(rng.uniform(0.1, 0.25) * h))
            cv2.ellipse(occ, c, axes, float(rng.uniform(0, 180)), 0, 360, 255, -1)
            colour = np.array([rng.uniform(0.55, 0.95), rng.uniform(0.35, 0.7), rng.uniform(0.25, 0.6)], np.float32)
        elif kind == 1:  # bar (mic, glass, cable)
            p0 = (int(rng.uniform(0, w)), int(rng.uniform(0.5, 1.0) * h))
            p1 = (int(rng.uniform(0, w)), int(rng.uniform(0.2, 0.7) * h))
            cv2.line(occ, p0, p1, 255, max(1, int(rng.uniform(0.05, 0.14) * w)))
            colour = rng.uniform(0, 1, 3).astype(np.float32)
        else:  # polygon patch, filled from another face when there is one
            pts = (rng.uniform(0, 1, (5, 2)) * [w, h]).astype(np.int32)
            cv2.fillPoly(occ, [cv2.convexHull(pts)], 255)
            colour = rng.uniform(0, 1, 3).astype(np.float32)
        sel = occ > 0
        if kind == 2 and donors is not None and len(donors):
            img[sel] = donors[int(rng.integers(0, len(donors)))][sel]
        else:
            shade = 0.85 + 0.3 * rng.random((h, w, 1)).astype(np.float32)
            img[sel] = np.clip(colour * shade, 0, 1)[sel]
        mask[sel] = 0
    return img, mask


def train_segmenter(facesets: list[str | Path], out: str | Path, *, res: int = 128, iters: int = 2000, batch: int = 8,
                    width: int = 16, lr: float = 2e-3, seed: int = 0, device: str = "auto", progress: bool = True) -> dict:
    """Train, save ``segmenter.pt`` and export ``segmenter.onnx`` into ``out``; returns a summary.
    Ctrl-C stops training and still saves and exports what was learnt."""
    import torch

    from machinima.fsutil import atomic_write_json

    from .modeldoc import pick_device

    if not facesets:
        raise FacesetError("train-mask needs at least one --faceset")
    if res % 8:
        raise FacesetError(f"mask resolution {res} must be a multiple of 8")
    imgs, masks, problems = [], [], []
    for fs in facesets:
        ts = load_training_set(fs, res)
        imgs.append(ts.images.astype(np.float32) / 255)
        masks.append(np.stack([hull_mask(lm, (res, res), ts.face_type) for lm in ts.landmarks]))
        problems += [str(p) for p in ts.problems]
    images, targets = np.concatenate(imgs), np.concatenate(masks)
    dev = pick_device(device)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = _net(width).to(dev)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    losses: list[float] = []
    t0 = time.perf_counter()
    bar = None
    if progress:
        from rich.progress import Progress

        bar = Progress()
        bar.start()
        task = bar.add_task("train mask", total=iters)
    try:
        for _ in range(iters):
            idx = rng.integers(0, len(images), batch)
            xs, ys = [], []
            for i in idx:
                x, y = occlude(images[i], targets[i], rng, donors=images)
                if rng.random() < 0.5:
                    x, y = x[:, ::-1], y[:, ::-1]
                xs.append(x)
                ys.append(y)
            x = torch.from_numpy(np.ascontiguousarray(np.stack(xs).transpose(0, 3, 1, 2))).to(dev)
            y = torch.from_numpy(np.ascontiguousarray(np.stack(ys)[:, None])).to(dev)
            net.train()
            p = net(x)
            loss = torch.nn.functional.binary_cross_entropy(p.clamp(1e-6, 1 - 1e-6), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
            if bar:
                bar.advance(task)
    except KeyboardInterrupt:
        pass  # save what we have
    finally:
        if bar:
            bar.stop()
    net.eval().cpu()
    torch.save({"model": net.state_dict(), "res": res, "width": width, "iterations": len(losses)}, out / "segmenter.pt")
    tmp = out / ".segmenter.onnx.tmp"
    with torch.no_grad():
        torch.onnx.export(net, (torch.rand(1, 3, res, res),), str(tmp), input_names=["face"], output_names=["mask"],
                          opset_version=17, dynamo=False)
    tmp.replace(out / "segmenter.onnx")
    summary = {"schema": "machinima.faceswap-segmenter", "version": 1, "res": res, "width": width, "iterations": len(losses),
               "facesets": [str(f) for f in facesets], "loss_first": round(float(np.mean(losses[:5])), 5) if losses else None,
               "loss_last": round(float(np.mean(losses[-5:])), 5) if losses else None, "seconds": round(time.perf_counter() - t0, 2),
               "problems": problems}
    atomic_write_json(out / "segmenter.json", summary)
    return summary

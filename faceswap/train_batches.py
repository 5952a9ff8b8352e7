"""Training batches of one faceset: its faces at the model's resolution with their masks and
eye/mouth weights (``_Side``), each batch augmented (random affine + flip, a smooth random warp on
the input only, the same HSV jitter on input and target) from the trainer's numpy Generator, so a
resumed run draws exactly the batches it would have drawn."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .faceset import FEW_FACES, load_training_set
from .masks import hull_mask, priority_weights
from .train_config import TrainConfig


def _affine(rng: np.random.Generator, res: int, amount: float = 1.0) -> np.ndarray:
    import cv2

    ang = rng.uniform(-10, 10) * amount
    sc = 1 + rng.uniform(-0.05, 0.05) * amount
    tx, ty = rng.uniform(-0.05, 0.05, 2) * res * amount
    m = cv2.getRotationMatrix2D((res / 2, res / 2), ang, sc)
    m[:, 2] += (tx, ty)
    return m


def _warp_grid(rng: np.random.Generator, res: int, cells: int = 5, amount: float = 0.025) -> tuple[np.ndarray, np.ndarray]:
    import cv2

    off = rng.normal(0, amount * res, size=(2, cells, cells)).astype(np.float32)
    off[:, [0, -1], :] = 0
    off[:, :, [0, -1]] = 0
    dx = cv2.resize(off[0], (res, res), interpolation=cv2.INTER_CUBIC)
    dy = cv2.resize(off[1], (res, res), interpolation=cv2.INTER_CUBIC)
    gx, gy = np.meshgrid(np.arange(res, dtype=np.float32), np.arange(res, dtype=np.float32))
    return gx + dx, gy + dy


def _hsv_jitter(img: np.ndarray, rng: np.random.Generator, power: float) -> np.ndarray:
    import cv2

    if power <= 0:
        return img
    hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)
    hsv[..., 0] = (hsv[..., 0] + rng.uniform(-power, power) * 360) % 360
    hsv[..., 1] = np.clip(hsv[..., 1] * (1 + rng.uniform(-power, power) * 2), 0, 1)
    hsv[..., 2] = np.clip(hsv[..., 2] * (1 + rng.uniform(-power, power) * 2), 0, 1)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


class _Side:
    """One faceset at training resolution, with its masks and loss weights."""

    def __init__(self, path: Path, res: int, priority: float) -> None:
        ts = load_training_set(path, res)
        self.path = path
        self.images = ts.images.astype(np.float32) / 255.0
        self.masks = np.stack([hull_mask(lm, (res, res), ts.face_type) for lm in ts.landmarks])
        self.weights = np.stack([priority_weights(lm, (res, res), priority) for lm in ts.landmarks])
        self.problems = [str(p) for p in ts.problems]
        if len(ts.images) < FEW_FACES:  # it trains, but on so few faces it learns pictures, not a face
            self.problems.append(f"{path.name} has only {len(ts.images)} face(s) (fewer than {FEW_FACES}): the model will learn these "
                                 "pictures by heart; extract more (hundreds, varied pose and light) or check what `faceswap sort --remove` removed")
        self.res = res

    def batch(self, rng: np.random.Generator, n: int, cfg: TrainConfig) -> tuple[np.ndarray, ...]:
        import cv2

        idx = rng.integers(0, len(self.images), n)
        res = self.res
        xs, ys, ms, ws = [], [], [], []
        for i in idx:
            img, m, w = self.images[i], self.masks[i], self.weights[i]
            a = _affine(rng, res, cfg.affine)
            flip = cfg.flip and rng.random() < 0.5
            tgt = cv2.warpAffine(img, a, (res, res), borderMode=cv2.BORDER_REPLICATE)
            mt = cv2.warpAffine(m, a, (res, res))
            wt = cv2.warpAffine(w, a, (res, res), borderValue=1.0)
            if cfg.warp:
                mx, my = _warp_grid(rng, res)
                inp = cv2.remap(tgt, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            else:
                inp = tgt
            if cfg.color_aug > 0:
                seed = int(rng.integers(0, 2**31 - 1))
                inp = _hsv_jitter(inp, np.random.default_rng(seed), cfg.color_aug)
                tgt = _hsv_jitter(tgt, np.random.default_rng(seed), cfg.color_aug)
            if flip:
                inp, tgt, mt, wt = inp[:, ::-1], tgt[:, ::-1], mt[:, ::-1], wt[:, ::-1]
            xs.append(inp)
            ys.append(tgt)
            ms.append(mt)
            ws.append(wt)
        chw = lambda a: np.ascontiguousarray(np.stack(a).transpose(0, 3, 1, 2), dtype=np.float32)  # noqa: E731
        return chw(xs), chw(ys), np.stack(ms)[:, None].astype(np.float32), np.stack(ws)[:, None].astype(np.float32)

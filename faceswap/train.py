"""Training: two facesets -> a face model folder. Checkpoints every N iterations and on Ctrl-C;
a rerun resumes exactly (weights, optimizer, iteration, numpy + torch RNG states).

Model folder::

    model.json        schema machinima.faceswap-model v1: model config, train config, facesets,
                      rights clearance (provenance), last iteration
    checkpoint.pt     written atomically: weights, optimizer, iteration, RNG states, loss history
    history.csv       iteration, src loss, dst loss (one line per logged iteration)
    preview.png       rows: src, src rebuilt, dst, dst rebuilt, dst swapped to src

Steps of one iteration: sample a batch from each faceset (numpy Generator), augment (random
affine + flip + smooth random warp on the input only + HSV jitter on both), forward src and
dst, loss = DSSIM + MSE on the masked face (eyes and mouth weighted up) + mask MSE (+ an
optional adversarial term), backward, Adam step. On CUDA: autocast (fp16/bf16) + GradScaler.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from machinima.fsutil import atomic_write_json

from .errors import FacesetError, ModelError
from .faceset import FEW_FACES, load_training_set
from .masks import hull_mask, priority_weights

SCHEMA = "machinima.faceswap-model"
VERSION = 1

# Named settings (``train --preset``): "cpu" makes the demo's pair recognisable as the source
# after 1,000 iterations, 7 minutes of one CPU core (bench/faceswap.py --identity, figures in
# docs/faceswap.md). A small 64 px model; a high learning rate made stable by Adam's usual beta1 (0.9: a gradient spike moves the weights
# 3x the step, not 16x as with 0.5) and gradient clipping, halving every 600 iterations so the
# face sharpens late; light random affine (a face aligned by landmarks moves little; the full
# range spent most of the early iterations learning to redraw the face rotated and shifted, a
# blur); eyes and mouth weighted 3x, where dlib's identity measure looks first.
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "cpu": {
        "model": {"arch": "df", "res": 64, "e_dims": 32, "ae_dims": 128, "d_dims": 16, "d_mask_dims": 22},
        "train": {"batch": 8, "lr": 1e-3, "beta1": 0.9, "clip_grad": 10.0, "lr_half_life": 600, "affine": 0.3, "priority": 2.0},
    },
}


@dataclass
class TrainConfig:
    batch: int = 8
    lr: float = 5e-5
    save_every: int = 500
    log_every: int = 10
    seed: int = 0
    priority: float = 1.0  # extra weight on eyes and mouth
    dssim_weight: float = 10.0
    mse_weight: float = 10.0
    mask_weight: float = 10.0
    gan_power: float = 0.0  # > 0 turns the adversarial stage on
    beta1: float = 0.5  # Adam's first-moment decay
    clip_grad: float = 0.0  # > 0: clip the gradient norm (a spike otherwise kills the mask's sigmoid)
    lr_half_life: int = 0  # > 0: the learning rate halves every this many iterations (sharper late)
    warp: bool = True
    affine: float = 1.0  # random affine range: 1.0 = rotation +-10 deg, scale and shift +-5%
    flip: bool = True
    color_aug: float = 0.05
    device: str = "auto"
    amp: bool = True  # only on CUDA

    @classmethod
    def from_doc(cls, d: dict[str, Any]) -> "TrainConfig":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


@dataclass
class TrainReport:
    iteration: int
    start_iteration: int
    seconds: float
    loss_src: float
    loss_dst: float
    interrupted: bool = False
    problems: list[str] = field(default_factory=list)

    @property
    def its(self) -> float:
        n = self.iteration - self.start_iteration
        return n / self.seconds if self.seconds > 0 else 0.0


def pick_device(name: str = "auto") -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ModelError("CUDA was asked for but no GPU is available", hint="use --device cpu")
    return name


# --- augmentation --------------------------------------------------------------------------------
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


def dssim(a, b, window: int = 11):
    """(1 - SSIM) / 2 with a Gaussian window, per image, averaged."""
    import torch
    from torch.nn import functional as F

    sigma = 1.5
    g = torch.exp(-((torch.arange(window, dtype=a.dtype, device=a.device) - window // 2) ** 2) / (2 * sigma**2))
    g = (g / g.sum())
    k = (g[:, None] * g[None, :]).expand(a.shape[1], 1, window, window).contiguous()
    conv = lambda x: F.conv2d(x, k, padding=window // 2, groups=a.shape[1])  # noqa: E731
    mu_a, mu_b = conv(a), conv(b)
    saa, sbb, sab = conv(a * a) - mu_a**2, conv(b * b) - mu_b**2, conv(a * b) - mu_a * mu_b
    c1, c2 = 0.01**2, 0.03**2
    ssim = ((2 * mu_a * mu_b + c1) * (2 * sab + c2)) / ((mu_a**2 + mu_b**2 + c1) * (saa + sbb + c2))
    return ((1 - ssim) / 2).mean()


class Trainer:
    """Open or create a model folder and train it. ``Trainer(model_dir, src=, dst=, config=)``."""

    def __init__(self, model_dir: str | Path, *, src: str | Path | None = None, dst: str | Path | None = None,
                 model_config: Any = None, train_config: TrainConfig | None = None, rights: dict[str, Any] | None = None,
                 overrides: dict[str, Any] | None = None, production: str | None = None, override: str | None = None,
                 rights_store: Any = None) -> None:
        """``train_config`` is the whole config (a new model, or replacing a saved one);
        ``overrides`` changes only the named fields of the saved (or default) config.
        Every face of both facesets must match a valid ``training`` rights record of
        ``production`` (``machinima.rights.require_cleared``), else ``NotCleared``; ``override``
        (a reason; or ``rights={"override": reason}``) goes on anyway, recorded in model.json; a
        resumed model continues under the override it was started with, said so."""
        import torch

        from .model import FaceModel, ModelConfig

        self.dir = Path(model_dir)
        doc = read_model_doc(self.dir) if (self.dir / "model.json").exists() else None
        if doc:
            mc = ModelConfig.from_doc(doc["model"])
            if model_config is not None and (model_config.arch != mc.arch or model_config.res != mc.res):
                raise ModelError(f"{self.dir} holds a {mc.arch} model at {mc.res} px, not {model_config.arch} at {model_config.res}",
                                 hint="train into a new --model folder, or leave --arch/--res out to continue")
            tc = TrainConfig.from_doc({**doc.get("train", {}), **(asdict(train_config) if train_config else {}), **(overrides or {})})
            src = src or doc.get("src")
            dst = dst or doc.get("dst")
        else:
            if src is None or dst is None:
                raise ModelError(f"{self.dir} has no model yet", hint="give --src and --dst facesets to start one")
            mc = (model_config or ModelConfig()).check()
            tc = TrainConfig.from_doc({**asdict(train_config or TrainConfig()), **(overrides or {})})
        self.mcfg, self.tcfg = mc, tc
        self.src_path, self.dst_path = Path(str(src)), Path(str(dst))
        # face type comes from the facesets
        self.src = _Side(self.src_path, mc.res, tc.priority)
        self.dst = _Side(self.dst_path, mc.res, tc.priority)
        from machinima import rights as R  # rights bound to the faces themselves: folder names only label
        from machinima.config import load_config

        self.rights = R.require_cleared(production or load_config().production, "training",
                                        R.faces_in_collection(self.src_path) + R.faces_in_collection(self.dst_path), store=rights_store,
                                        override=override or (rights or {}).get("override") or R.continued_override((doc or {}).get("rights")),
                                        what="the facesets").to_provenance()
        self.problems = [f"src: {p}" for p in self.src.problems] + [f"dst: {p}" for p in self.dst.problems]
        from .faceset import open_faceset

        with open_faceset(self.src_path) as c:
            mc.face_type = c.info.get("face_type", mc.face_type)
        self.device = pick_device(tc.device)
        torch.manual_seed(tc.seed)
        self.model = FaceModel(mc).to(self.device)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=tc.lr, betas=(tc.beta1, 0.999))
        self.disc = self.opt_d = None
        if tc.gan_power > 0:
            from .model import Discriminator

            self.disc = Discriminator().to(self.device)
            self.opt_d = torch.optim.Adam(self.disc.parameters(), lr=tc.lr, betas=(0.5, 0.999))
        self.amp = tc.amp and self.device.startswith("cuda")
        self.scaler = torch.amp.GradScaler("cuda") if self.amp else None
        self.rng = np.random.default_rng(tc.seed)
        self.iteration = 0
        self.history: list[tuple[int, float, float]] = []
        if (self.dir / "checkpoint.pt").exists():
            self.load()

    # --- checkpoints ----------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        import torch

        return {
            "model": self.model.state_dict(), "opt": self.opt.state_dict(), "iteration": self.iteration,
            "numpy_rng": self.rng.bit_generator.state, "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            "history": self.history, "disc": self.disc.state_dict() if self.disc else None,
            "opt_d": self.opt_d.state_dict() if self.opt_d else None, "scaler": self.scaler.state_dict() if self.scaler else None,
        }

    def save(self) -> None:
        import torch

        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / ".checkpoint.pt.tmp"
        torch.save(self.state(), tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, self.dir / "checkpoint.pt")
        atomic_write_json(self.dir / "model.json", {
            "schema": SCHEMA, "version": VERSION, "model": self.mcfg.to_doc(), "train": asdict(self.tcfg),
            "src": str(self.src_path), "dst": str(self.dst_path), "iteration": self.iteration, "rights": self.rights,
        })
        with open(self.dir / "history.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["iteration", "loss_src", "loss_dst"])
            w.writerows(self.history)

    def load(self) -> None:
        import torch

        try:
            st = torch.load(self.dir / "checkpoint.pt", map_location=self.device, weights_only=False)
            self.model.load_state_dict(st["model"])
            self.opt.load_state_dict(st["opt"])
        except Exception as exc:  # noqa: BLE001
            raise ModelError(f"{self.dir / 'checkpoint.pt'} cannot be loaded: {exc}", hint="restore it from a backup or train into a new folder") from None
        self.iteration = int(st["iteration"])
        self.rng.bit_generator.state = st["numpy_rng"]
        torch.set_rng_state(st["torch_rng"])
        if st.get("cuda_rng") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(st["cuda_rng"])
        self.history = [tuple(h) for h in st.get("history", [])]
        if self.disc is not None and st.get("disc"):
            self.disc.load_state_dict(st["disc"])
            self.opt_d.load_state_dict(st["opt_d"])
        if self.scaler is not None and st.get("scaler"):
            self.scaler.load_state_dict(st["scaler"])

    # --- one step -------------------------------------------------------------------------------
    def _loss(self, pred, pmask, tgt, tmask, weight):
        import torch

        cfg = self.tcfg
        m = tmask
        l_dssim = dssim(pred * m, tgt * m)
        l_mse = (weight * m * (pred - tgt) ** 2).mean()
        l_mask = torch.mean((pmask - tmask) ** 2)
        return cfg.dssim_weight * l_dssim + cfg.mse_weight * l_mse + cfg.mask_weight * l_mask

    def step(self) -> tuple[float, float]:
        import torch

        cfg = self.tcfg
        dev = self.device
        xs, ys, ms, ws = (torch.from_numpy(a).to(dev) for a in self.src.batch(self.rng, cfg.batch, cfg))
        xd, yd, md, wd = (torch.from_numpy(a).to(dev) for a in self.dst.batch(self.rng, cfg.batch, cfg))
        self.model.train()
        ctx = torch.autocast("cuda", dtype=torch.float16) if self.amp else _null()
        with ctx:
            ps, pms = self.model.src(xs)
            pd, pmd = self.model.dst(xd)
        ps, pms, pd, pmd = ps.float(), pms.float(), pd.float(), pmd.float()
        ls = self._loss(ps, pms, ys, ms, ws)
        ld = self._loss(pd, pmd, yd, md, wd)
        loss = ls + ld
        if self.disc is not None:
            logits = self.disc(ps * ms)
            loss = loss + cfg.gan_power * torch.nn.functional.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
        if cfg.lr_half_life > 0:
            for g in self.opt.param_groups:
                g["lr"] = cfg.lr * 0.5 ** (self.iteration / cfg.lr_half_life)
        self.opt.zero_grad(set_to_none=True)
        if self.scaler:
            self.scaler.scale(loss).backward()
            if cfg.clip_grad > 0:
                self.scaler.unscale_(self.opt)
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.clip_grad)
            self.scaler.step(self.opt)
            self.scaler.update()
        else:
            loss.backward()
            if cfg.clip_grad > 0:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.clip_grad)
            self.opt.step()
        if self.disc is not None:
            real, fake = self.disc(ys * ms), self.disc(ps.detach() * ms)
            bce = torch.nn.functional.binary_cross_entropy_with_logits
            ld_loss = bce(real, torch.ones_like(real)) + bce(fake, torch.zeros_like(fake))
            self.opt_d.zero_grad(set_to_none=True)
            ld_loss.backward()
            self.opt_d.step()
        self.iteration += 1
        return float(ls.detach()), float(ld.detach())

    # --- the loop -------------------------------------------------------------------------------
    def train(self, iters: int, *, progress: bool = True) -> TrainReport:
        """Train until iteration ``iters`` (total, not additional); checkpoint every
        ``save_every`` and on Ctrl-C (then return with ``interrupted=True``)."""
        start = self.iteration
        t0 = time.perf_counter()
        stop = {"flag": False}
        old = None
        if threading.current_thread() is threading.main_thread():
            def _h(signum, frame):  # noqa: ARG001
                if stop["flag"]:
                    raise KeyboardInterrupt
                stop["flag"] = True
            old = signal.signal(signal.SIGINT, _h)
        bar = _Bar(progress, iters, start)
        ls = ld = float("nan")
        interrupted = False
        try:
            while self.iteration < iters:
                if stop["flag"]:
                    interrupted = True
                    break
                ls, ld = self.step()
                if self.iteration % self.tcfg.log_every == 0 or self.iteration == iters:
                    self.history.append((self.iteration, round(ls, 6), round(ld, 6)))
                bar.update(self.iteration, ls, ld)
                if self.iteration % self.tcfg.save_every == 0:
                    self.save()
                    self.preview()
        except KeyboardInterrupt:  # a second Ctrl-C: stop at once, the last checkpoint stays
            bar.close()
            raise
        finally:
            if old is not None:
                signal.signal(signal.SIGINT, old)
        bar.close()
        self.save()
        self.preview()
        return TrainReport(self.iteration, start, time.perf_counter() - t0, ls, ld, interrupted, self.problems)

    def preview(self, n: int = 4) -> Path:
        """preview.png: columns = samples; rows = src, src rebuilt, dst, dst rebuilt, swapped."""
        import torch

        from machinima.imageseq import write_image

        self.model.eval()
        k = min(n, len(self.src.images), len(self.dst.images))
        xs = torch.from_numpy(np.ascontiguousarray(self.src.images[:k].transpose(0, 3, 1, 2))).to(self.device)
        xd = torch.from_numpy(np.ascontiguousarray(self.dst.images[:k].transpose(0, 3, 1, 2))).to(self.device)
        with torch.no_grad():
            rows = [xs, self.model.src(xs)[0], xd, self.model.dst(xd)[0], self.model.swap(xd)[0]]
        grid = np.concatenate([np.concatenate(list(r.float().cpu().numpy().transpose(0, 2, 3, 1)), axis=1) for r in rows], axis=0)
        return write_image(self.dir / "preview.png", (np.clip(grid, 0, 1) * 255).astype(np.uint8))


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


class _Bar:
    def __init__(self, enabled: bool, total: int, start: int) -> None:
        self.p = None
        self.t0 = time.perf_counter()
        self.start = start
        if enabled and total > start:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.p = Progress(TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"), TimeRemainingColumn())
            self.p.start()
            self.task = self.p.add_task("train", total=total, completed=start, info="")

    def update(self, it: int, ls: float, ld: float) -> None:
        if self.p:
            dt = time.perf_counter() - self.t0
            rate = (it - self.start) / dt if dt > 0 else 0.0
            self.p.update(self.task, completed=it, info=f"{rate:.2f} it/s  {1000 / rate if rate else 0:.0f} ms/it  loss src {ls:.4f} dst {ld:.4f}")

    def close(self) -> None:
        if self.p:
            self.p.stop()


def read_model_doc(model_dir: str | Path) -> dict[str, Any]:
    p = Path(model_dir) / "model.json"
    if not p.exists():
        raise ModelError(f"no model at {model_dir} (model.json missing)", hint="train one with `machinima faceswap train --src A --dst B --model DIR`")
    try:
        doc = json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise ModelError(f"{p} is not valid JSON: {exc}") from None
    if doc.get("schema") != SCHEMA:
        raise ModelError(f"{p} is not a face-swap model (schema {doc.get('schema')!r})")
    if int(doc.get("version", 0)) > VERSION:
        raise ModelError(f"{p} is version {doc.get('version')}, newer than this machinima understands", hint="upgrade machinima")
    return doc


def load_model(model_dir: str | Path, device: str = "auto"):
    """(FaceModel in eval mode, model doc) from a model folder."""
    import torch

    from .model import FaceModel, ModelConfig

    doc = read_model_doc(model_dir)
    cfg = ModelConfig.from_doc(doc["model"])
    dev = pick_device(device)
    model = FaceModel(cfg).to(dev)
    ck = Path(model_dir) / "checkpoint.pt"
    if not ck.exists():
        raise ModelError(f"{ck} is missing", hint="train the model first (or restore the checkpoint)")
    try:
        st = torch.load(ck, map_location=dev, weights_only=False)
        model.load_state_dict(st["model"])
    except Exception as exc:  # noqa: BLE001
        raise ModelError(f"{ck} cannot be loaded: {exc}") from None
    model.eval()
    return model, doc


__all__ = ["Trainer", "TrainConfig", "TrainReport", "load_model", "read_model_doc", "dssim", "FacesetError"]

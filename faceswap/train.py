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

Split by job: ``train_config`` (TrainConfig, TrainReport, PRESETS), ``train_batches`` (a
faceset's augmented batches), ``modeldoc`` (model.json, loading a trained model); this module keeps
the loop (``Trainer``) and the loss, and every public name stays importable from here.
"""

from __future__ import annotations

import csv
import os
import signal
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from machinima.fsutil import atomic_write_json

from .errors import FacesetError, ModelError
from .modeldoc import SCHEMA, VERSION, load_model, pick_device, read_model_doc
from .train_batches import _Side
from .train_config import PRESETS, TrainConfig, TrainReport


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


__all__ = ["PRESETS", "SCHEMA", "VERSION", "Trainer", "TrainConfig", "TrainReport", "load_model", "pick_device", "read_model_doc", "dssim", "FacesetError"]

"""Checkpoints of a LoRA training run: the LoRA weights, optimizer, LR scheduler, scaler and RNG
states with the step and loss history, written atomically; loading one refuses other settings.
A mixin of ``lora.train.Trainer`` (it uses the trainer's models and state)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from machinima.fsutil import atomic_write_json

from .errors import TrainConfigError

KEEP_CHECKPOINTS = 2


def state_dict_to(sd: dict[str, Any], precision: str) -> dict[str, Any]:
    """Tensors detached onto the CPU in ``precision`` (fp32 / fp16 / bf16), ready to save."""
    import torch

    dt = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]
    return {k: v.detach().to("cpu", dt).contiguous() for k, v in sd.items()}


class Checkpoints:
    """Save, find and load the checkpoints in ``<work>/checkpoints/step-NNNNNN/``."""

    def latest_checkpoint(self) -> Path | None:
        d = self.work / "checkpoints"
        cks = sorted(p for p in d.glob("step-*") if (p / "state.json").exists()) if d.is_dir() else []
        return cks[-1] if cks else None

    def save_checkpoint(self) -> Path:
        import random

        import torch
        from safetensors.torch import save_file

        d = self.work / "checkpoints"
        final = d / f"step-{self.step:06d}"
        tmp = d / f".tmp-step-{self.step:06d}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        save_file(state_dict_to(self.trainable, "fp32"), str(tmp / "adapter.safetensors"))
        torch.save({"optimizer": self.optimizer.state_dict(), "lr_scheduler": self.lr_sched.state_dict(),
                    "scaler": self.scaler.state_dict() if self.scaler else None,
                    "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate(),
                            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}},
                   str(tmp / "state.pt"))
        atomic_write_json(tmp / "state.json", {"schema": "machinima.lora-checkpoint", "version": 1, "step": self.step,
                                               "settings": self.settings_key, "losses": self.losses,
                                               "eval_start": getattr(self, "eval_start", None)})
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        for old in sorted(p for p in d.glob("step-*") if p != final)[:-(KEEP_CHECKPOINTS - 1) or None]:
            shutil.rmtree(old, ignore_errors=True)
        return final

    def load_checkpoint(self, ck: Path) -> None:
        import random

        import torch
        from safetensors.torch import load_file

        doc = json.loads((ck / "state.json").read_text())
        if doc.get("settings") != self.settings_key:
            old = doc.get("settings", {})
            diff = [k for k in set(old.get("config", {})) | set(self.settings_key["config"])
                    if old.get("config", {}).get(k) != self.settings_key["config"].get(k)]
            for k in ("dataset_hash", "base_hash", "prior"):
                if old.get(k) != self.settings_key[k]:
                    diff.append(k.replace("_hash", ""))
            raise TrainConfigError(f"the checkpoint in {ck.parent} was made with other settings ({', '.join(sorted(diff))})",
                                   hint="rerun with the same settings to resume, or pass --fresh to start over (its checkpoints are deleted)")
        weights = load_file(str(ck / "adapter.safetensors"))
        with torch.no_grad():
            for k, p in self.trainable.items():
                p.copy_(weights[k].to(p.device, p.dtype))
        st = torch.load(str(ck / "state.pt"), weights_only=False)
        self.optimizer.load_state_dict(st["optimizer"])
        self.lr_sched.load_state_dict(st["lr_scheduler"])
        if self.scaler and st.get("scaler"):
            self.scaler.load_state_dict(st["scaler"])
        torch.set_rng_state(st["rng"]["torch"])
        np.random.set_state(st["rng"]["numpy"])
        random.setstate(st["rng"]["python"])
        if st["rng"].get("cuda") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(st["rng"]["cuda"])
        self.step = int(doc["step"])
        self.losses = list(doc.get("losses", []))
        self.eval_start = doc.get("eval_start")
        self.resumed_from = self.step

"""``machinima lora train ... --sweep "lr=1e-4,5e-5;rank=8,16" [--ray ADDRESS]``: several LoRAs.

A sweep is a grid over ``TrainConfig`` fields; each trial trains its own LoRA next to ``--out``
(``hero-lr5e-05-rank8.safetensors``, its own work folder) and is one Ray task with ``--ray``
(one trial per task, the GPUs a trial needs declared per task). A trial resumes from its own
checkpoints (the trainer's resume rule), so a lost worker's trial picks up where it last saved.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from pathlib import Path
from typing import Any

from .errors import TrainConfigError
from .train import TrainConfig


def expand(sweep: str) -> list[dict[str, Any]]:
    """``"lr=1e-4,5e-5;rank=8,16"`` -> the 4 trials' overrides, typed like ``TrainConfig``'s fields."""
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    axes: list[tuple[str, list[Any]]] = []
    for part in [p.strip() for p in sweep.split(";") if p.strip()]:
        name, _, values = part.partition("=")
        name = name.strip().replace("-", "_")
        if name not in fields or not values.strip():
            raise TrainConfigError(f"--sweep {part!r}: not NAME=V1,V2 with a training setting",
                                   hint=f"settings: {', '.join(sorted(n for n in fields if not n.startswith('_')))}")
        default = getattr(TrainConfig(), name)
        kind = type(default) if default is not None else (float if name in ("alpha",) else str)
        try:
            vals = [(v.strip().lower() in ("1", "true", "yes")) if kind is bool else kind(v.strip()) for v in values.split(",") if v.strip()]
        except ValueError:
            raise TrainConfigError(f"--sweep {part!r}: values must be {kind.__name__}") from None
        axes.append((name, vals))
    if not axes:
        raise TrainConfigError("--sweep is empty", hint='e.g. --sweep "lr=1e-4,5e-5;rank=8,16"')
    return [dict(zip([n for n, _ in axes], combo)) for combo in itertools.product(*[v for _, v in axes])]


def trial_name(overrides: dict[str, Any]) -> str:
    return "-".join(re.sub(r"[^A-Za-z0-9.+-]+", "", f"{k}{v}") for k, v in overrides.items())


def trial_out(out: Path, overrides: dict[str, Any]) -> Path:
    return out.with_name(f"{out.stem}-{trial_name(overrides)}{out.suffix or '.safetensors'}")


def run_trial(dataset: str, base: str, out: str, config: TrainConfig, overrides: dict[str, Any], train_kw: dict[str, Any],
              threads: int | None = None) -> dict[str, Any]:
    """One trial (a Ray task, or in-process): train (torch at ``threads``), return what a table of trials shows."""
    from .threads import torch_threads
    from .train import train

    cfg = dataclasses.replace(config, **overrides)
    with torch_threads(threads):
        res = train(dataset, base, out, cfg, **train_kw)
    return {"trial": trial_name(overrides), "overrides": overrides, "status": res.status, "out": str(res.out) if res.out else None,
            "steps": res.step, "it_per_s": round(res.it_per_s, 3), "eval_loss_start": res.eval_loss_start, "eval_loss_end": res.eval_loss_end}


def run_sweep(dataset: str | Path, base: str | Path, out: str | Path, config: TrainConfig, sweep: str, *, ray: str | None = None,
              num_gpus: float | None = None, num_cpus: float | None = None, threads: int | None = None, progress: bool = True,
              **train_kw: Any) -> list[dict[str, Any]]:
    """Every trial of the grid, in-process one after another, or on Ray one trial per task (a
    task declares ``threads`` CPUs, default 1, and its torch uses that many)."""
    trials = expand(sweep)
    out = Path(out)
    calls = [{"dataset": str(Path(dataset).resolve()), "base": str(Path(base).resolve()), "out": str(trial_out(out.resolve(), o)),
              "config": config, "overrides": o, "train_kw": {"progress": progress and not ray, **train_kw}, "threads": threads if threads or not ray else 1} for o in trials]
    if not ray:
        return [run_trial(**c) for c in calls]
    from machinima.distributed import run_tasks

    gpus = num_gpus if num_gpus is not None else (1.0 if str(config.device or "").startswith("cuda") else 0.0)
    rep = run_tasks(run_trial, calls, address=ray, resources={"num_cpus": num_cpus or float(threads or 1), **({"num_gpus": gpus} if gpus else {})},
                    labels=[f"trial {trial_name(o)}" for o in trials], progress=progress, description=f"LoRA sweep ({len(trials)} trials) on Ray",
                    probe=out.resolve().parent)
    return rep.results

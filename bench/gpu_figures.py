"""GPU figures (issue 25): the project's GPU paths against the plain loops a user would write.

    bash bench/gpu.sh                          # on a CUDA machine: the figures (<= 8 minutes)
    DEV=cpu SMOKE=1 COMPILE=0 bash bench/gpu.sh  # tiny models on the CPU: checks the script (seconds)

Sections, cheapest and surest first, each figure printed as its own JSON line the moment it is
measured (and appended to ``$OUT/gpu.jsonl`` when OUT is set), so a timeout loses nothing; the
last line is every figure in one JSON object:

- ``sd``      the plain diffusers per-frame loop vs the stylize runner, SD 1.5-shaped random
              weights, 512 px, 20 steps x 0.5 strength, CFG 7.5, one ControlNet; eager
              (batch 8, fp16, channels_last) and cadence 4 with propagation; a probe of the
              UNet+ControlNet step and the VAE (the kernel figures beside the runner's).
- ``lora``    the plain diffusers + peft loop vs ``lora.train.Trainer`` (bench/lora_train.py's
              loops), batch 4 at 512 px, rank 16.
- ``faceswap`` merge with the network at 1080p: in memory (the kernel figure) and
              ``faceswap.merge.merge`` disk to disk, beside the pipeline without the network.
- ``compiled`` the runner with torch.compile'd UNet, ControlNet and VAE: every frame and cadence 4.

Environment: DEV (cuda | cpu), SMOKE=1 (tiny models, small frames), COMPILE (1 | 0),
BUDGET_S (seconds this script may take; sections that would not fit are skipped and say so),
SECTIONS (comma list), OUT (folder for gpu.jsonl).
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.append(str(ROOT / "bench"))  # after the packages: bench/stylize.py must not hide stylize/


class Figures:
    """Every figure once: printed as a JSON line at once, appended to $OUT/gpu.jsonl, kept."""

    def __init__(self, out: str | None) -> None:
        self.data: dict[str, Any] = {}
        self.path = Path(out) / "gpu.jsonl" if out else None
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def put(self, key: str, value: Any) -> Any:
        self.data[key] = value
        line = json.dumps({key: value})
        print(line, flush=True)
        if self.path:
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(line + "\n")
        return value


@dataclass
class Run:
    """What every section needs: device, sizes, the clock and a scratch folder."""

    dev: str
    smoke: bool
    compile: bool
    tmp: Path
    fig: Figures
    deadline: float
    started: float = field(default_factory=time.perf_counter)

    def left(self) -> float:
        return self.deadline - time.perf_counter()

    def sync(self) -> None:
        if self.dev == "cuda":
            import torch

            torch.cuda.synchronize()

    def timed(self, fn: Callable[[], Any]) -> tuple[Any, float]:
        """``fn()`` and its wall seconds, the device drained before and after."""
        self.sync()
        t0 = time.perf_counter()
        out = fn()
        self.sync()
        return out, time.perf_counter() - t0

    def peak_gib(self) -> float | None:
        if self.dev != "cuda":
            return None
        import torch

        return round(torch.cuda.max_memory_allocated() / 2**30, 2)


def bench_module(name: str) -> Any:
    """``bench/<name>.py`` as a module named ``bench_<name>`` (some share a package's name)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(mod)
    return mod


def header(run: Run) -> None:
    import numpy as np
    import torch

    put = run.fig.put
    put("date", time.strftime("%Y-%m-%d %H:%M:%S %Z"))
    put("device", torch.cuda.get_device_name() if run.dev == "cuda" else "cpu")
    if run.dev == "cuda":
        try:
            q = "name,driver_version,memory.total,clocks.sm,clocks.max.sm,power.limit"
            line = subprocess.run(["nvidia-smi", f"--query-gpu={q}", "--format=csv,noheader"], capture_output=True, text=True, timeout=20).stdout
            put("nvidia_smi", dict(zip(q.split(","), [x.strip() for x in line.splitlines()[0].split(",")])))
        except (OSError, IndexError, subprocess.SubprocessError) as exc:
            put("nvidia_smi", f"unavailable: {exc}")
    vers = {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
            "cuda": torch.version.cuda if run.dev == "cuda" else None}
    for mod in ("diffusers", "transformers", "peft", "cv2"):
        try:
            vers[mod] = __import__(mod).__version__
        except ImportError as exc:
            vers[mod] = f"missing: {exc}"
    put("versions", vers)
    put("machine", {"cpus": os.cpu_count(), "loadavg_start": [round(x, 2) for x in os.getloadavg()], "smoke": run.smoke})


def section(run: Run, name: str, fn: Callable[[Run], None], need_s: float) -> None:
    """Run one section unless too little time is left; an error is a figure, not the end."""
    if run.left() < need_s:
        run.fig.put(f"{name}.skipped", f"needs about {need_s:.0f} s, {run.left():.0f} s left")
        return
    t0 = time.perf_counter()
    try:
        fn(run)
    except Exception as exc:  # noqa: BLE001 - report and go on to the next section
        run.fig.put(f"{name}.error", f"{type(exc).__name__}: {str(exc)[:400]}")
        traceback.print_exc(file=sys.stderr)
    run.fig.put(f"{name}.seconds", round(time.perf_counter() - t0, 1))


def main() -> None:
    import logging
    import warnings

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")
    logging.getLogger("diffusers").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    import numpy as np
    import torch

    np.seterr(all="ignore")  # random weights in fp16 may give NaN pictures: the timing is what counts
    dev = os.environ.get("DEV", "cuda")
    if dev == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run with DEV=cpu SMOKE=1 for the smoke run")
    smoke = os.environ.get("SMOKE", "0") == "1"
    if dev == "cpu":
        torch.set_num_threads(1)  # tiny models: one thread is fastest on a shared machine
    else:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    budget = float(os.environ.get("BUDGET_S", "450"))
    wanted = os.environ.get("SECTIONS", "sd,lora,faceswap,compiled").split(",")
    import gpu_faceswap
    import gpu_lora
    import gpu_sd

    plan = [("sd", gpu_sd.eager, 60), ("lora", gpu_lora.train, 40), ("faceswap", gpu_faceswap.merge_1080p, 30),
            ("compiled", gpu_sd.compiled, 200)]
    with tempfile.TemporaryDirectory(prefix="gpu-bench-") as td:
        run = Run(dev, smoke, os.environ.get("COMPILE", "1") == "1", Path(td), Figures(os.environ.get("OUT")),
                  deadline=time.perf_counter() + budget)
        header(run)
        shared: dict[str, Any] = {}
        for name, fn, need in plan:
            if name in wanted:
                section(run, name, lambda r, fn=fn: fn(r, shared), 1 if smoke else need)
        run.fig.put("loadavg_end", [round(x, 2) for x in os.getloadavg()])
        run.fig.put("seconds", round(time.perf_counter() - run.started, 1))
    print(json.dumps(run.fig.data), flush=True)


if __name__ == "__main__":
    main()

"""AnimateDiff sliding-window overhead: N frames in overlapping windows vs one window covering the
same frames (tiny random models on CPU: the ratio is what carries over; absolute fps do not).

    .venv/bin/python bench/animatediff.py [--quick]

Prints one JSON object: frames/s of each, the overhead ratio, windows per step, and the cost
model's prediction (UNet frame-passes per step) for comparison; ``steps``/``strength`` are the
look's and ``denoising_steps_run`` the steps the loop was seen to run (counted by its step hook:
img2img runs steps x strength of them), with the machine's load.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    import numpy as np
    import torch

    from stylize.animatediff import parse_animate_look, tiny_engine, tiny_motion_components

    torch.set_num_threads(1)
    n = 24 if args.quick else 32
    reps = 1 if args.quick else 2
    steps, strength = 8, 0.5
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (32, 32, 3), dtype=np.uint8) for _ in range(n)]
    comps = tiny_motion_components(0, max_frames=32)

    def run(length: int, overlap: int, shift: bool = True) -> dict:
        doc = {"engine": "diffusion", "model": {"base": "tiny", "steps": steps, "strength": strength, "guidance": 7.5},
               "animatediff": {"motion_adapter": "tiny", "context_length": length, "context_overlap": overlap, "context_shift": shift}}
        look, motion = parse_animate_look(doc)
        eng = tiny_engine(look, motion, comps)
        windows: list[int] = []
        eng.video(frames[:8], [], prompts=[("a", "b")] * 8, seed=0)  # warm-up
        best = float("inf")
        for _ in range(reps):
            windows.clear()
            t0 = time.perf_counter()
            eng.video(frames, [], prompts=[("a", "b")] * n, seed=1, on_step=lambda d, t, w: windows.append(w))
            best = min(best, time.perf_counter() - t0)
        cw = motion.windows()
        frame_passes = sum(len(w) for s in range(len(windows)) for w in cw.windows(n, s)) / len(windows)
        return {"seconds": round(best, 3), "fps": round(n / best, 3), "windows_per_step": round(float(np.mean(windows)), 2),
                "unet_frames_per_step": round(frame_passes, 1), "denoising_steps_run": len(windows)}

    one = run(n, 0)                       # baseline: one window over every frame
    slid = run(8, 4)                      # 8-frame windows, overlap 4, shifting grid
    fixed = run(8, 4, shift=False)        # same, grid fixed
    out = {
        "bench": "animatediff", "frames": n, "size": "32x32", "steps": steps, "strength": strength,
        "denoising_steps_run": one["denoising_steps_run"], "device": "cpu (1 thread), tiny random models",
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "one_window": one, "sliding_8_overlap_4_shift": slid, "sliding_8_overlap_4_fixed": fixed,
        "overhead_ratio_shift": round(slid["seconds"] / one["seconds"], 2),
        "overhead_ratio_fixed": round(fixed["seconds"] / one["seconds"], 2),
        "predicted_ratio_fixed": round(fixed["unet_frames_per_step"] / n, 2),
        "note": "sliding windows cost ~ frames passed through the UNet per step / frames (hop = length - overlap); "
                "a single window of a long take is cheaper in UNet passes but its attention memory grows with frames "
                "and motion adapters are trained on 16",
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()

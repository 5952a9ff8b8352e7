"""bench/gpu.sh, the GPU figures script, run as a smoke run on the CPU (tiny models, seconds), so
it cannot rot between the rare runs on a GPU; and the truth its face-swap section stands on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_gpu_script_smoke_run_prints_every_figure_as_it_goes(tmp_path):
    env = {**os.environ, "DEV": "cpu", "SMOKE": "1", "COMPILE": "0", "OUT": str(tmp_path), "PYTHON": sys.executable,
           "PYTHONPATH": str(ROOT)}
    p = subprocess.run(["bash", str(ROOT / "bench" / "gpu.sh")], capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    lines = [json.loads(x) for x in p.stdout.splitlines() if x.startswith("{")]
    final = lines[-1]
    errors = {k: v for k, v in final.items() if k.endswith((".error", ".skipped")) and k != "compiled.skipped"}
    assert not errors, errors
    # one line per figure, printed before the summary and kept in $OUT/gpu.jsonl
    per_figure = {k: v for line in lines[:-1] for k, v in line.items()}
    assert per_figure == final
    saved = {k: v for x in (tmp_path / "gpu.jsonl").read_text().splitlines() for k, v in json.loads(x).items()}
    assert saved == final
    assert final["sd.plain_fps"] > 0 and final["sd.runner_eager"]["fps"] > 0
    assert final["sd.runner_eager"]["keyframes"] == final["sd.runner_eager"]["frames"]
    cad = final["sd.cadence4_eager"]
    assert cad["keyframes"] == 3 and cad["propagated"] == cad["frames"] - 3
    assert final["lora.plain"]["it_per_s"] > 0 and final["lora.ours"]["it_per_s"] > 0 and final["lora.speedup"] > 0
    mem = final["faceswap.in_memory_ms_per_frame"]
    assert all(v > 0 for v in mem.values()) and set(final["faceswap.disk_to_disk_ms_per_frame"]) == {"alpha", "seamless"}
    assert final["compiled.skipped"] == "COMPILE=0"
    assert final["versions"]["diffusers"] and final["machine"]["smoke"] is True


def test_gpu_script_refuses_a_missing_gpu_in_one_line(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    env = {**os.environ, "DEV": "cuda", "PYTHON": sys.executable, "PYTHONPATH": str(ROOT)}
    p = subprocess.run(["bash", str(ROOT / "bench" / "gpu.sh")], capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode != 0 and p.stderr.strip().splitlines() == ["no CUDA device: run with DEV=cpu SMOKE=1 for the smoke run"]


def test_merge_bench_landmarks_are_where_the_detector_finds_the_face():
    """The merge figures use landmarks moved with the photo instead of a detector; mediapipe,
    run on a moved frame, must find the face there (mean error under 3 % of the face's width)."""
    sys.path.append(str(ROOT / "bench"))
    import gpu_faceswap

    from faceswap.backends import get_backend

    frames, lms = gpu_faceswap.moving_face(12, 960, 540)
    be = get_backend("mediapipe")
    try:
        for i in (0, 11):
            faces = be.detect(frames[i])
            assert len(faces) == 1
            width = lms[i][:, 0].max() - lms[i][:, 0].min()
            err = np.linalg.norm(faces[0].landmarks - lms[i], axis=1).mean()
            assert err < 0.03 * width, (i, err, width)
        known = gpu_faceswap.KnownFaces(frames, lms)
        assert np.array_equal(known.detect(frames[5].copy())[0].landmarks, lms[5])
        assert known.detect(np.zeros_like(frames[0])) == []
    finally:
        be.close()

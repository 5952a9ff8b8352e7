"""`machinima lora tiny-base DIR`: the documented way to try the LoRA guide without SD 1.5
weights. diffusers itself must load what it writes, and a folder in use is refused."""

from __future__ import annotations

import subprocess
import sys


def test_tiny_base_loads_in_diffusers_and_refuses_a_used_folder(tmp_path):
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTokenizer

    run = lambda: subprocess.run([sys.executable, "-m", "machinima", "lora", "tiny-base", "tiny"], capture_output=True, text=True,
                                 cwd=tmp_path, timeout=180)
    r = run()
    assert r.returncode == 0, r.stderr
    unet = UNet2DConditionModel.from_pretrained(tmp_path / "tiny" / "unet")
    assert unet.config.cross_attention_dim == 32
    assert CLIPTokenizer.from_pretrained(tmp_path / "tiny" / "tokenizer")("ohwx person").input_ids
    again = run()
    assert again.returncode != 0 and "not empty" in again.stderr and "Traceback" not in again.stderr

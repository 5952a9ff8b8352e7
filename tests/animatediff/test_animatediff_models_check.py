"""`machinima models check` against folders diffusers itself wrote: what it calls ready is what
the shipped look's engine loads (test_animatediff_run runs it on these very folders); what it
calls incomplete is what diffusers refuses."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from animatediff_helpers import write_tiny_models


def check(project, *looks):
    r = subprocess.run([sys.executable, "-m", "machinima", "models", "check", *[a for x in looks for a in ("--look", x)], "--json"],
                       capture_output=True, text=True, cwd=project, timeout=120)
    return r.returncode, json.loads(r.stdout), r.stderr


def required(doc, user):
    return {n["what"]: n for n in doc["needs"] if n["user"] == user and not n["fallback"]}


def test_models_check_says_ready_missing_and_incomplete_as_diffusers_sees_them(threads, tmp_path):
    from diffusers import StableDiffusionPipeline

    models = tmp_path / "models"
    write_tiny_models(models)
    (tmp_path / "machinima.toml").write_text('models_dir = "models"\n')
    code, doc, err = check(tmp_path, "animatediff-sd15")
    need = required(doc, "look animatediff-sd15")
    assert code == 0, (err, doc)
    assert {k: v["state"] for k, v in need.items()} == {"base model": "present", "ControlNet for 'depth'": "present", "motion adapter": "present"}
    present = dict((x["path"], x["what"]) for x in doc["present"])
    assert present["sd15"] == "diffusers pipeline" and present["motion/animatediff-v1-5-3"] == "MotionAdapter folder"
    # every shipped look is listed when none is named; the classical one needs no weights
    code, doc, _ = check(tmp_path)
    assert code == 0 and not required(doc, "look painted") and required(doc, "look watercolor-sd15")["LoRA"]["state"] == "missing"

    # a base without its UNet weights: diffusers refuses it, the check says why
    for w in (models / "sd15" / "unet").glob("*.safetensors"):
        w.unlink()
    with pytest.raises((OSError, EnvironmentError, ValueError)):
        StableDiffusionPipeline.from_pretrained(str(models / "sd15"), local_files_only=True)
    shutil.rmtree(models / "motion")
    code, doc, _ = check(tmp_path, "animatediff-sd15")
    need = required(doc, "look animatediff-sd15")
    assert code == 1
    assert need["base model"]["state"] == "incomplete" and "unet/ has no weights" in need["base model"]["detail"]
    assert need["motion adapter"]["state"] == "missing" and need["motion adapter"]["path"] == str(models / "motion" / "animatediff-v1-5-3")
    assert need["ControlNet for 'depth'"]["state"] == "present"

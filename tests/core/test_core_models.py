"""The hub's offline model checks: each layout is judged by the files its loader opens; one bad
look does not hide the others' needs. (Folders written by diffusers itself:
tests/animatediff/test_animatediff_models_check.py.)"""

from __future__ import annotations

from machinima.errors import MachinimaError
from machinima.models import ModelNeed, check_models, inventory, probe


def need(path, layout, **kw):
    return ModelNeed("look t", "thing", str(path), layout, **kw)


def test_layouts_are_judged_by_the_files_a_loader_opens(tmp_path):
    m = tmp_path / "models"
    (m / "loras").mkdir(parents=True)
    (m / "loras" / "a.safetensors").write_bytes(b"x" * 8)
    (m / "loras" / "empty.safetensors").write_bytes(b"")
    (m / "loras" / "a.pth").write_bytes(b"x")
    assert probe(need("loras/a.safetensors", "file", suffixes=(".safetensors",)), m).ok
    assert probe(need("loras/empty.safetensors", "file", suffixes=(".safetensors",)), m).detail == "the file is empty"
    assert "not a .safetensors file" in probe(need("loras/a.pth", "file", suffixes=(".safetensors",)), m).detail
    assert probe(need("loras/b.safetensors", "file"), m).state == "missing"
    assert probe(need(m / "loras" / "a.safetensors", "file"), m).ok  # absolute paths as they are
    ann = m / "annotators"
    ann.mkdir()
    (ann / "sk_model.pth").write_bytes(b"x")
    lineart = need("annotators", "files", files=(("sk_model.pth", "sk_model2.pth"),), fallback="OpenCV")
    assert probe(lineart, m).state == "incomplete"
    (ann / "sk_model2.pth").write_bytes(b"x")
    assert probe(lineart, m).ok
    depth = m / "depth" / "dpt"
    depth.mkdir(parents=True)
    (depth / "config.json").write_text("{}")
    assert probe(need("depth/dpt", "transformers"), m).detail == "config.json but no weights file"
    (depth / "model.safetensors").write_bytes(b"x")
    assert probe(need("depth/dpt", "transformers"), m).ok
    base = m / "sd15"
    (base / "unet").mkdir(parents=True)
    (base / "model_index.json").write_text('{"_class_name": "StableDiffusionPipeline", "unet": ["diffusers", "UNet2DConditionModel"],'
                                          ' "vae": ["diffusers", "AutoencoderKL"], "safety_checker": [null, null]}')
    (base / "unet" / "config.json").write_text("{}")
    (base / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"x")
    assert probe(need("sd15", "pipeline"), m).detail == "vae/ is missing (model_index.json lists it)"
    assert probe(need("sd15", "config"), m).detail == "vae/ is missing (model_index.json lists it)"
    (base / "vae").mkdir()
    (base / "vae" / "config.json").write_text("{}")
    assert probe(need("sd15", "config"), m).ok and probe(need("sd15", "pipeline"), m).detail == "vae/ has no weights"
    assert probe(need("loras/a.safetensors", "pipeline"), m).ok  # a single-file checkpoint
    assert dict(inventory(m)) == {"annotators": "folder of 2 weights file(s)", "depth/dpt": "transformers folder",
                                  "loras": "folder of 3 weights file(s)", "sd15": "diffusers pipeline (vae/ has no weights)"}


def test_a_bad_ref_is_a_problem_line_and_the_others_are_still_checked(tmp_path):
    def provider(refs):
        if refs == ["broken"]:
            raise MachinimaError("look file broken does not exist")
        return [ModelNeed(f"look {r}", "base", "sd15", "pipeline") for r in refs]

    rep = check_models(tmp_path, ["good", "broken", "other"], sources=[("stylize", provider)])
    assert [c.need.user for c in rep.checks] == ["look good", "look other"] and rep.problems == ["stylize: look file broken does not exist"]
    assert [c.need.user for c in rep.missing({"look good"})] == ["look good"]


def test_no_provider_is_said_not_passed_over(tmp_path):
    """An install whose entry points are stale lists nothing to check: that is a problem line
    (exit 1), never an empty "all ready"."""
    rep = check_models(tmp_path, [], sources=[])
    assert rep.problems and "reinstall machinima" in rep.problems[0] and not rep.checks

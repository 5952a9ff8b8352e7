from pathlib import Path

import pytest

import stylize
from stylize.look import Look, LookError, load_look

LOOKS = Path(stylize.__file__).parent / "looks"


def test_shipped_looks_parse():
    names = sorted(p.name for p in LOOKS.glob("*.toml"))
    assert names, "example looks ship inside the package"
    for p in LOOKS.glob("*.toml"):
        look = load_look(p)
        assert look.version == 1
        doc = look.to_doc()
        assert Look.from_doc(doc).to_doc() == doc  # round trip, the document untouched
    wc = load_look(LOOKS / "watercolor-sd15.toml")
    assert [c.kind for c in wc.controls] == ["depth", "pose"]
    assert wc.controls[1].end == 0.8 and wc.model.loras[0].weight == 0.8
    assert wc.prompt_for(10)[0].startswith("watercolor painting, dawn") and wc.prompt_for(60)[0] == wc.prompt
    assert wc.shot_of(60).strength == 0.6


@pytest.mark.parametrize("doc,field", [
    ({"engine": "magic"}, "engine"),
    ({"cadence": {"mode": "sometimes"}}, "cadence.mode"),
    ({"cadence": {"every": 0}}, "cadence.every"),
    ({"model": {"strength": 1.5}}, "strength"),
    ({"model": {"steps": "many"}}, "steps"),
    ({"colour": 1}, "colour"),
    ({"controls": [{"kind": "depth", "start": 0.8, "end": 0.2}]}, "start < end"),
    ({"controls": [{"kind": "xray"}]}, "xray"),
    ({"shots": [{"name": "a", "frames": [0, 10]}, {"name": "b", "frames": [5, 20]}]}, "overlap"),
    ({"shots": [{"name": "a", "frames": [10, 0]}]}, "frames"),
    ({"engine": "diffusion"}, "base"),
    ({"runtime": {"width": 100}}, "multiple of 8"),
    ({"version": 99}, "version"),
    ({"schema": "other"}, "schema"),
])
def test_bad_looks_name_the_field(doc, field):
    with pytest.raises(LookError, match=field.replace(".", r"\.").replace("(", r"\(")):
        Look.from_doc(doc)


def test_missing_look_file_and_bad_toml(tmp_path):
    with pytest.raises(LookError, match="does not exist.*painted"):
        load_look(tmp_path / "nope.toml")
    assert load_look("painted").engine == "classical"  # shipped looks by name
    p = tmp_path / "bad.toml"
    p.write_text("engine = [")
    with pytest.raises(LookError, match="bad.toml"):
        load_look(p)


def test_global_params_leave_shots_and_speed_options_out():
    a = Look.from_doc({"shots": [{"name": "a", "frames": [0, 3], "prompt": "x"}], "runtime": {"compile": True}})
    b = Look.from_doc({"shots": [{"name": "a", "frames": [0, 3], "prompt": "y"}]})
    assert a.global_params() == b.global_params()
    assert Look.from_doc(a.to_doc()).to_doc() == a.to_doc()


def test_sections_of_other_steps_are_kept_not_rejected():
    look = Look.from_doc({"animatediff": {"context_length": 16}, "engine": "classical"})
    assert look.other == {"animatediff": {"context_length": 16}} and look.to_doc()["animatediff"]["context_length"] == 16
    with pytest.raises(LookError, match="unknown setting 'animatediffx'"):
        Look.from_doc({"animatediffx": {}})

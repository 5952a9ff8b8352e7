"""Set files without Blender: parsing, units, errors that name the entry and the field, write-back."""

from __future__ import annotations

import json

import numpy as np
import pytest

from blender_addon.errors import SetFileError
from blender_addon.kit import KIT, kit_geometry, kit_params, wall_geometry
from blender_addon.setfile import EXAMPLE_SET, append_prop, load_set, next_prop_id, parse_set


def test_example_set_parses():
    spec = load_set(EXAMPLE_SET)
    assert spec.name == "diner"
    assert len(spec.walls) == 3 and len(spec.props) == 8 and len(spec.lights) == 4 and len(spec.cameras) == 2
    assert set(spec.materials) == {"floor", "wall", "wood", "chrome", "screen"}
    assert [o.kind for o in spec.walls[0].openings] == ["door", "window"]
    assert spec.groups() == ["furniture"]
    assert {l.type for l in spec.lights} == {"sun", "area", "point", "spot"}
    assert len(spec.entries()) == 18


def test_units_convert_lengths_not_angles():
    spec = parse_set({"set": {"units": "cm"}, "props": [{"id": "b", "kit": "box", "size": [100, 50, 20], "position": [10, 0, -20],
                                                          "rotation": [0, 90, 0]}],
                      "cameras": [{"id": "c", "position": [0, 160, 500], "target": [0, 100, 0], "lens": 35}]})
    p = spec.props[0]
    assert p.params["size"] == pytest.approx((1.0, 0.5, 0.2))
    assert p.position == pytest.approx((0.1, 0.0, -0.2))
    assert p.rotation == (0.0, 90.0, 0.0)
    assert spec.cameras[0].lens == 35.0 and spec.cameras[0].position == pytest.approx((0, 1.6, 5.0))


@pytest.mark.parametrize("doc, where, field", [
    ({"props": [{"id": "t", "kit": "tabel"}]}, "props[0] (id 't')", "kit"),
    ({"props": [{"id": "t", "kit": "box", "size": [1, "big", 1]}]}, "props[0] (id 't')", "size"),
    ({"props": [{"id": "t", "kit": "box", "colour": "red"}]}, "props[0] (id 't')", "colour"),
    ({"props": [{"id": "t", "kit": "column", "segments": 2.5}]}, "props[0] (id 't')", "segments"),
    ({"props": [{"id": "t", "kit": "box", "material": "gold"}]}, "props[0] (id 't')", "material"),
    ({"props": [{"id": "a", "kit": "box"}, {"id": "a", "kit": "box"}]}, "props[1]", "id"),
    ({"props": [{"kit": "box"}]}, "props[0]", "id"),
    ({"walls": [{"id": "w", "from": [0, 0], "to": [2, 0], "openings": [{"kind": "door", "at": 1.5, "width": 1.0}]}]},
     "walls[0] (id 'w').openings[0]", "width"),
    ({"walls": [{"id": "w", "from": [0, 0], "to": [0, 0]}]}, "walls[0] (id 'w')", "to"),
    ({"lights": [{"id": "l", "type": "laser"}]}, "lights[0] (id 'l')", "type"),
    ({"cameras": [{"id": "c", "position": [0, 1, 0], "target": [0, 1, 0]}]}, "cameras[0] (id 'c')", "target"),
    ({"cameras": [{"id": "c", "position": [0, 1, 5], "target": [0, 1, 0], "clip": [10, 1]}]}, "cameras[0] (id 'c')", "clip"),
    ({"materials": {"m": {"color": "#zzzzzz"}}}, "materials.m", "color"),
    ({"set": {"units": "furlong"}}, "[set]", "units"),
])
def test_bad_entry_names_entry_and_field(doc, where, field):
    with pytest.raises(SetFileError) as err:
        parse_set(doc, file="s.toml")
    msg = str(err.value)
    assert msg.startswith(f"set file s.toml: {where}"), msg
    assert f"field {field!r}" in msg, msg


def test_missing_asset_and_bad_toml(tmp_path):
    with pytest.raises(SetFileError, match=r"props\[0\] \(id 'lamp'\): field 'asset': file .*lamp.glb does not exist"):
        parse_set({"props": [{"id": "lamp", "asset": "lamp.glb"}]}, base=tmp_path, file="s.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[set\nname = 1")
    with pytest.raises(SetFileError, match="bad.toml cannot be parsed"):
        load_set(bad)
    with pytest.raises(SetFileError, match="does not exist"):
        load_set(tmp_path / "nope.toml")


def test_append_prop_keeps_toml_comments_and_checks_first(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text("# my set, my comments\n[set]\nname = \"s\"\n\n[[props]]\nid = \"box1\"\nkit = \"box\"\n")
    spec = load_set(path)
    pid = next_prop_id(spec, "box")
    assert pid == "box2"
    spec = append_prop(path, {"id": pid, "kit": "box", "position": [1.5, 0.0, -2.0]})
    assert [p.id for p in spec.props] == ["box1", "box2"]
    assert spec.props[1].position == (1.5, 0.0, -2.0)
    assert path.read_text().startswith("# my set, my comments\n")
    before = path.read_text()
    with pytest.raises(SetFileError, match="field 'kit'"):
        append_prop(path, {"id": "x", "kit": "spaceship"})
    with pytest.raises(SetFileError, match="already exists"):
        append_prop(path, {"id": "box1", "kit": "box"})
    assert path.read_text() == before
    jpath = tmp_path / "s.json"
    jpath.write_text(json.dumps({"set": {"name": "j"}, "props": []}))
    assert [p.id for p in append_prop(jpath, {"id": "c1", "kit": "chair"}).props] == ["c1"]


@pytest.mark.parametrize("kind", sorted(KIT))
def test_kit_geometry_is_valid_and_stands_on_the_floor(kind):
    v, faces = kit_geometry(kind, kit_params(kind, {}))
    assert np.isfinite(v).all() and len(faces) > 0
    assert all(len(f) >= 3 and min(f) >= 0 and max(f) < len(v) for f in faces)
    assert v[:, 1].min() == pytest.approx(0.0, abs=1e-9)


def test_wall_openings_leave_holes():
    from blender_addon.setfile import OpeningSpec

    v, faces = wall_geometry(4.0, 3.0, 0.2, [OpeningSpec("door", 1.0, 1.0, 2.0, 0.0)])
    # boxes: left of the door, above the door, right of the door (no box below a door)
    assert len(faces) == 18
    boxes = v.reshape(-1, 8, 3)
    inside = [(b[:, 0].min() < 1.5 < b[:, 0].max()) and (b[:, 1].min() < 1.0 < b[:, 1].max()) for b in boxes]
    assert not any(inside)

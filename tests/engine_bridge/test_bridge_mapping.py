"""The mapping file: several engines, performer -> avatar, bones; errors name what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

import engine_bridge
from engine_bridge.errors import MappingError, PerformerMissingError
from engine_bridge.mapping import load_mapping, mapping_from_flags, parse_address, parse_mapping

EXAMPLE = Path(engine_bridge.__file__).parent / "examples" / "mapping.toml"


def test_example_mapping_loads():
    m = load_mapping(EXAMPLE)
    assert [e.target for e in m.engines] == ["vmc", "vrchat", "plugin"]
    unity = m.engines[0]
    assert [(a.performer, a.avatar, a.port) for a in unity.avatars] == [("alice", "Alice_VRM", None), ("bob", "Bob_VRM", 39541)]
    assert len(unity.avatars[1].bone_indices()) == 20
    vrc = m.engines[1]
    assert vrc.avatars[0].trackers == {"1": "Hips", "2": "LeftFoot", "3": "RightFoot", "4": "Chest", "head": "Head"}
    assert vrc.avatars[0].offsets["2"]["position"] == [0.0, -0.05, 0.0]
    assert m.performers() == ["alice", "bob"]


def _doc(**avatar):
    return {"engine": [{"name": "u", "target": "vmc", "avatar": [{"performer": "alice", **avatar}]}]}


def test_unknown_bone_is_named_with_a_suggestion():
    with pytest.raises(MappingError) as e:
        parse_mapping(_doc(bones=["Hips", "LeftUperArm"]))
    assert "'LeftUperArm'" in str(e.value) and "LeftUpperArm" in str(e.value) and "'u'" in str(e.value)


def test_unknown_tracker_bone_and_slot():
    doc = {"engine": [{"name": "v", "target": "vrchat", "avatar": [{"performer": "a", "trackers": {"1": "Hip"}}]}]}
    with pytest.raises(MappingError, match="unknown bone 'Hip'"):
        parse_mapping(doc)
    doc["engine"][0]["avatar"][0]["trackers"] = {"9": "Hips"}
    with pytest.raises(MappingError, match="tracker slot '9'"):
        parse_mapping(doc)


@pytest.mark.parametrize(
    "doc, words",
    [
        ({"engine": [{"target": "unreal-magic", "avatar": [{"performer": "a"}]}]}, "unknown target 'unreal-magic'"),
        ({"engine": [{"target": "vmc", "avatar": [{"performer": "a"}], "colour": 1}]}, "unknown key 'colour'"),
        ({"engine": [{"target": "vmc", "avatar": [{"performer": "a"}, {"performer": "b"}]}]}, "two avatars on port"),
        ({"engine": [{"target": "vmc", "port": 70000, "avatar": [{"performer": "a"}]}]}, "port must be"),
        ({"engine": [{"target": "vmc"}]}, "which performer"),
        ({"engine": [{"target": "vmc", "avatar": [{"avatar": "x"}]}]}, "'performer' is missing"),
        ({"version": 7, "engine": []}, "version 7"),
        ({}, "no [[engine]]"),
        ({"engine": [{"target": "vrchat", "calibration": {"scale": -1}, "avatar": [{"performer": "a"}]}]}, "scale must be positive"),
    ],
)
def test_bad_mappings_say_what_is_wrong(doc, words):
    with pytest.raises(MappingError) as e:
        parse_mapping(doc)
    assert words in str(e.value)


def test_missing_performer_is_a_clear_error():
    m = load_mapping(EXAMPLE)
    with pytest.raises(PerformerMissingError) as e:
        m.check_performers(["alice"], "take film_1_a_t001")
    assert "'bob'" in str(e.value) and "film_1_a_t001" in str(e.value) and "alice" in str(e.value)


def test_bad_toml_and_missing_file(tmp_path):
    with pytest.raises(MappingError, match="does not exist"):
        load_mapping(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[[engine]\n")
    with pytest.raises(MappingError, match="not valid TOML"):
        load_mapping(bad)


def test_flags_mapping():
    m = mapping_from_flags(["alice", "bob"], vmc=["127.0.0.1:5000", "bob=10.0.0.2:5001"], vrchat="127.0.0.1:9000")
    assert [(e.target, e.host, e.port, e.avatars[0].performer) for e in m.engines] == [
        ("vmc", "127.0.0.1", 5000, "alice"),
        ("vmc", "10.0.0.2", 5001, "bob"),
        ("vrchat", "127.0.0.1", 9000, "alice"),
    ]
    with pytest.raises(MappingError, match="no performer #2"):
        mapping_from_flags(["alice"], vmc=["h:1", "h:2"])
    with pytest.raises(MappingError, match="no engine"):
        mapping_from_flags(["alice"])
    with pytest.raises(MappingError, match="not a number"):
        parse_address("host:abc", 1)
    assert parse_address("myhost", 9000) == ("myhost", 9000)

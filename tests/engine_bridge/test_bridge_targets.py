"""Targets are found by name: built-ins and entry points (machinima.engine_targets)."""

from __future__ import annotations

from importlib.metadata import EntryPoint

import pytest

import engine_bridge.targets as targets_mod
from engine_bridge.errors import TargetError
from engine_bridge.mapping import parse_mapping
from engine_bridge.targets import BridgeFrame, Target, create_target, known_targets


class RecordingTarget(Target):
    """A third-party target: keeps what it is sent."""

    kind = "recording"

    def open(self):
        self.got = []

    def deliver(self, frame):
        self.got.append(frame.seq)
        self.stats.frames += 1


def test_entry_point_targets(monkeypatch):
    eps = [
        EntryPoint("recording", f"{__name__}:RecordingTarget", targets_mod.GROUP),
        EntryPoint("broken", "no_such_module_xyz:Thing", targets_mod.GROUP),
        EntryPoint("notatarget", "json:dumps", targets_mod.GROUP),
    ]
    monkeypatch.setattr(targets_mod, "entry_points", lambda group: [e for e in eps if e.group == group])
    assert {"vmc", "vrchat", "plugin", "recording", "broken"} <= set(known_targets())
    m = parse_mapping({"engine": [{"name": "r", "target": "recording", "avatar": [{"performer": "alice"}]},
                                  {"name": "b", "target": "broken", "avatar": [{"performer": "alice"}]},
                                  {"name": "n", "target": "notatarget", "avatar": [{"performer": "alice"}]}]})
    t = create_target(m.engines[0])
    t.open()
    t.send(BridgeFrame(7, 0.0, "00:00:00:00", {}))
    assert t.got == [7] and t.stats.frames == 1
    with pytest.raises(TargetError, match="failed to load"):
        create_target(m.engines[1])
    with pytest.raises(TargetError, match="not an engine_bridge Target"):
        create_target(m.engines[2])

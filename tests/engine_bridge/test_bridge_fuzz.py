"""Whatever an engine sends, the bridge's parsers answer with their own error path only:
PluginConnection.receive never raises (it replies ``error``), OSCIngest.feed never raises."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from machinima import osc

from engine_bridge.ingest import ADDR_CAMERA, ADDR_EVENT, OSCIngest
from engine_bridge.protocol import PluginConnection

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=20,
)
TYPES = ["hello", "subscribe", "playback", "camera", "event", "ping", "x"]
KEYS = ["type", "protocol", "version", "performers", "space", "bones", "command", "timecode", "seconds", "speed",
        "name", "position", "rotation", "focal_mm", "sensor_mm", "focus_m", "payload", "id"]


@st.composite
def messages(draw):
    msg = draw(st.dictionaries(st.sampled_from(KEYS), json_values, max_size=8))
    if draw(st.booleans()):
        msg["type"] = draw(st.sampled_from(TYPES))
    return json.dumps(msg)


@settings(max_examples=120, deadline=None)
@given(st.lists(messages() | st.text(max_size=40) | st.binary(max_size=40), max_size=6))
def test_plugin_connection_never_raises(items):
    c = PluginConnection(max_errors=1000)
    c.receive(json.dumps({"type": "hello", "protocol": "machinima.bridge", "version": 1}))
    for raw in items:
        before = c.errors
        c.receive(raw)
        out = [json.loads(t) for t in c.data_to_send()]
        assert all(isinstance(m, dict) and "type" in m for m in out)
        assert c.errors - before == sum(1 for m in out if m["type"] == "error")


# strings OSC can carry (the encoder refuses NUL and lone surrogates with OSCError)
_osc_text = st.text(alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=12)
osc_args = st.lists(st.one_of(st.floats(width=32, allow_nan=True), st.integers(-2**31, 2**31 - 1), _osc_text, st.booleans()), max_size=13)


@settings(max_examples=120, deadline=None)
@given(st.sampled_from([ADDR_CAMERA, ADDR_EVENT, "/other"]), osc_args, st.integers(0, 64))
def test_osc_ingest_never_raises(address, args, cut):
    ing = OSCIngest()
    data = osc.encode_message(address, args)
    for d in (data, data[:cut], osc.encode_bundle([data, data])):
        for kind, name, value in ing.feed(d):
            assert kind in ("camera", "event") and isinstance(name, str) and name
    assert ing.accepted + sum(ing.rejects.values()) + ing.ignored >= 1

"""Fuzz: the VMC fast path agrees with the general path and with python-osc on the same bytes;
nothing but VMCError ever escapes the decoder."""

from __future__ import annotations

import logging
import math

import numpy as np
from hypothesis import HealthCheck, given, settings, strategies as st
from pythonosc.osc_packet import OscPacket, ParseError

from machinima import osc, skeleton, vmc

logging.getLogger("pythonosc").setLevel(logging.ERROR)  # python-osc warns on unknown type tags (its logger only: the root level is every later test's)
FLIP = np.array([-1, 1, 1, 1, -1, -1, 1], dtype=np.float32)
STRUCTURAL = {"empty", "too_large", "not_osc", "truncated", "too_many_elements", "too_many_bones", "too_many_blendshapes", "nested", "bad_message"}

# OSC strings cannot hold NUL (machinima.osc.encode_message does not refuse them: reported).
text = lambda **kw: st.text(alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), **kw)  # noqa: E731
f32 = st.floats(width=32, allow_nan=True, allow_infinity=True)
names = st.one_of(st.sampled_from(skeleton.BONES), text(min_size=0, max_size=12))
bone_msg = st.builds(lambda n, v: (vmc.ADDR_BONE, (n, *v)), names, st.lists(f32, min_size=7, max_size=7))
bad_bone = st.builds(lambda n, v: (vmc.ADDR_BONE, (n, *v)), names, st.lists(st.one_of(f32, st.integers(-5, 5), text(max_size=3)), max_size=9))
other = st.one_of(
    st.builds(lambda v: (vmc.ADDR_ROOT, ("root", *v)), st.lists(f32, min_size=7, max_size=7)),
    st.builds(lambda v: (vmc.ADDR_TIME, (v,)), f32),
    st.builds(lambda n, v: (vmc.ADDR_BLEND, (n, v)), text(max_size=6), f32),
    st.just((vmc.ADDR_APPLY, ())),
    st.builds(lambda a, v: ("/" + a, (v,)), st.text(alphabet="abcXYZ/", max_size=8), f32),
)
messages = st.lists(st.one_of(bone_msg, bone_msg, bone_msg, bad_bone, other), min_size=1, max_size=24)


def _packet(msgs, bundle=True):
    enc = [osc.encode_message(a, args) for a, args in msgs]
    return osc.encode_bundle(enc) if bundle or len(enc) != 1 else enc[0]


def _pyosc_bones(data: bytes):
    """What python-osc makes of the same bytes, filtered by the documented VMC rules."""
    try:
        pkt = OscPacket(data)
    except (ParseError, UnicodeDecodeError):  # python-osc 1.10.2 lets UnicodeDecodeError escape
        return None
    out = []
    for tm in pkt.messages:
        m = tm.message
        if m.address != vmc.ADDR_BONE:
            continue
        d = m.dgram
        z = d.index(b"\x00")
        pos = (z + 4) & ~3
        tags = d[pos:d.index(b"\x00", pos)].decode() if pos < len(d) else ","
        if tags != ",sfffffff":
            continue
        name, *vals = m.params
        if name not in skeleton.BONE_INDEX or not all(math.isfinite(v) for v in vals):
            continue
        out.append((skeleton.BONE_INDEX[name], tuple((np.float32(vals) * FLIP).tolist())))
    return out


def _ours(pkt):
    return [(int(i), tuple(v.tolist())) for i, v in zip(pkt.bone_index, pkt.bone_values)]


def _same(a: vmc.VMCPacket, b: vmc.VMCPacket) -> None:
    assert _ours(a) == _ours(b)
    assert a.rejected == b.rejected
    assert (a.root is None) == (b.root is None)
    if a.root is not None:
        assert a.root.tolist() == b.root.tolist()
    assert a.time_s == b.time_s and a.ok == b.ok and a.blend_apply == b.blend_apply
    assert a.blendshapes == b.blendshapes
    assert a.root_name == b.root_name
    assert a.keys == b.keys


SETTINGS = settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck))


@SETTINGS
@given(messages, st.booleans())
def test_valid_packets_agree_with_python_osc(msgs, bundle):
    data = _packet(msgs, bundle)
    dec = vmc.VMCDecoder()
    general = dec.decode(data)
    fast = dec.decode(data)
    _same(general, fast)
    _same(vmc.VMCDecoder(fast=False).decode(data), fast)  # single messages take their own fast path
    expected = _pyosc_bones(data)
    assert expected is not None
    assert sorted(_ours(fast)) == sorted(expected)


@SETTINGS
@given(messages, st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=6))
def test_mutated_floats_fast_equals_general(msgs, flips):
    """Same layout, different bytes in the value words: the fast path must see exactly what the
    general path sees (the template never hides a change of structure)."""
    data = bytearray(_packet(msgs))
    dec = vmc.VMCDecoder()
    dec.decode(bytes(data))
    for pos, val in flips:
        data[pos % len(data)] = val
    fast_dec, slow_dec = dec, vmc.VMCDecoder(fast=False)
    try:
        a = fast_dec.decode(bytes(data))
    except vmc.VMCError as exc:
        a = exc.reason
    try:
        b = slow_dec.decode(bytes(data))
    except vmc.VMCError as exc:
        b = exc.reason
    if isinstance(a, str) or isinstance(b, str):
        assert a == b
    else:
        _same(a, b)


@SETTINGS
@given(messages, st.data())
def test_mutated_bytes_agree_with_python_osc(msgs, data_st):
    data = bytearray(_packet(msgs))
    kind = data_st.draw(st.sampled_from(["flip", "truncate", "insert"]))
    if kind == "flip":
        for _ in range(data_st.draw(st.integers(1, 4))):
            data[data_st.draw(st.integers(0, len(data) - 1))] = data_st.draw(st.integers(0, 255))
    elif kind == "truncate":
        data = data[: data_st.draw(st.integers(0, len(data) - 1))]
    else:
        at = data_st.draw(st.integers(0, len(data)))
        data[at:at] = data_st.draw(st.binary(min_size=1, max_size=8))
    data = bytes(data)
    dec = vmc.VMCDecoder()
    try:
        pkt = dec.decode(data)
    except vmc.VMCError:
        return
    expected = _pyosc_bones(data)
    ours = _ours(pkt)
    assert all(np.isfinite(v).all() for _, v in ours)
    if expected is not None and not (set(pkt.rejected) & STRUCTURAL):
        assert sorted(ours) == sorted(expected)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_random_bytes_never_escape(data):
    dec = vmc.VMCDecoder()
    dec.feed(data)
    dec.feed(b"#bundle\x00" + data)
    assert dec.packets + sum(dec.rejects.values()) >= 2

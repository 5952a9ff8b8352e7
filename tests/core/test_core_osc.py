import struct

import pytest
from hypothesis import given, settings, strategies as st
from pythonosc.osc_bundle import OscBundle
from pythonosc.osc_message import OscMessage

from machinima.errors import OSCError
from machinima.osc import decode_packet, encode_bundle, encode_message

args_st = st.lists(
    st.one_of(
        st.integers(min_value=-(2**31), max_value=2**31 - 1),
        st.floats(width=32, allow_nan=False),
        st.text(alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=20),
        st.binary(max_size=20),
        st.booleans(),
    ),
    max_size=8,
)
addr_st = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCXYZ/_0123456789", min_size=1, max_size=30).map(lambda s: "/" + s)


@settings(max_examples=200, deadline=None)
@given(addr_st, args_st)
def test_roundtrip_and_agreement_with_python_osc(address, args):
    data = encode_message(address, args)
    (msg,) = decode_packet(data)
    theirs = OscMessage(data)
    assert msg.address == theirs.address == address
    assert list(msg.args) == list(theirs.params)


def test_bundles_flatten_in_order():
    inner = encode_bundle([encode_message("/b", [2])], timetag=7)
    data = encode_bundle([encode_message("/a", [1.5]), inner, encode_message("/c", ["x"])], timetag=5)
    msgs = decode_packet(data)
    assert [m.address for m in msgs] == ["/a", "/b", "/c"]
    assert msgs[1].timetag == 7 and msgs[0].timetag == 5
    assert OscBundle(data).num_contents == 3


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200))
def test_garbage_raises_only_osc_error(data):
    try:
        decode_packet(data)
    except OSCError:
        pass


@settings(max_examples=300, deadline=None)
@given(addr_st, args_st, st.integers(min_value=0, max_value=200), st.binary(min_size=1, max_size=4))
def test_mutated_packets_raise_only_osc_error(address, args, pos, junk):
    data = bytearray(encode_bundle([encode_message(address, args)]))
    pos = pos % len(data)
    data[pos:pos + len(junk)] = junk
    try:
        decode_packet(bytes(data))
    except OSCError:
        pass


@pytest.mark.parametrize(
    "data, match",
    [
        (b"", "empty"),
        (b"/abc", "unterminated"),
        (b"/a\x00\x00,x\x00\x00", "unsupported"),
        (b"/a\x00\x00,i\x00\x00", "truncated"),
        (b"#bundle\x00" + struct.pack(">Q", 1) + struct.pack(">i", 400) + b"/a\x00\x00", "does not fit"),
        (b"abc\x00", "must start"),
    ],
)
def test_named_errors(data, match):
    with pytest.raises(OSCError, match=match):
        decode_packet(data)


def test_unencodable_strings_raise_osc_error():
    with pytest.raises(OSCError, match="NUL"):
        encode_message("/a", ["x\x00y"])
    with pytest.raises(OSCError, match="surrogates"):
        encode_message("/a", ["\ud800"])

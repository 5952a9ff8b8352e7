"""The sans-I/O stage protocol: control messages, binary frames, tokens (no sockets)."""

import json

import numpy as np
import pytest

from machinima import protocol as P
from machinima.skeleton import rest_pose


def test_control_roundtrip_and_validation():
    text = P.encode_control("record", id="r1", slate={"production": "film", "scene": "1", "shot": "A"})
    msg = P.parse_control(text)
    assert msg["type"] == "record" and msg["id"] == "r1" and msg["slate"]["shot"] == "A"
    assert P.parse_control('{"type":"stop"}')["type"] == "stop"


@pytest.mark.parametrize(
    "text,code",
    [
        ("{not json", "bad_json"),
        ("[1,2]", "bad_json"),
        ('{"type":"launch"}', "unknown_type"),
        ('{"v":2,"type":"stop"}', "version"),
        ('{"type":"marker"}', "bad_message"),
        ('{"type":"marker","name":5}', "bad_message"),
        ('{"type":"stop","extra":1}', "bad_message"),
        ('{"type":"record","slate":{"scene":""}}', "bad_message"),
        ('{"type":"record","slate":{"colour":"x"}}', "bad_message"),
        ('{"type":"subscribe","encoding":"f64"}', "bad_message"),
        ('{"type":"takes","limit":true}', "bad_message"),
        ('{"type":"stop","id":7}', "bad_message"),
    ],
)
def test_malformed_control_messages_are_named_errors(text, code):
    with pytest.raises(P.ProtocolError) as err:
        P.parse_control(text)
    assert err.value.code == code
    assert str(err.value)


def test_error_keeps_the_command_id():
    with pytest.raises(P.ProtocolError) as err:
        P.parse_control('{"type":"marker","id":"m1"}')
    doc = json.loads(P.error_message(err.value))
    assert doc == {"v": 1, "type": "error", "id": "m1", "code": "bad_message", "message": str(err.value)}


def test_pose_frame_roundtrip_f32_f16():
    pose = rest_pose()
    pose[0, :3] = (1.5, 0.9, -2.0)
    data = P.encode_pose("alice", pose, seq=7, t_ns=123)
    assert len(data) == P.HEADER.size + 5 + 55 * 7 * 4
    f = P.decode_frame(data)
    assert (f.kind, f.name, f.seq, f.t_ns) == (P.KIND_POSE, "alice", 7, 123)
    np.testing.assert_array_equal(f.values, pose)
    h = P.recode_pose(data, P.ENC_F16)
    assert len(h) == P.HEADER.size + 5 + 55 * 7 * 2
    g = P.decode_frame(h)
    assert g.encoding == P.ENC_F16 and g.seq == 7 and g.t_ns == 123
    np.testing.assert_allclose(g.values, pose, atol=2e-3)


def test_bundle_and_camera_frames():
    cam = P.encode_camera("cam1", np.arange(12, dtype=np.float32), seq=1, t_ns=5)
    poses = [P.encode_pose(n, rest_pose(), seq=i) for i, n in enumerate(["a", "b"])]
    b = P.decode_frame(P.encode_bundle(poses + [cam], seq=9, t_ns=10))
    assert b.kind == P.KIND_BUNDLE and [f.name for f in b.frames] == ["a", "b", "cam1"]
    np.testing.assert_array_equal(b.frames[2].values, np.arange(12))


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d[:10],  # shorter than the header
        lambda d: b"XX" + d[2:],  # bad magic
        lambda d: d[:-4],  # truncated payload
        lambda d: d + b"\0\0\0\0",  # trailing bytes
        lambda d: d[:3] + b"\x09" + d[4:],  # unknown kind
        lambda d: d[:6] + (54).to_bytes(2, "little") + d[8:],  # wrong bone count
        lambda d: d[:2] + b"\x02" + d[3:],  # other protocol version
    ],
)
def test_bad_frames_raise(mutate):
    data = P.encode_pose("alice", rest_pose())
    with pytest.raises(P.ProtocolError):
        P.decode_frame(mutate(data))


def test_nan_pose_refused_both_ways():
    pose = rest_pose()
    pose[3, 4] = np.nan
    with pytest.raises(P.ProtocolError):
        P.encode_pose("a", pose)
    data = bytearray(P.encode_pose("a", rest_pose()))
    data[-4:] = np.array([np.inf], np.float32).tobytes()
    with pytest.raises(P.ProtocolError, match="NaN or infinite"):
        P.decode_frame(bytes(data))


def test_tokens_sign_expire_and_refuse_forgeries():
    secret = b"s" * 32
    tok = P.make_token(secret, "director", "dana", ttl_s=60, now=1000)
    c = P.verify_token(secret, tok, now=1030)
    assert (c.role, c.name) == ("director", "dana")
    with pytest.raises(P.ProtocolError) as err:
        P.verify_token(secret, tok, now=1061)
    assert err.value.code == "expired_token"
    with pytest.raises(P.ProtocolError) as err:
        P.verify_token(b"other" * 8, tok, now=1030)
    assert err.value.code == "bad_token"
    body, sig = tok.split(".")
    forged = P._b64(json.dumps({"v": 1, "role": "director", "name": "eve", "exp": 10**10}).encode()) + "." + sig
    with pytest.raises(P.ProtocolError, match="not signed"):
        P.verify_token(secret, forged)
    for junk in ("", "abc", "a.b.c", "x" * 2000):
        with pytest.raises(P.ProtocolError) as err:
            P.verify_token(secret, junk)
        assert err.value.code == "bad_token"
    with pytest.raises(P.ProtocolError):
        P.make_token(secret, "producer", "x")


from hypothesis import given, settings, strategies as st

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=10), kids, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=3000))
def test_fuzz_frames_only_raise_protocol_errors(data):
    for blob in (data, P.MAGIC + bytes([1]) + data, P.encode_pose("a", rest_pose())[:20] + data):
        try:
            P.decode_frame(blob)
        except P.ProtocolError:
            pass


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(P.CLIENT_TYPES)), st.dictionaries(st.sampled_from(["token", "name", "text", "slate", "performers", "encoding", "limit", "payload", "id", "v", "frames", "t", "take", "notes"]), _json, max_size=5))
def test_fuzz_control_messages_only_raise_protocol_errors(mtype, fields):
    doc = {"type": mtype, **fields}
    try:
        msg = P.parse_control(json.dumps(doc))
    except P.ProtocolError as exc:
        assert exc.code in P.ERROR_CODES
    else:
        assert msg["type"] == mtype

"""Blendshape (BLEND) frames of the stage protocol: the byte layout, refusals, and a stage that
records them and relays them to viewers beside the pose (f16 viewers too) and to live workers."""

from __future__ import annotations

import asyncio
import struct

import numpy as np
import pytest

from machinima import protocol as P
from machinima.take import Take
from server_helpers import client, perform, run, stage, wait_for


def test_blend_frame_layout_and_round_trip():
    data = P.encode_blend("ana", {"A": 0.25, "Blink_L": 1.0}, seq=3, t_ns=99)
    head = P.HEADER.unpack_from(data)
    assert head == (b"MQ", 1, P.KIND_BLEND, P.ENC_F32, 3, 2, 3, 99)
    # after the name: layout version, then u8-length names, then little-endian float32 weights
    assert data[P.HEADER.size + 3:] == b"\x01" + b"\x01A" + b"\x07Blink_L" + struct.pack("<2f", 0.25, 1.0)
    f = P.decode_frame(data)
    assert (f.kind, f.name, f.seq, f.names) == (P.KIND_BLEND, "ana", 3, ["A", "Blink_L"]) and f.blendshapes == {"A": 0.25, "Blink_L": 1.0}
    bundle = P.decode_frame(P.encode_bundle([data, P.encode_pose("ana", np.zeros((55, 7)))]))
    assert [s.kind for s in bundle.frames] == [P.KIND_BLEND, P.KIND_POSE]


def _raw(names: list[bytes], values: list[float], *, version: int = 1, count: int | None = None) -> bytes:
    body = bytes((version,)) + b"".join(bytes((len(n),)) + n for n in names) + struct.pack(f"<{len(values)}f", *values)
    head = P.HEADER.pack(b"MQ", 1, P.KIND_BLEND, 0, 1, len(names) if count is None else count, 0, 0)
    return head + b"a" + body


@pytest.mark.parametrize(
    "data, code",
    [
        (_raw([b"A"], [0.5], version=2), "version"),
        (_raw([b"A", b"A"], [0.5, 0.5]), "bad_frame"),  # the same blendshape twice
        (_raw([b"A"], [float("nan")]), "bad_frame"),
        (_raw([b"A"], [0.5, 0.5]), "bad_frame"),  # more weights than names
        (_raw([b"\xff\xfe"], [0.5]), "bad_frame"),  # not UTF-8
        (_raw([b"a\nb"], [0.5]), "bad_frame"),  # not printable
        (_raw([b"A"], [0.5], count=0), "bad_frame"),
        (_raw([b"A"], [0.5])[:-3], "bad_frame"),
    ],
)
def test_bad_blend_frames_are_refused(data, code):
    with pytest.raises(P.ProtocolError) as err:
        P.decode_frame(data)
    assert err.value.code == code


def test_encode_refuses_what_decode_would():
    for bad in ({}, {"A": float("inf")}, {"": 1.0}, {"x" * 300: 1.0}):
        with pytest.raises(P.ProtocolError):
            P.encode_blend("ana", bad)


def test_stage_records_and_relays_blend_frames(root):
    async def main():
        async with stage(root) as srv:
            d = await client(srv, "director", "dana")
            ana = await client(srv, "performer", "ana")
            eng = await client(srv, "engine", "ue")
            viewer = await client(srv, "observer", "v", max_frames=1000)
            await viewer.subscribe(encoding="f16", events=False)
            assert ana.welcome["frames"]["blend"] == P.BLEND_VERSION
            await perform(ana, 1)
            await d.record()
            for k in range(10):
                await ana.send_pose(np.zeros((55, 7), np.float32) + [0, 0, 0, 0, 0, 0, 1])
                await ana.send_blend({"A": k / 10, "E": 1 - k / 10})
                await asyncio.sleep(1 / 60)
            await eng.send_frame(P.encode_blend("ue-face", {"A": 1.0}))  # an engine may not publish faces
            await wait_for(lambda: srv.recorder.frames >= 20)
            err = await eng.next_message({"error"}, timeout=5)
            assert err["code"] == "forbidden" and "blend" in err["message"]
            await wait_for(lambda: any(f.kind == P.KIND_BLEND and f.blendshapes.get("A") == pytest.approx(0.9) for f in viewer._frames))
            blends = [f for f in viewer._frames if f.kind == P.KIND_BLEND]
            assert all(f.name == "ana" and f.encoding == P.ENC_F32 for f in blends)  # weights stay float32
            assert [p["name"] for p in srv.state()["performers"]] == ["ana"]  # a face is not a second performer
            out = await d.stop()
            for c in (d, ana, eng, viewer):
                await c.close()
        b = Take.open(root / out["take"]).store.read("blend/ana")
        assert b.meta["channels"] == ["A", "E"] and len(b) == 10
        np.testing.assert_allclose(b.values[:, 0], np.arange(10) / 10, atol=1e-6)

    run(main())

"""Hostile input in every field a client sends: validated once at the edge, refused with an
error reply, and the stage goes on (the take still stops, SIGTERM still stops the server)."""

from __future__ import annotations

import asyncio
import json
import signal

import pytest
from websockets.asyncio.client import connect

from server_helpers import ServerProcess, client, perform, refused, run, stage, synthetic_pose, token, url
from machinima import protocol as P
from machinima.client import StageClient
from machinima.take import Take, iter_take_folders

HUGE = "x" * 100_000  # under max_size (256 KiB), over every field's limit
LINE_BAD = ["\ud800", "a\x00b", "\x1b[2J", "two\nlines", HUGE]  # one-line fields
TEXT_BAD = ["\ud800", "a\x00b", "\x1b[2J", HUGE]  # free text: newlines are fine there

# (command, fields with H standing for the hostile value, one-line field?)
FIELDS = [
    ("slate", {"production": "H"}, True), ("slate", {"scene": "H"}, True), ("slate", {"shot": "H"}, True),
    ("record", {"slate": {"scene": "H"}}, True), ("record", {"notes": ["H"]}, False), ("record", {"timecode": "H"}, True),
    ("marker", {"name": "H"}, True), ("marker", {"name": "m", "note": "H"}, False), ("marker", {"name": "m", "color": "H"}, True),
    ("note", {"text": "H"}, False), ("note", {"text": "n", "take": "H"}, True),
    ("kick", {"name": "H"}, True), ("kick", {"name": "nobody", "reason": "H"}, False),
    ("event", {"name": "H"}, True), ("event", {"name": "e", "payload": {"k": "H"}}, False),
    ("event", {"name": "e", "payload": {"H": 1}}, True), ("event", {"name": "e", "payload": {"a": [{"b": ["H"]}]}}, False),
    ("subscribe", {"performers": ["H"]}, True),
]


def _put(value, h):
    if value == "H":
        return h
    if isinstance(value, dict):
        return {(h if k == "H" else k): _put(v, h) for k, v in value.items()}
    if isinstance(value, list):
        return [_put(v, h) for v in value]
    return value


def _strict(text: str) -> dict:
    """JSON as RFC 8259 has it: NaN and Infinity are not JSON."""
    def refuse(name):
        raise ValueError(f"{name} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_hostile_text_in_every_field_is_refused_and_the_stage_goes_on(root):
    srv = ServerProcess(root)
    try:
        async def main():
            d = StageClient(srv.url, token(root, "director", "dana"))
            perf = StageClient(srv.url, token(root, "performer", "alice"))
            await d.open(), await perf.open()
            await perform(perf, 1)
            # before any take: a hostile slate or record note creates no folder
            for fields in ({"slate": {"scene": "\ud800"}}, {"notes": ["\ud800"]}, {"slate": {"shot": "a\x00"}}):
                with pytest.raises(P.ProtocolError) as err:
                    await d.command("record", **fields)
                assert err.value.code == "bad_message"
            assert list(iter_take_folders(root)) == []
            take = (await d.record(notes=["first"]))["take"]
            n_refused = 0
            for mtype, fields, line in FIELDS:
                for h in LINE_BAD if line else TEXT_BAD:
                    with pytest.raises(P.ProtocolError) as err:
                        await d.command(mtype, **_put(fields, h))
                    assert err.value.code in ("bad_message", "bad_json"), (mtype, fields, h[:8], err.value)
                    n_refused += 1
                    await d.send_raw(P.encode_control("takes", id=h))  # the id itself: no id to answer to
                    assert (await d.next_message({"error"}))["code"] == "bad_message"
            assert n_refused > 80
            # what is allowed still works, and the take still stops
            await d.marker("stumble", note="left foot\nthen right")
            await d.note("two\nlines\tand a tab")
            await perform(perf, 30, 120)
            res = await d.stop()
            assert res["status"] == "complete" and res["take"] == take
            await d.close(), await perf.close()
            for text, code in ((P.encode_control("hello", token=token(root, "observer", "o"), client="\ud800"), "bad_message"),
                               (P.encode_control("hello", token=token(root, "observer", "o"), resume="a\x00b"), "bad_message"),
                               ('{"type":"hello","token":' + "[" * 100_000 + "]" * 100_000 + "}", "bad_json")):
                close, reason, msgs = await refused(srv.url, text)
                assert close == P.CLOSE_BAD_TOKEN and reason.startswith("bad hello: ") and json.loads(msgs[0])["code"] == code
            return take

        take_id = run(main())
        t = Take.open(root / take_id)
        assert t.manifest.status == "complete"
        assert t.manifest.notes == ["first", "two\nlines\tand a tab"]
        assert [m["name"] for m in t.manifest.markers] == ["stumble"]
        assert [p.name for p in iter_take_folders(root)] == [take_id]  # no orphan folders
        srv.proc.send_signal(signal.SIGTERM)  # SIGTERM still stops the server
        assert srv.proc.wait(15) == 0
    finally:
        srv.stop()


def test_deep_json_nan_and_infinity_are_bad_json_and_pong_stays_json(root):
    async def main():
        async with stage(root) as srv:
            d = await client(srv, "director", "dana")
            for text in ('{"type":"event","name":"e","payload":' + "[" * 1000 + "]" * 1000 + "}",
                         '{"type":"event","name":"e","payload":' + "{\"a\":" * 40 + "1" + "}" * 40 + "}",
                         "[" * 100_000 + "]" * 100_000,
                         '{"type":"ping","id":"p1","t":NaN}', '{"type":"ping","id":"p2","t":Infinity}',
                         '{"type":"ping","id":"p3","t":-1e999}'):
                await d.send_raw(text)
                msg = await d.next_message({"error"})
                assert msg["code"] == "bad_json", (text[:40], msg)
            await d.send_raw('{"type":"ping","id":"p4","t":1.5}')
            pong = await d.next_message({"pong"})
            assert pong["t"] == 1.5
            assert d.connected and await d.ping() < 5
            raw = []
            async with connect(url(srv), compression=None, proxy=None) as ws:  # what the wire carries
                await ws.send(P.encode_control("hello", token=token(root, "observer", "olga")))
                await ws.recv()
                await ws.send('{"type":"ping","t":1e308}')
                await ws.send('{"type":"ping","t":1e999}')
                await ws.send('{"type":"ping","id":"last"}')
                while not any('"last"' in m for m in raw):
                    raw.append(await asyncio.wait_for(ws.recv(), 5))
            for m in raw:
                _strict(m)  # every message the server sent is JSON
            await d.close()

    run(main())


def test_one_connection_cannot_create_unbounded_performer_streams(root):
    async def main():
        async with stage(root) as srv:
            d = await client(srv, "director", "dana")
            relay = await client(srv, "performer", "relay")
            await relay.send_pose(synthetic_pose(0), performer="p0")
            res = await d.record()
            for i in range(41):
                await relay.send_pose(synthetic_pose(i / 60), performer=f"p{i}")
            assert await relay.ping() < 5
            limit = srv.limits.max_streams
            assert sum(1 for s in srv.sources.values() if s.conn is not None and s.conn.name == "relay") == limit
            errors = [m for m in relay._messages if m["type"] == "error"]
            assert errors and errors[0]["code"] == "forbidden" and f"at most {limit}" in errors[0]["message"]
            await d.stop()
            await d.close(), await relay.close()
            return res["take"]

    take_id = run(main())
    t = Take.open(root / take_id)
    assert len(t.store.performers()) == 16

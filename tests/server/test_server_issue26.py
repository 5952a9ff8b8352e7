"""Issue 26's last stage gaps, each through the real path a person uses:

- ``machinima mocap send`` with no target used to send to 127.0.0.1:39539, a running stage's own
  VMC input, so a rehearsal send became a live performer. It now refuses in one line that names
  the port and what to pass; a real stage listening there sees no performer, and the same send
  with ``--vmc`` does reach it (so the check could see one).
- The console's take list is the stage's ``takes`` command: a take whose recording failed is
  listed with its state, asked over a plain websockets connection (the browser's path), with no
  ``takes rebuild-catalog`` in between.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys

import pytest

from server_helpers import client, fill_the_take_store, perform, run, server_env, stage, token, url, wait_for
from machinima import protocol as P
from machinima.vmc import DEFAULT_PORT


def _send(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "machinima", "mocap", "send", "--synthetic", "1", "--name", "rehearsal", *args],
                          capture_output=True, text=True, env=server_env(), timeout=90)


def _vmc_plugin(monkeypatch) -> None:
    """The stage finds the VMC source through its entry point; a dev install made before
    pyproject declared the group gets it here (as in test_server_stage)."""
    from importlib.metadata import EntryPoint

    from server import udp as udp_mod

    eps = udp_mod._entry_points()
    if "vmc" not in eps:
        eps["vmc"] = EntryPoint(name="vmc", value="mocap.sources:VMCSource", group=udp_mod.GROUP)
        monkeypatch.setattr(udp_mod, "_entry_points", lambda: eps)


def test_mocap_send_without_a_target_does_not_feed_the_stage(root, monkeypatch):
    pytest.importorskip("mocap.sources")
    _vmc_plugin(monkeypatch)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:  # the documented port must be ours to test the trap
        try:
            probe.bind(("127.0.0.1", DEFAULT_PORT))
        except OSError:
            pytest.skip(f"UDP {DEFAULT_PORT} is held by another program on this machine")

    async def main():
        async with stage(root) as srv:
            await srv.attach_udp(f"vmc:127.0.0.1:{DEFAULT_PORT}")  # `machinima server --udp vmc:39539`
            r = await asyncio.to_thread(_send, "--seconds", "0.5")
            assert r.returncode != 0, r.stderr
            lines = [x for x in r.stderr.splitlines() if x.strip()]
            assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
            assert f"127.0.0.1:{DEFAULT_PORT}" in lines[0] and "--vmc HOST:PORT" in lines[0], lines
            await asyncio.sleep(0.3)
            assert not srv.sources and srv.state()["performers"] == [], srv.state()["performers"]
            # the same send with the stage's port typed out does arrive: the check above could fail
            r = await asyncio.to_thread(_send, "--seconds", "0.5", "--vmc", f"127.0.0.1:{DEFAULT_PORT}")
            assert r.returncode == 0, r.stderr
            await wait_for(lambda: "rehearsal-1" in srv.sources)

    run(main())


def test_mocap_send_to_a_listener_still_works_without_a_stage():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(10)
        port = sock.getsockname()[1]
        r = _send("--seconds", "0.2", "--vmc", str(port))  # a bare PORT means 127.0.0.1:PORT
        assert r.returncode == 0, r.stderr
        assert f"to 127.0.0.1:{port}" in r.stderr and sock.recv(65536)


async def _ws_command(srv, role: str, name: str, mtype: str, **fields) -> dict:
    """One command over a plain websockets connection, as the console sends it: hello, welcome,
    the command, its ack (binary frames and pushed state skipped)."""
    from websockets.asyncio.client import connect

    async with connect(url(srv), subprotocols=[P.SUBPROTOCOL], compression=None, proxy=None, max_size=None) as ws:
        await ws.send(json.dumps({"type": "hello", "token": token(srv.root, role, name), "client": "console-test"}))
        while True:
            raw = await asyncio.wait_for(ws.recv(), 10)
            if isinstance(raw, str) and json.loads(raw)["type"] == "welcome":
                break
        await ws.send(json.dumps({"type": mtype, "id": "q1", **fields}))
        while True:
            raw = await asyncio.wait_for(ws.recv(), 10)
            if isinstance(raw, bytes):
                continue
            msg = json.loads(raw)
            if msg.get("id") == "q1":
                assert msg["type"] == "ack", msg
                return msg["result"]


def test_the_console_take_list_shows_a_failed_take_without_rebuild_catalog(root):
    async def main():
        async with stage(root) as srv:
            d = await client(srv, "director", "dana")
            perf = await client(srv, "performer", "alice")
            await perform(perf, 1)
            ok = (await d.record())["take"]
            await perform(perf, 5, 120)
            await d.stop()
            failed = (await d.record())["take"]
            await fill_the_take_store(srv, perf)
            assert not srv.recorder.recording, "the recording never failed"
            for role, name in (("director", "dana"), ("observer", "olga")):  # the console, and a watching one
                rows = {t["id"]: t for t in (await _ws_command(srv, role, name, "takes", limit=30))["takes"]}
                assert rows[failed]["status"] == "failed", rows
                assert any("disk full" in n for n in rows[failed]["notes"]), rows[failed]["notes"]
                assert rows[ok]["status"] == "complete", rows[ok]
            await d.close(), await perf.close()

    run(main(), timeout=90)

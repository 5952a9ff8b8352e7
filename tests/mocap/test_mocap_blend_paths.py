"""Blendshapes through every path face capture takes, into takes and out to a live VMC receiver
(a python-osc server), all over real sockets:

* ``lisa``: python-osc VMC bundles -> ``machinima mocap listen --record --server`` (its own take)
  -> the stage (relayed as BLEND frames);
* ``uma``: python-osc VMC bundles -> the stage's local UDP source (``machinima server --udp``);
* ``wes``: a performer on the stage's websocket (``send_pose`` + ``send_blend``);

and the stage -> ``bridge live`` (``LiveRelay``) -> one python-osc VMC receiver per performer.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_server import ThreadingOSCUDPServer

from machinima import protocol as P
from machinima.client import SyncStageClient
from machinima.take import Take
from vmc_senders import Pacer, blend_values, bundle, client, expected_pose, frame_messages, free_udp_port, root_values, wait_bound

REPO = Path(__file__).resolve().parents[2]
SECRET = bytes(range(32))
N = 90  # frames each performer sends, 60 a second


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""), PYTHONUNBUFFERED="1")


def _wait_line(stream, text: str, timeout: float = 30.0) -> str:
    end = time.monotonic() + timeout
    seen = []
    while time.monotonic() < end:
        line = stream.readline()
        if not line:
            break
        seen.append(line)
        if text in line:
            return line
    raise AssertionError(f"never saw {text!r}: {''.join(seen)}")


class Receiver:
    """A VMC receiver as a game engine would run it: python-osc's UDP server."""

    def __init__(self) -> None:
        self.blend: list[tuple[str, float]] = []
        d = Dispatcher()
        d.map("/VMC/Ext/Blend/Val", lambda addr, name, value: self.blend.append((name, value)))
        self.server = ThreadingOSCUDPServer(("127.0.0.1", 0), d)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _truth() -> set[tuple[float, float]]:
    return {(np.float32(blend_values(k)["A"]), np.float32(blend_values(k)["Blink_L"])) for k in range(N)}


def _check_stream(take: Take, name: str, *, every_frame: bool) -> None:
    b = take.store.read("blend/" + name)
    assert b.meta["channels"] == ["A", "Blink_L"], b.meta
    got = [tuple(np.float32(v) for v in row) for row in b.values]
    assert set(got) <= _truth(), f"{name}: weights that were never sent"
    assert got[-1] == (np.float32(blend_values(N - 1)["A"]), np.float32(blend_values(N - 1)["Blink_L"]))
    if every_frame:
        assert len(got) == N, (name, len(got))
    else:  # relayed latest-wins: a frame may be skipped, never invented, never reordered
        assert len(got) >= N // 3 and got == sorted(got, reverse=True, key=lambda r: r[1]), (name, len(got))


def test_blendshapes_through_every_path(tmp_path):
    from engine_bridge.live import LiveRelay
    from engine_bridge.mapping import mapping_from_flags

    root, listen_root = tmp_path / "takes", tmp_path / "listen"
    root.mkdir()
    (root / ".stage-secret").write_text(SECRET.hex() + "\n")
    (root / ".stage-secret").chmod(0o600)
    udp_port, listen_port = free_udp_port(), free_udp_port()
    stage = subprocess.Popen([sys.executable, "-m", "machinima", "server", "--root", str(root), "--port", "0", "--udp", f"vmc:127.0.0.1:{udp_port}",
                              "--log-level", "warning"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env())
    procs = [stage]
    receivers = [Receiver() for _ in range(3)]
    try:
        url = _wait_line(stage.stdout, "listening on").split()[2]
        _wait_line(stage.stdout, "mocap on udp")
        listen = subprocess.Popen([sys.executable, "-m", "machinima", "mocap", "listen", "--vmc", str(listen_port), "--host", "127.0.0.1",
                                   "--record", str(listen_root), "--server", url, "--token", P.make_token(SECRET, "performer", "relay"),
                                   "--seconds", "8", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
        procs.append(listen)
        _wait_line(listen.stderr, "recording into")
        wait_bound(listen_port)
        director = SyncStageClient(url, P.make_token(SECRET, "director", "dana"))
        wes = SyncStageClient(url, P.make_token(SECRET, "performer", "wes"))
        started = director.record(slate={"production": "face", "scene": "1", "shot": "A"})
        names = ["lisa", "uma", "wes"]
        relay = LiveRelay(url, P.make_token(SECRET, "engine", "bridge"), mapping_from_flags(names, vmc=[f"127.0.0.1:{r.port}" for r in receivers]), rate=60)
        relay.connect()
        bridge = threading.Thread(target=relay.run, kwargs={"duration_s": 3.5}, daemon=True)
        bridge.start()

        def vmc_sender(port: int, name: str) -> None:
            c, pace = client(port), Pacer()
            for k in range(N):
                c.send(bundle(frame_messages(k, name=name, bones=10, blend=True, time_s=k / 60, markers="last")))
                pace.wait(1 / 60)

        def ws_sender() -> None:
            pace = Pacer()
            for k in range(N):
                wes.send_pose(expected_pose(k, bones=10, root=root_values(k)).astype(np.float32))
                wes.send_blend(blend_values(k))
                pace.wait(1 / 60)

        senders = [threading.Thread(target=fn) for fn in (lambda: vmc_sender(listen_port, "lisa"), lambda: vmc_sender(udp_port, "uma"), ws_sender)]
        for t in senders:
            t.start()
        for t in senders:
            t.join(30)
        time.sleep(0.6)
        stopped = director.stop()
        bridge.join(15)
        wes.close(), director.close()
        out, err = listen.communicate(timeout=30)
        assert listen.returncode == 0, err
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                p.wait(10)
        for r in receivers:
            r.close()

    stage_take = Take.open(root / stopped["take"])
    assert stopped["take"] == started["take"]
    _check_stream(stage_take, "uma", every_frame=True)  # the stage records every frame of its own UDP source
    _check_stream(stage_take, "wes", every_frame=True)  # and every BLEND frame a performer sends
    _check_stream(stage_take, "lisa", every_frame=False)  # relayed by the listener, latest-wins
    listen_take = Take.open(listen_root / json.loads(out)["take"])
    _check_stream(listen_take, "lisa", every_frame=True)  # mocap listen records every frame it hears
    last = (np.float32(blend_values(N - 1)["A"]), np.float32(blend_values(N - 1)["Blink_L"]))
    for name, r in zip(names, receivers):  # ... and every path reaches a live VMC receiver
        seen = dict(r.blend)
        assert r.blend and {np.float32(v) for n, v in r.blend if n == "A"} <= {t[0] for t in _truth()}, name
        assert (np.float32(seen["A"]), np.float32(seen["Blink_L"])) == last, (name, seen)

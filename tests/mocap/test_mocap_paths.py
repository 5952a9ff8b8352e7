"""``machinima mocap listen --record takes`` and ``mocap stats takes/...`` with relative paths,
fed by python-osc's own client (issue 19: both crashed in ``Path.as_uri``)."""

from __future__ import annotations

import json
import socket
import threading
import time

from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.udp_client import SimpleUDPClient

from machinima import cli
from machinima.take import Take


def _port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _msg(address: str, *args) -> object:
    m = OscMessageBuilder(address=address)
    for a in args:
        m.add_arg(a)
    return m.build()


def test_listen_records_into_a_relative_root_and_stats_reads_it(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    port = _port()
    done = {}

    def listen():
        try:
            cli.main(["mocap", "listen", "--vmc", str(port), "--host", "127.0.0.1", "--record", "takes", "--seconds", "2.5", "--json"])
        except SystemExit as exc:
            done["code"] = exc.code

    th = threading.Thread(target=listen)
    th.start()
    time.sleep(1.0)
    osc = SimpleUDPClient("127.0.0.1", port)
    for i in range(30):  # one VMC frame per bundle: the hips moving, then the frame boundary
        b = OscBundleBuilder(IMMEDIATELY)
        b.add_content(_msg("/VMC/Ext/Root/Pos", "root", 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0))
        b.add_content(_msg("/VMC/Ext/Bone/Pos", "Hips", 0.01 * i, 0.9, 0.0, 0.0, 0.0, 0.0, 1.0))
        b.add_content(_msg("/VMC/Ext/OK", 1))
        osc.send(b.build())
        time.sleep(1 / 60)
    th.join(30)
    out = capsys.readouterr()
    assert done.get("code") in (0, None), out.err
    tid = json.loads(out.out)["take"]
    take = Take.open(f"takes/{tid}")
    assert take.manifest.status == "complete" and take.verify() == []
    assert take.manifest.streams and sum(s.get("samples", 0) for s in take.manifest.streams) >= 25
    try:
        cli.main(["mocap", "stats", f"takes/{tid}", "--json"])
    except SystemExit as exc:
        assert exc.code == 0
    assert json.loads(capsys.readouterr().out)["take"] == tid

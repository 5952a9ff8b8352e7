"""`bridge play` into a running stage's own VMC input: refused in one line (nothing reaches the
stage); with --force it plays and, as warned, the playback shows up on the stage as a performer.
Another port on the same host plays without a word. A real stage, a real UDP input, loopback."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from bridge_helpers import make_take


def _env():
    return dict(os.environ, PYTHONUNBUFFERED="1")


def _health(port):
    return json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5).read())


@pytest.fixture
def stage(tmp_path):
    """`machinima server --udp vmc:PORT` on loopback; yields (stage port, its VMC input port)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        udp = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "machinima", "server", "--root", str(tmp_path / "stage"), "--port", "0",
                             "--udp", f"vmc:{udp}", "--log-level", "warning"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=_env())
    line = proc.stdout.readline()
    assert line.startswith("listening on"), (line, proc.stderr.read() if proc.poll() is not None else "")
    port = int(line.split()[-1].rsplit(":", 1)[1].split("/")[0])
    assert proc.stdout.readline().startswith("listening for vmc")
    yield port, udp
    proc.terminate()
    proc.communicate(timeout=20)


def play(tmp_path, take, *args):
    return subprocess.run([sys.executable, "-m", "machinima", "bridge", "play", str(take), "--no-keys", *args],
                          capture_output=True, text=True, cwd=tmp_path, env=_env(), timeout=60)


def test_play_refuses_the_stages_own_input_and_force_shows_why(tmp_path, stage, udp):
    port, vmc_in = stage
    (tmp_path / "machinima.toml").write_text(f"[server]\nport = {port}\n")  # where the bridge looks for a stage
    take, _ = make_take(tmp_path / "takes", performers=("alice",), n=30, fps=30)
    assert _health(port)["udp"] == [{"kind": "vmc", "host": "127.0.0.1", "port": vmc_in}]
    r = play(tmp_path, take, "--vmc", f"127.0.0.1:{vmc_in}")
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert f"127.0.0.1:{vmc_in} is the vmc input of the stage at 127.0.0.1:{port}" in " ".join(r.stderr.split())
    assert _health(port)["performers"] == 0  # nothing was sent
    rx = udp()
    r = play(tmp_path, take, "--vmc", f"127.0.0.1:{rx.port}")  # an engine's own port: no word about it
    assert r.returncode == 0 and "warning" not in r.stderr, r.stderr
    rx.wait_for(20)
    forced = subprocess.Popen([sys.executable, "-m", "machinima", "bridge", "play", str(take), "--no-keys", "--loop", "--force",
                               "--vmc", f"127.0.0.1:{vmc_in}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path, env=_env())
    try:
        deadline = time.monotonic() + 20
        while _health(port)["performers"] == 0 and time.monotonic() < deadline and forced.poll() is None:
            time.sleep(0.1)
        seen = _health(port)["performers"]  # the stage took the playback for a live performer
    finally:
        forced.terminate()
        _, err = forced.communicate(timeout=20)
    assert seen == 1 and "warning:" in err, err

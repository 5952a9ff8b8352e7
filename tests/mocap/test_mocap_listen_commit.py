"""`machinima mocap listen --record` commits on a timer: frames received before a pause are on
disk without any further traffic, and a kill -9 during the pause loses none of them."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from machinima.store import StreamStore
from machinima.take import Take, recover
from vmc_senders import bundle, client, frame_messages, free_udp_port, wait_bound

REPO = Path(__file__).resolve().parents[2]


def _on_disk(streams: Path, stream: str) -> int:
    if not streams.exists():
        return 0
    try:
        with StreamStore(streams) as st:
            return len(st.read(stream)) if stream in {s.name for s in st.streams()} else 0
    except Exception:  # the writer may be in the middle of creating it
        return 0


def test_idle_listener_commits_on_its_timer_and_kill9_loses_nothing(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    port = free_udp_port()
    proc = subprocess.Popen([sys.executable, "-m", "machinima", "mocap", "listen", "--vmc", str(port), "--host", "127.0.0.1",
                             "--record", str(tmp_path / "takes"), "--json"], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stderr.readline()
        assert "recording into" in line, line + proc.stderr.read()
        (take_dir,) = [p for p in (tmp_path / "takes").iterdir() if (p / "take.json").exists()]
        wait_bound(port)
        c = client(port)
        for k in range(5):
            c.send(bundle(frame_messages(k, name="ana", time_s=k / 60, markers="last")))
            time.sleep(1 / 60)
        sent = time.monotonic()
        while _on_disk(take_dir / "streams.sqlite", "mocap/ana") < 5 and time.monotonic() - sent < 5.0:
            time.sleep(0.01)
        waited = time.monotonic() - sent
        # the design bound is 100 ms (80 ms commit interval + a 10 ms timer); 1 s leaves room for a busy machine
        assert _on_disk(take_dir / "streams.sqlite", "mocap/ana") == 5 and waited < 1.0, waited
        proc.kill()  # kill -9 during the pause
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close(), proc.stderr.close()
    take = recover(take_dir)
    assert take.manifest.status == "recovered"
    assert len(Take.open(take_dir).store.read_mocap("ana")) == 5

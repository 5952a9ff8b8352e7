"""Two raylet nodes on this machine, started by ``ray start`` as a cluster's operator would.

Every process either node starts (GCS, raylets, agents, workers) stays in the session of the
``ray start`` that made it (``start_new_session``), so teardown ends exactly those processes by
their ids. ``ray stop`` is not used: it ends every Ray process on the machine, other people's
clusters and tests included. Ports are free ones, the temp dir a fresh one (its own address file,
never /tmp/ray/ray_current_cluster).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _node_ports() -> list[str]:
    out: list[str] = []
    for flag in ("--node-manager-port", "--object-manager-port", "--metrics-export-port", "--dashboard-agent-listen-port",
                 "--dashboard-agent-grpc-port", "--runtime-env-agent-port"):
        out += [flag, str(free_port())]
    return out


class TwoNodes:
    """``with TwoNodes(tmp) as c:`` -> ``c.address`` (HEAD:P); both nodes 1 CPU each."""

    def __init__(self, temp_dir: Path, *, cpus: int = 1, timeout_s: float = 60.0) -> None:
        self.temp_dir = Path(temp_dir)
        self.cpus = cpus
        self.timeout_s = timeout_s
        self.sids: list[int] = []
        self.address = ""
        self.log: list[str] = []

    def _start(self, args: list[str]) -> None:
        ray_bin = str(Path(sys.executable).with_name("ray"))
        repo = str(Path(__file__).resolve().parents[2])
        env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0",
               "PYTHONPATH": os.pathsep.join([repo, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
        p = subprocess.Popen([ray_bin, "start", "--num-cpus", str(self.cpus), "--temp-dir", str(self.temp_dir), "--disable-usage-stats",
                              *_node_ports(), *args], env=env, cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             start_new_session=True)
        self.sids.append(p.pid)  # the session leader: every daemon it forks keeps this session id
        try:
            out, _ = p.communicate(timeout=self.timeout_s)
        except subprocess.TimeoutExpired:
            p.kill()
            out, _ = p.communicate()
            raise RuntimeError(f"`ray start {' '.join(args[:2])}` took over {self.timeout_s:.0f} s:\n{out[-2000:]}") from None
        self.log.append(out)
        if p.returncode != 0:
            raise RuntimeError(f"`ray start {' '.join(args[:2])}` failed ({p.returncode}):\n{out[-2000:]}")

    def __enter__(self) -> "TwoNodes":
        self.temp_dir.mkdir(parents=True, exist_ok=True)
        port = free_port()
        try:
            self._start(["--head", "--port", str(port), "--include-dashboard", "false", "--dashboard-port", str(free_port())])
            self.address = (self.temp_dir / "ray_current_cluster").read_text().strip()
            self._start(["--address", self.address])
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def processes(self) -> list[int]:
        """Live processes of our sessions (zombies left to whoever reaps them)."""
        out = []
        for d in Path("/proc").iterdir():
            if not d.name.isdigit():
                continue
            try:
                state = (d / "stat").read_text().rsplit(")", 1)[1].split()[0]
                if state != "Z" and os.getsid(int(d.name)) in self.sids:
                    out.append(int(d.name))
            except (OSError, ValueError, IndexError):
                continue
        return out

    def stop(self, grace_s: float = 5.0) -> None:
        """SIGTERM every process of our sessions, SIGKILL what is left after ``grace_s``."""
        for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 2.0)):
            pids = [p for p in self.processes() if p != os.getpid()]
            for p in pids:
                try:
                    os.kill(p, sig)
                except OSError:
                    pass
            end = time.time() + wait
            while self.processes() and time.time() < end:
                time.sleep(0.2)

"""Never feed the stage its own input: a VMC/VRChat target that is a running stage's UDP mocap
source (``machinima server --udp vmc:39539``) would turn playback into a live performer (and the
live relay into a loop that records itself).

A stage answers ``GET /health`` with the UDP inputs it listens on (kind, host, port). Before
sending, ``play`` and ``live`` ask the stage at each target's host (the configured stage port,
``[server] port`` in machinima.toml, default 8765) and at ``--server``; a target whose port is one
of those inputs, on that host, is refused unless ``--force``. A host with no stage answers
nothing within a short timeout, and the check passes.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import urllib.request
from typing import Any
from urllib.parse import urlparse

from .errors import BridgeError

PROBE_TIMEOUT_S = 0.5
WILDCARDS = ("0.0.0.0", "::", "")


def stage_inputs(host: str, port: int, timeout: float = PROBE_TIMEOUT_S) -> list[dict[str, Any]]:
    """The UDP inputs of the stage at host:port, or [] when no stage answers there."""
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/health", timeout=timeout) as r:
            doc = json.loads(r.read(65536))
    except (OSError, ValueError):
        return []
    udp = doc.get("udp") if isinstance(doc, dict) else None
    return [x for x in udp if isinstance(x, dict)] if isinstance(udp, list) else []


def _addr(host: str) -> str:
    try:
        return socket.gethostbyname(host)
    except OSError:
        return host


def _same_host(a: str, b: str) -> bool:
    a, b = _addr(a), _addr(b)
    if a == b:
        return True
    try:
        return ipaddress.ip_address(a).is_loopback and ipaddress.ip_address(b).is_loopback
    except ValueError:
        return False


def stage_addresses(target_hosts: list[str], stage_port: int, server_url: str | None) -> list[tuple[str, int]]:
    """Where a stage may answer: each target host at the configured stage port, and --server."""
    out = [(h, stage_port) for h in dict.fromkeys(target_hosts)]
    if server_url:
        u = urlparse(server_url)
        if u.hostname and u.port:
            out.append((u.hostname, u.port))
    return list(dict.fromkeys(out))


def feedback_targets(targets: list[tuple[str, str, int]], stages: list[tuple[str, int]],
                     timeout: float = PROBE_TIMEOUT_S) -> list[str]:
    """One line per target that is a stage's own UDP input: ``name host:port is the stage's ...``."""
    found = []
    for shost, sport in stages:
        inputs = stage_inputs(shost, sport, timeout) if any(_same_host(h, shost) for _, h, _ in targets) else []
        for name, host, port in targets:
            for inp in inputs:
                bound = str(inp.get("host", ""))
                if inp.get("port") == port and _same_host(host, shost) and (bound in WILDCARDS or _same_host(bound, host)):
                    found.append(f"{name} {host}:{port} is the {inp.get('kind', 'mocap')} input of the stage at {shost}:{sport}")
    return list(dict.fromkeys(found))


def refuse_feedback(targets: list[tuple[str, str, int]], server_url: str | None, *, force: bool, stage_port: int | None = None) -> list[str]:
    """Raise when a target is a running stage's own input; with ``force``, return the warnings."""
    if not targets:
        return []
    if stage_port is None:
        from machinima.config import load_config

        stage_port = int(load_config().section("server").get("port", 8765))
    lines = feedback_targets(targets, stage_addresses([h for _, h, _ in targets], stage_port, server_url))
    if lines and not force:
        raise BridgeError(f"{lines[0]}: what you send would come back as a live performer",
                          hint="send to the engine's own port (e.g. 39540; docs/engine_bridge.md), or --force if you mean it")
    return lines

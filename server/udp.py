"""Local mocap sources attached to the stage: UDP listeners on the stage machine.

The parsers are the ``machinima.mocap_sources`` plugins (``vmc``, ``osc``, ``xsens`` from
``mocap/``), found by name through entry points and imported only when asked for, so the server
never imports another spoke. Each datagram is fed to the source (sans-I/O:
``feed(data, addr, t_recv_ns) -> frames`` with ``.performer``, ``.pose``, ``.t_recv_ns``);
each frame joins the stage exactly like a pose frame from a remote performer.

    machinima server --udp vmc:39539 --udp xsens:0.0.0.0:9763
"""

from __future__ import annotations

import asyncio
import logging
import time
from importlib.metadata import entry_points
from typing import Any, Callable

from .errors import StageError

log = logging.getLogger("machinima.server")
GROUP = "machinima.mocap_sources"


def parse_spec(spec: str) -> tuple[str, str, int]:
    """``kind:port`` or ``kind:host:port`` -> (kind, host, port)."""
    parts = spec.split(":")
    try:
        if len(parts) == 2:
            return parts[0], "127.0.0.1", int(parts[1])
        if len(parts) == 3:
            return parts[0], parts[1], int(parts[2])
    except ValueError:
        pass
    raise StageError(f"cannot read the UDP source {spec!r}", hint="write KIND:PORT or KIND:HOST:PORT, e.g. vmc:39539")


def _entry_points() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def load_source(kind: str, name: str | None = None) -> Any:
    eps = _entry_points()
    if kind not in eps:
        raise StageError(f"no mocap source named {kind!r}", hint=f"installed: {', '.join(sorted(eps)) or 'none (install machinima with its mocap package)'}")
    try:
        cls = eps[kind].load()
    except Exception as exc:
        raise StageError(f"mocap source {kind!r} failed to load: {exc}") from None
    return cls(name or kind)


class SourceProtocol(asyncio.DatagramProtocol):
    def __init__(self, source: Any, on_pose: Callable[[str, Any, int], None]) -> None:
        self.source = source
        self.on_pose = on_pose
        self.datagrams = 0
        self.errors = 0

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.datagrams += 1
        try:
            frames = self.source.feed(data, addr, time.monotonic_ns())
        except Exception:  # a source bug costs one datagram, never the stage
            self.errors += 1
            log.exception("mocap source %s failed on a datagram", getattr(self.source, "name", "?"))
            return
        for f in frames:
            if getattr(f, "pose", None) is not None:
                self.on_pose(f.performer, f.pose, f.t_recv_ns)

"""Local mocap sources attached to the stage: UDP listeners on the stage machine.

The parsers are the ``machinima.mocap_sources`` plugins (``vmc``, ``osc``, ``xsens`` from
``mocap/``), found by name through entry points and imported only when asked for, so the server
never imports another spoke. Each datagram is fed to the source (sans-I/O:
``feed(data, addr, t_recv_ns) -> frames`` with ``.performer``, ``.pose``, ``.blendshapes``,
``.t_recv_ns``; ``poll``/``flush`` for frames held until a sender goes quiet); each frame joins
the stage exactly like the pose and blendshape frames of a remote performer.

    machinima server --udp vmc:39539 --udp xsens:0.0.0.0:9763
"""

from __future__ import annotations

import asyncio
import logging
import time
from importlib.metadata import entry_points
from typing import Any, Callable

from machinima.udprecv import UDPReceiver, open_udp

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


class SourceProtocol:
    """Drives one local source: datagrams (kernel-stamped, drained in batches by the hub's
    ``UDPReceiver``) into ``source.feed``, and every ``poll_ms`` the source's ``poll`` (the
    frame of a sender that went quiet: the last frame of a stream) once the socket is drained.
    Each frame goes to ``on_frame`` (its ``performer``, ``pose`` or None, ``blendshapes``,
    ``t_recv_ns``)."""

    def __init__(self, source: Any, on_frame: Callable[[Any], None], *, poll_ms: float = 10.0) -> None:
        self.source = source
        self.on_frame = on_frame
        self.poll_s = poll_ms / 1000.0
        self.datagrams = 0
        self.errors = 0
        self.sockname: tuple = ()
        self._receiver: UDPReceiver | None = None
        self._task: asyncio.Task | None = None

    async def start(self, host: str, port: int) -> "SourceProtocol":
        sock = open_udp(host, port)
        self.sockname = sock.getsockname()
        self._receiver = UDPReceiver(sock, self.datagram_received).attach(asyncio.get_running_loop())
        if hasattr(self.source, "poll"):
            self._task = asyncio.ensure_future(self._poll())
        return self

    def datagram_received(self, data: bytes, addr: Any, t_recv_ns: int | None = None, t_read_ns: int | None = None) -> None:
        self.datagrams += 1
        try:
            frames = self.source.feed(data, addr, time.monotonic_ns() if t_recv_ns is None else t_recv_ns)
        except Exception:  # a source bug costs one datagram, never the stage
            self.errors += 1
            log.exception("mocap source %s failed on a datagram", getattr(self.source, "name", "?"))
            return
        self._deliver(frames)

    def _deliver(self, frames: Any) -> None:
        for f in frames or ():
            try:
                self.on_frame(f)
            except Exception:
                self.errors += 1
                log.exception("a frame of mocap source %s could not join the stage", getattr(self.source, "name", "?"))

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.poll_s)
            if self._receiver is not None and not self._receiver.backlog:
                try:
                    self._deliver(self.source.poll(time.monotonic_ns()))
                except Exception:
                    self.errors += 1
                    log.exception("mocap source %s failed to poll", getattr(self.source, "name", "?"))

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self._receiver is not None:
            self._receiver.close()
            self._receiver = None
        flush = getattr(self.source, "flush", None)
        if flush is not None:
            self._deliver(flush())

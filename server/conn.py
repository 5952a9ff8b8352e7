"""One client connection of the stage as the fan-out sees it, and the server's limits.

Frames are written straight to each connection's transport (encoded once, written to many), so
this is where a dead or slow socket must stop being a problem for the others:

- ``Conn.write`` writes only to a connection that is open: not closing on our side, its
  WebSocket still ``OPEN`` (a close handshake in progress half-closes the TCP stream, after
  which ``transport.write`` raises) and its transport not closing. A write that fails anyway
  marks that connection closing and returns False; nothing is raised to the fan-out loop.
- ``probe_drain`` tells how far behind a viewer is: a WebSocket ping goes out behind the frames
  already queued, so its pong proves the viewer has read everything sent before it. The time
  the newest answered ping was sent is ``drained_at``; a viewer that has not drained for
  ``Limits.slow_close_s`` is too slow, however much of its backlog the kernel's socket buffers
  hide (several MB on loopback: bytes queued in user space alone would cut it after ~48 s).
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from dataclasses import dataclass, field
from typing import Any

from websockets.protocol import State

from machinima import protocol as P

log = logging.getLogger("machinima.server")


@dataclass
class Limits:
    """Every limit of the server, as keywords with safe defaults (``None`` = unlimited)."""

    max_size: int | None = 256 * 1024  # bytes per message
    max_rate: float = 2000.0  # messages a second per client (a relay of 16 performers at 120 Hz)
    burst: float = 2000.0
    flood_close_s: float = 2.0
    hello_timeout: float = 5.0
    ping_interval: float | None = 20.0
    ping_timeout: float | None = 20.0
    viewer_buffer: int = 256 * 1024  # bytes queued to a client before live frames are skipped
    slow_close_s: float = 10.0  # a viewer that has not drained for this long is closed (4009)
    send_buffer: int | None = None  # SO_SNDBUF of each connection (None: the OS default)
    max_clients: int = 5000
    max_streams: int = 16  # performers + cameras one connection may publish
    id_cache: int = 4096  # answers kept for idempotent command ids


def ws_frame(payload: bytes, opcode: int) -> bytes:
    """A complete unmasked server WebSocket frame (FIN set): encoded once, written to many."""
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 127, n)
    return head + payload


def close_reason(text: str) -> str:
    """A close reason within the 123 bytes of UTF-8 a WebSocket close frame can carry."""
    data = text.encode("utf-8")
    return text if len(data) <= 123 else data[:123].decode("utf-8", "ignore")


@dataclass
class Conn:
    ws: Any
    role: str
    name: str
    session: str
    client: str = ""
    frames: bool = False
    performers: frozenset[str] | None = None
    encoding: int = P.ENC_F32
    events: bool = True
    tokens: float = 0.0
    refill_t: float = 0.0
    over_since: float | None = None
    last_reject: float = 0.0
    last_error_t: float = 0.0
    dropped: int = 0
    dropped_told: int = 0
    published: set[str] = field(default_factory=set)
    closing: bool = False
    expires: float = float("inf")  # the token's expiry (Unix seconds)
    drained_at: float = 0.0  # monotonic: sent time of the newest ping the viewer answered
    probe: asyncio.Future | None = None

    def is_open(self) -> bool:
        """Frames may be written: a network client whose WebSocket is open and not closing."""
        ws = self.ws
        return ws is not None and not self.closing and ws.state is State.OPEN and not ws.transport.is_closing()

    def write(self, data: bytes) -> bool:
        """Write a ready-made frame; False (and nothing raised) when the connection is going."""
        if not self.is_open():
            return False
        try:
            self.ws.transport.write(data)
        except (RuntimeError, OSError) as exc:  # written after EOF, a socket gone under us
            self.closing = True
            log.debug("%s: write failed (%s); dropping it from the fan-out", self.name, exc)
            return False
        return True

    def start_probe(self, period: float) -> None:
        """Begin measuring how far behind this viewer is (once, for frame subscribers)."""
        if self.probe is None and self.ws is not None:
            self.drained_at = time.monotonic()
            self.probe = asyncio.ensure_future(self._probe_drain(period))

    async def _probe_drain(self, period: float) -> None:
        try:
            while not self.closing:
                sent = time.monotonic()
                pong = await self.ws.ping()  # queued behind every frame written before it
                await pong
                self.drained_at = sent
                await asyncio.sleep(period)
        except asyncio.CancelledError:
            pass
        except Exception as exc:  # the connection closed: the handler cleans it up
            log.debug("%s: drain probe ended (%s)", self.name, exc)

    def stop_probe(self) -> None:
        if self.probe is not None:
            self.probe.cancel()
            self.probe = None

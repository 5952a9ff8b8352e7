"""The Xsens MVN source: datagrams -> frames, one performer per MVN character."""

from __future__ import annotations

import time
from collections import Counter

from .frames import Frame
from .sources import RateLimiter
from .xsens import XsensDecoder, timecode_seconds


class XsensSource:
    """Performer names: ``performers[str(character id)]`` when given, else the name MVN sends
    in its meta data (type 12), else ``<name>-<character id>``. The sample counter orders
    frames and counts drops; the time code (ms) is the sender's clock. Late samples are
    delivered (the listener reorders or records them); a counter restart is flagged in
    ``Frame.meta["restart"]`` so the timing stage starts over and the take notes a gap."""

    kind = "xsens"

    def __init__(self, name: str = "xsens", *, performers: dict[str, str] | None = None, max_packets_per_s: float = 20000.0, euler_order: str = "XYZ") -> None:
        self.name = name
        self.performer_names = dict(performers or {})
        self.decoder = XsensDecoder(euler_order=euler_order)
        self.rejects: Counter[str] = self.decoder.counts
        self._limiter = RateLimiter(max_packets_per_s)
        self._emitted: dict[int, str] = {}

    def performer(self, character: int) -> str:
        return self.performer_names.get(str(character)) or self.decoder.names.get(character) or f"{self.name}-{character}"

    def feed(self, data: bytes, addr: tuple, t_recv_ns: int | None = None) -> list[Frame]:
        now = time.monotonic_ns() if t_recv_ns is None else t_recv_ns
        if not self._limiter.allow(addr, now):
            self.rejects["flood"] += 1
            return []
        out = []
        for s in self.decoder.feed(data):
            if s.pose is None:
                continue  # type 03 point clouds carry no pose
            tc = self.decoder.timecodes.get(s.character)
            meta = {"timecode": tc, "timecode_s": timecode_seconds(tc) if tc else None, "type": s.msg_type}
            if s.restart:
                meta["restart"] = True
            out.append(Frame(self.performer(s.character), self.name, now, s.pose, s.time_ms / 1000.0, s.sample, None, meta=meta))
        return out

"""A performer (or camera) seen on the stage: its latest frame (encoded once per encoding) and
its health (rate, loss, latency) for the stage ``state``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from machinima import protocol as P

if TYPE_CHECKING:
    from .conn import Conn


@dataclass
class Source:
    """A performer (or camera) seen on the stage, with its health."""

    name: str
    kind: int = P.KIND_POSE
    conn: "Conn | None" = None
    frames: int = 0
    loss: int = 0
    last_seq: int | None = None
    latency_ms: float = 0.0
    rate: float = 0.0
    last_arrival: float = 0.0
    window_count: int = 0
    f32: bytes = b""
    _f16: bytes | None = None
    dirty: bool = False

    def encoded(self, enc: int) -> bytes:
        if enc == P.ENC_F16 and self.kind == P.KIND_POSE:
            if self._f16 is None:
                self._f16 = P.recode_pose(self.f32, P.ENC_F16)
            return self._f16
        return self.f32

    def health(self, now: float) -> dict[str, Any]:
        sent = self.frames + self.loss
        return {
            "name": self.name,
            "kind": "camera" if self.kind == P.KIND_CAMERA else "performer",
            "connected": self.conn is not None,
            "client": self.conn.name if self.conn else None,
            "rate": round(self.rate, 1),
            "frames": self.frames,
            "loss": self.loss,
            "loss_pct": round(100.0 * self.loss / sent, 2) if sent else 0.0,
            "latency_ms": round(self.latency_ms, 2),
            "last_seen_s": round(now - self.last_arrival, 2) if self.last_arrival else None,
        }

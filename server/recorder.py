"""Recording: one running take at a time, written through the hub's ``TakeWriter``.

The recorder never drops: every frame the server accepts while a take runs is handed to the
writer at once, and the writer commits at least every ``flush_interval`` (80 ms) on the stage's
tick, input or not, so a ``kill -9`` loses at most the last ~100 ms. Stamps are the server's
monotonic clock at arrival, so every stream of the take shares one time base. Performers'
poses go to ``mocap/<name>``, their blendshape frames to ``blend/<name>``, engine cameras to
``camera/<name>``. A performer that disconnects mid-take leaves a ``gap`` record (stream
``gaps``) when it drops and another, closed one when it comes back.

A full disk (``DiskFullError``, from any call) stops the take: what was committed stays, the
take is marked ``failed`` with a note when the disk lets it (``fail``), its lock is released,
and the server tells the director.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from machinima.errors import DiskFullError, MachinimaError
from machinima.take import Take
from machinima.takewriter import TakeWriter

from .errors import RecordingError

log = logging.getLogger("machinima.server")


class Recorder:
    def __init__(self, root: Path, *, fps: str = "24", flush_interval: float = 0.08) -> None:
        self.root = Path(root)
        self.fps = fps
        self.flush_interval = flush_interval
        self.take: Take | None = None
        self.writer: TakeWriter | None = None
        self.started_ns = 0
        self.last_error: str | None = None
        self._performers: set[str] = set()

    @property
    def recording(self) -> bool:
        return self.take is not None

    def start(self, slate: dict[str, str], *, performers: list[str], notes: list[str] | None = None,
              timecode_in: str | None = None, origin_ns: int | None = None) -> Take:
        """Create and open the next take; ``timecode_in`` is the timecode at monotonic instant
        ``origin_ns`` (default 00:00:00:00 now). A full disk raises ``DiskFullError`` (nothing
        is left behind), other failures ``RecordingError``."""
        if self.take is not None:
            raise RecordingError(f"take {self.take.id} is already recording")
        now = time.monotonic_ns()
        try:
            take = Take.create(
                self.root, production=slate["production"], scene=slate["scene"], shot=slate["shot"],
                fps=self.fps, performers=performers, notes=notes, timecode_in=timecode_in,
                origin_ns=now if origin_ns is None else origin_ns,
            )
        except DiskFullError:
            raise
        except MachinimaError as exc:
            raise RecordingError(f"cannot create the take: {exc}") from None
        try:
            for p in performers:
                take.store.add_mocap_stream(p)
            writer = TakeWriter(take, commit_interval=self.flush_interval)
        except MachinimaError as exc:
            take.close()
            raise RecordingError(f"cannot start recording {take.id}: {exc}") from None
        self._performers = set(performers)
        self.take, self.writer, self.started_ns, self.last_error = take, writer, now, None
        log.info("recording %s", take.id)
        return take

    def performers(self) -> list[str]:
        return sorted(self._performers)

    @property
    def frames(self) -> int:
        """Samples accepted in this take (poses, blendshape frames, camera samples)."""
        return self.writer.samples if self.writer is not None else 0

    @property
    def open_gaps(self) -> dict[str, int]:
        return self.writer.open_gaps if self.writer is not None else {}

    # --- appending (each may raise DiskFullError; the server then calls fail()) ---------------
    def pose(self, performer: str, t_ns: int, values: np.ndarray) -> None:
        self._performers.add(performer)
        self.writer.pose(performer, t_ns, values)  # type: ignore[union-attr]

    def blend(self, performer: str, t_ns: int, values: Mapping[str, float]) -> None:
        self.writer.blend(performer, t_ns, values)  # type: ignore[union-attr]

    def camera(self, camera: str, t_ns: int, values: np.ndarray) -> None:
        self.writer.camera(camera, t_ns, values)  # type: ignore[union-attr]

    def event(self, t_ns: int, payload: dict[str, Any]) -> None:
        self.writer.event(t_ns, payload)  # type: ignore[union-attr]

    def marker(self, t_ns: int, name: str, note: str = "", color: str = "red") -> dict[str, Any]:
        return self.writer.marker(t_ns, name, note, color)  # type: ignore[union-attr]

    def gap_open(self, performer: str, reason: str) -> None:
        self.writer.gap_open(performer, reason)  # type: ignore[union-attr]

    def gap_close(self, performer: str) -> None:
        if self.writer is not None and performer in self.writer.open_gaps:
            self.writer.gap_close(performer)

    def tick(self) -> None:
        """Commit buffered records at least every ``flush_interval`` even when input pauses."""
        if self.writer is not None:
            self.writer.tick()

    # --- ending -------------------------------------------------------------------------------
    def stop(self, *, cut: bool = False) -> dict[str, Any]:
        take, writer = self.take, self.writer
        if take is None or writer is None:
            raise RecordingError("no take is recording")
        extra = {"ended_by": "cut"} if cut else None
        result = writer.close("complete", extra=extra, notes=["cut"] if cut else None)
        self.take, self.writer = None, None
        log.info("stopped %s (%d samples)", take.id, result["samples"])
        return {"take": take.id, "status": take.manifest.status, "samples": result["samples"], "timecode_out": take.manifest.timecode_out}

    def fail(self, error: BaseException) -> dict[str, Any]:
        """Stop the take after a write error; what was committed stays. Returns a summary."""
        take, writer = self.take, self.writer
        self.take, self.writer = None, None
        self.last_error = str(error)
        if take is None or writer is None:
            return {}
        summary = writer.abort(error)
        log.error("recording of %s stopped: %s", take.id, error)
        return {"take": take.id, "status": summary["status"]}

"""Recording: one running take at a time, written through ``machinima.take`` and its store.

The recorder never drops: every frame the server accepts while a take runs is appended at
once (the store buffers and commits every ``flush_interval`` = 80 ms, checked on every tick, so
a ``kill -9`` loses at most the last 100 ms). Stamps are the server's monotonic clock at arrival, so every stream of the
take shares one time base. A performer that disconnects mid-take leaves a ``gap`` record
(stream ``gaps``) when it drops and another, closed one when it comes back.

A full disk (``DiskFullError``) stops the take: what was committed stays, the take is marked
``failed`` with a note, and the server tells the director.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from machinima.errors import DiskFullError, MachinimaError
from machinima.take import Take

from .errors import RecordingError

log = logging.getLogger("machinima.server")


class Recorder:
    def __init__(self, root: Path, *, fps: str = "24", flush_interval: float = 0.08) -> None:
        self.root = Path(root)
        self.fps = fps
        self.flush_interval = flush_interval
        self.take: Take | None = None
        self.started_ns = 0
        self.frames = 0  # samples appended in this take
        self.open_gaps: dict[str, int] = {}
        self.last_error: str | None = None
        self._declared: set[str] = set()
        self._last_flush = time.monotonic()

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
        take.store.flush_interval = self.flush_interval
        for p in performers:
            take.store.add_mocap_stream(p)
        self._declared = {f"mocap/{p}" for p in performers}
        self.take, self.started_ns, self.frames, self.open_gaps, self.last_error = take, now, 0, {}, None
        log.info("recording %s", take.id)
        return take

    def performers(self) -> list[str]:
        return sorted(n.split("/", 1)[1] for n in self._declared if n.startswith("mocap/"))

    # --- appending (each may raise DiskFullError; the server then calls fail()) ---------------
    def pose(self, performer: str, t_ns: int, values: np.ndarray) -> None:
        store = self.take.store
        name = f"mocap/{performer}"
        if name not in self._declared:
            self.take.add_performer(performer)  # joined mid-take: its stream starts now
            self._declared.add(name)
        store.append(name, t_ns, values)
        self.frames += 1

    def camera(self, camera: str, t_ns: int, values: np.ndarray) -> None:
        store = self.take.store
        name = f"camera/{camera}"
        if name not in self._declared:
            store.add_camera_stream(camera)
            self._declared.add(name)
        store.append(name, t_ns, values)
        self.frames += 1

    def event(self, t_ns: int, payload: dict[str, Any]) -> None:
        self.take.store.append_event(t_ns, "event", payload)

    def marker(self, t_ns: int, name: str, note: str = "", color: str = "red") -> dict[str, Any]:
        self.take.add_marker(t_ns, name, note, color)
        return self.take.manifest.markers[-1]

    def gap_open(self, performer: str, reason: str) -> None:
        t = time.monotonic_ns()
        self.open_gaps[performer] = t
        self.take.store.append_event(t, "gap", {"performer": performer, "state": "open", "reason": reason}, stream="gaps")

    def gap_close(self, performer: str) -> None:
        t0 = self.open_gaps.pop(performer, None)
        if t0 is None:
            return
        t1 = time.monotonic_ns()
        self.take.store.append_event(
            t1, "gap", {"performer": performer, "state": "closed", "from_ns": t0, "to_ns": t1, "ms": round((t1 - t0) / 1e6, 1)}, stream="gaps"
        )

    def tick(self) -> None:
        """Commit buffered records at least every ``flush_interval`` even when input pauses."""
        if self.take is not None and time.monotonic() - self._last_flush >= self.flush_interval:
            self._last_flush = time.monotonic()
            self.take.store.flush()

    # --- ending -------------------------------------------------------------------------------
    def stop(self, *, cut: bool = False) -> dict[str, Any]:
        take = self.take
        if take is None:
            raise RecordingError("no take is recording")
        t = time.monotonic_ns()
        for performer in list(self.open_gaps):
            take.store.append_event(t, "gap", {"performer": performer, "state": "open-at-end"}, stream="gaps")
        if cut:
            take.manifest.extra["ended_by"] = "cut"
            take.manifest.notes.append("cut")
        take.finalize("complete")
        self.take = None
        samples = sum(int(s.get("samples", 0)) for s in take.manifest.streams)
        log.info("stopped %s (%d samples)", take.id, samples)
        return {"take": take.id, "status": take.manifest.status, "samples": samples, "timecode_out": take.manifest.timecode_out}

    def fail(self, error: BaseException) -> dict[str, Any]:
        """Stop the take after a write error; what was committed stays. Returns a summary."""
        take = self.take
        self.take = None
        self.last_error = str(error)
        if take is None:
            return {}
        take.fail(str(error))  # failed + note on disk, lock released; never raises
        log.error("recording of %s stopped: %s", take.id, error)
        return {"take": take.id, "status": take.manifest.status}

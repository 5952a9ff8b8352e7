"""The frame loop's companions: Ctrl-C as a flag checked between frames, the progress bar, and
the run's report with the summary line every step prints at its end (kept apart from
``poststep`` to keep it small)."""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class StopFlag:
    """Turns SIGINT/SIGTERM into a flag checked between frames (main thread only)."""

    def __init__(self) -> None:
        self.stop = False
        self._old: dict[int, Any] = {}

    def __enter__(self) -> "StopFlag":
        import threading

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.stop:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.stop = True

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


class Bar:
    """A rich progress bar with the frame rate (nothing at all when disabled: tests, Ray workers)."""

    def __init__(self, enabled: bool, description: str, total: int, completed: int) -> None:
        self._p = None
        if enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

            self._p = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TimeRemainingColumn(), transient=False,
            )
            self._p.start()
            self._task = self._p.add_task(description, total=total, completed=completed, rate="")
            self._t0 = time.perf_counter()
            self._n = 0

    def advance(self, n: int) -> None:
        if self._p is not None:
            self._n += n
            rate = self._n / max(time.perf_counter() - self._t0, 1e-9)
            self._p.update(self._task, advance=n, rate=f"{rate:.2f} fr/s")

    def close(self) -> None:
        if self._p is not None:
            self._p.stop()


def say(line: str) -> None:
    """A summary line on stderr (stdout may carry a step's JSON)."""
    from rich.console import Console

    Console(stderr=True, highlight=False).print(line)


def progress_bar(enabled: bool, description: str, total: int, completed: int) -> Bar:
    return Bar(enabled and total > 0, description, total, completed)


@dataclass
class StepReport:
    step_id: str
    out_dir: Path
    done: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)
    seconds: float = 0.0
    kernel_seconds: float = 0.0  # inside ``process`` (the step's compute, and its own reads)
    write_wait_seconds: float = 0.0  # waiting on the write-behind queue (encoding not hidden)
    bytes_written: int = 0
    seal_seconds: float = 0.0  # signing the sequence manifest (QOI frames), once per run

    @property
    def fps(self) -> float:
        return len(self.done) / self.seconds if self.seconds > 0 else 0.0

    def summary(self, what: str = "") -> str:
        """Frames/s disk to disk beside the kernel's: the line every step's CLI prints at its end."""
        from .frameio import summary_line

        return summary_line(what or self.step_id, len(self.done), self.seconds, self.kernel_seconds,
                            write_wait_s=self.write_wait_seconds, bytes_written=self.bytes_written)

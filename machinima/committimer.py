"""Commits on a timer, from a thread of idle priority: a take writer's samples reach the disk
within ``interval`` of arriving, input or not, and the commit work (array stacking, the chunk
codec's zlib, SQLite) never takes CPU from the thread that receives.

Why a thread of its own at idle priority: a listener that commits from its receive loop spends
the commit's milliseconds there, and datagrams wait in the socket meanwhile (under a flood the
kernel drops them). On Linux the timer thread asks for ``SCHED_IDLE`` (no privilege needed),
falling back to nice 19 for the thread; it then runs only on CPU time nothing else wants. The
heavy parts of a commit (zlib, SQLite) release the GIL, so the receive thread goes on while
they run.

Why a guard: on a machine with no idle CPU at all an idle thread may not run for a long time,
and acknowledged data would lag. ``due()`` tells the owner's loop that the timer has fallen
behind (no commit for ``interval`` plus two timer periods: 100 ms for the default 80 ms): the
owner then commits itself (the listener's loop does), so frames reach the disk within about
100 ms on a saturated machine too.

Why a short GIL switch interval while a timer runs: the commit's Python parts (swapping
buffers, stacking arrays) hold the GIL; a receive thread woken by a datagram meanwhile waits
for it up to ``sys.getswitchinterval()`` (5 ms by default), and an idle-priority holder may
wait for a CPU before it lets go. A live frame should be handed on within a fraction of a
millisecond, so while any timer runs the interval is at most ``SWITCH_INTERVAL`` (0.5 ms; the
previous value comes back when the last timer stops).

    timer = CommitTimer(writer, interval=0.08).start()
    ...
    timer.stop()
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from typing import Any, Callable

log = logging.getLogger("machinima.committimer")

__all__ = ["CommitTimer", "SWITCH_INTERVAL", "lower_thread_priority"]

SWITCH_INTERVAL = 0.0005  # seconds: how long a receive thread may wait for the GIL a commit holds
_switch_lock = threading.Lock()
_switch_users = 0
_switch_saved: float | None = None


def _short_switch(on: bool) -> None:
    """Shorten the GIL switch interval while at least one timer runs (see the module docstring)."""
    global _switch_users, _switch_saved
    with _switch_lock:
        if on:
            _switch_users += 1
            if _switch_users == 1:
                _switch_saved = sys.getswitchinterval()
                if _switch_saved > SWITCH_INTERVAL:
                    sys.setswitchinterval(SWITCH_INTERVAL)
        elif _switch_users > 0:
            _switch_users -= 1
            if _switch_users == 0 and _switch_saved is not None:
                if abs(sys.getswitchinterval() - min(_switch_saved, SWITCH_INTERVAL)) < 1e-9:  # nobody changed it since
                    sys.setswitchinterval(_switch_saved)
                _switch_saved = None


def lower_thread_priority() -> str:
    """Give the calling thread idle priority; returns what it got ("idle", "nice", "normal")."""
    tid = threading.get_native_id()
    if hasattr(os, "sched_setscheduler") and hasattr(os, "SCHED_IDLE"):
        try:
            os.sched_setscheduler(tid, os.SCHED_IDLE, os.sched_param(0))  # a TID on Linux: this thread only
            return "idle"
        except OSError:
            pass
    try:
        os.setpriority(os.PRIO_PROCESS, tid, 19)  # per thread on Linux
        return "nice"
    except (OSError, AttributeError):
        return "normal"


class CommitTimer:
    """Calls ``writer.tick()`` every ``interval / 8`` from a daemon thread (idle priority when
    ``idle_priority``). ``interval`` defaults to the writer's ``commit_interval`` (an explicit one must be at most 0.1 s).
    A ``MachinimaError`` (a full disk) stops the timer and goes to ``on_error``; the writer is
    broken from then on, so the owner's next call raises it too. ``commits`` counts commits,
    ``priority`` says what the thread got."""

    def __init__(self, writer: Any, *, interval: float | None = None, idle_priority: bool = True,
                 on_error: Callable[[BaseException], None] | None = None) -> None:
        if interval is not None and not 0 < interval <= 0.1:
            raise ValueError("the commit interval must be > 0 and <= 0.1 s (frames on disk within 100 ms)")
        iv = float(interval if interval is not None else getattr(writer, "commit_interval", 0.08))
        self.writer = writer
        self.interval = iv
        self.idle_priority = idle_priority
        self.on_error = on_error
        self.commits = 0
        self.priority = "normal"
        self.last_ns = time.monotonic_ns()
        self._stop = threading.Event()
        self._short = False
        take = getattr(writer, "take", None)
        self._thread = threading.Thread(target=self._run, name=f"commit-{getattr(take, 'id', 'writer')}", daemon=True)

    def start(self) -> "CommitTimer":
        _short_switch(True)
        self._short = True
        self._thread.start()
        return self

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def due(self) -> bool:
        """True when the writer has not committed for ``interval`` plus two of the timer's
        periods (the timer thread is starved of CPU): the owner should commit itself."""
        last = getattr(self.writer, "_last_commit", None)
        if last is None:
            return time.monotonic_ns() - self.last_ns > (self.interval + 2 * self.interval / 8) * 1e9
        return self.writer.clock() - last > self.interval + 2 * self.interval / 8

    def _run(self) -> None:
        from .errors import MachinimaError

        if self.idle_priority:
            self.priority = lower_thread_priority()
        period = self.interval / 8
        while not self._stop.wait(period):
            self.last_ns = time.monotonic_ns()
            try:
                if self.writer.tick():
                    self.commits += 1
            except MachinimaError as exc:
                if self.on_error is not None:
                    self.on_error(exc)
                return
            except Exception as exc:  # a bug must not leave the take silently uncommitted
                log.exception("commit timer stopped: %s", exc)
                if self.on_error is not None:
                    self.on_error(exc)
                return

    def stop(self) -> None:
        self._stop.set()
        if self._short:
            self._short = False
            _short_switch(False)
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(5)

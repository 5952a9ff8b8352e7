"""Ctrl-C that works during a Cycles render, for the headless CLI.

``bpy.ops.render.render`` holds the main thread inside Blender for the whole frame (14 s at
960x540 here), and Python runs its SIGINT handler only when the main thread comes back: Ctrl-C
did nothing until the frame ended, then surfaced as a KeyboardInterrupt traceback inside
Blender's callbacks while rendering went on. Python's C-level handler does write the signal
number to a wakeup fd at once, whatever the main thread is doing, so a watcher thread reading
that fd learns of Ctrl-C within milliseconds. It runs ``cleanup`` (remove the temporary render
folder and half-written files; finished frames stay, they were written atomically and
camera.json last), prints its one-line message and ends the process with 130, the shell's code
for Ctrl-C. Nothing else can stop a Cycles render from Python: its cancel flag is not exposed.

Only for the CLI: inside Blender's UI (or off the main thread) the context manager does nothing.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

STOP = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def exit_on_interrupt(cleanup: Callable[[], str]) -> Iterator[None]:
    """Within the block, Ctrl-C (or SIGTERM) runs ``cleanup`` and exits the process with 130."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    r, w = os.pipe()
    os.set_blocking(w, False)
    old_handlers = {s: signal.signal(s, lambda *_: None) for s in STOP}  # the watcher acts, not Python's handler
    old_fd = signal.set_wakeup_fd(w, warn_on_full_buffer=False)
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            try:
                data = os.read(r, 64)
            except OSError:
                return
            if not data or stop.is_set():
                return
            if any(b in (int(s) for s in STOP) for b in data):
                try:
                    message = cleanup()
                except Exception as exc:  # never stay alive because cleaning failed
                    message = f"interrupted (cleanup failed: {exc})"
                sys.stderr.write(f"{message}\n")
                sys.stderr.flush()
                os._exit(130)

    thread = threading.Thread(target=watch, name="ctrl-c watcher", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        signal.set_wakeup_fd(old_fd)
        for s, h in old_handlers.items():
            signal.signal(s, h)
        os.write(w, b"\0")  # wake the watcher so it sees ``stop``
        thread.join(timeout=1.0)
        os.close(w)
        os.close(r)


def clean_passes(passes_dir: Path) -> int:
    """Remove the temporary render folders (``.render-*``) and half-written files (``.NAME.*``
    temp files of atomic writes) under a passes folder; returns the frames finished there."""
    import json

    if passes_dir.is_dir():
        for tmp in passes_dir.glob(".render-*"):
            shutil.rmtree(tmp, ignore_errors=True)
        for p in passes_dir.rglob(".*.*"):
            if p.is_file():
                p.unlink(missing_ok=True)
    try:
        return len(json.loads((passes_dir / "camera.json").read_text()).get("frames", {}))
    except (OSError, ValueError):
        return 0

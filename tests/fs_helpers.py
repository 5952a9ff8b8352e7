"""A small file system of its own for a test: a tmpfs (full disks, read-only roots).

Mounting needs root (and a kernel that lets this container mount); elsewhere the tests that
need it are skipped with the reason, and cheaper stand-ins (SQLite's page limit, ENOSPC
injected at the OS call) cover the same code paths.
"""

from __future__ import annotations

import contextlib
import gc
import subprocess
from pathlib import Path

import pytest


@contextlib.contextmanager
def tmpfs(path: Path, size: str = "2m"):
    """Mount a ``size`` tmpfs at ``path`` for the block; skips the test when mounting is refused."""
    path.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip() or r.returncode}); needs root")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def remount_read_only(path: Path) -> None:
    gc.collect()  # connections nobody holds any more still hold their files open for writing
    subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True, capture_output=True)


def fill(path: Path) -> int:
    """Write into ``path/filler`` until the disk is full; returns the bytes written."""
    written = 0
    with open(path / "filler", "wb", buffering=0) as fh:
        chunk = b"\xff" * 65536
        while True:
            try:
                written += fh.write(chunk)
            except OSError:
                break
        while True:  # the last partial page
            try:
                written += fh.write(b"\xff")
            except OSError:
                return written

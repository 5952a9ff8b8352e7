"""Files that survive crashes: atomic writes (temp, fsync, rename) and single-writer locks."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from .errors import DiskFullError, MachinimaError, TakeLockedError


def umask() -> int:
    """The process umask, read without changing it (Linux: /proc; elsewhere set-and-restore)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def file_mode(private: bool = False) -> int:
    """The mode a new file gets: 0600 for secrets, else what ``open()`` would give (0666 & ~umask).

    ``mkstemp`` creates 0600 files whatever the umask; renaming one into place made every
    deliverable unreadable to the rest of a team on shared storage.
    """
    return 0o600 if private else 0o666 & ~umask()


def temp_beside(path: str | Path, *, suffix: str = ".tmp", private: bool = False) -> tuple[int, str]:
    """``mkstemp`` in ``path``'s folder (same file system, so ``os.replace`` is atomic), with the
    mode the final file should have (``file_mode``)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=suffix, dir=path.parent)
    try:
        os.fchmod(fd, file_mode(private))
    except OSError:
        pass
    return fd, tmp


def atomic_write_bytes(path: str | Path, data: bytes, *, private: bool = False) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half.

    The file follows the umask like any other file (``private=True``: 0600, for keys).
    A full disk raises ``DiskFullError`` and leaves the old file as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = temp_beside(path, private=private)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFullError(f"disk full while writing {path}; the previous version is intact") from None
        raise MachinimaError(f"could not write {path}: {exc.strerror or exc}") from None


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, doc: Any) -> None:
    atomic_write_text(path, json.dumps(doc, indent=2, sort_keys=False, ensure_ascii=False) + "\n")


class FileLock:
    """An exclusive advisory lock (flock) on ``path``; the OS releases it when the process dies,
    so a crashed writer never leaves a take locked forever."""

    def __init__(self, path: str | Path, what: str = "file") -> None:
        self.path = Path(path)
        self.what = what
        self._fd: int | None = None

    def acquire(self) -> "FileLock":
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = ""
            try:
                holder = self.path.read_text().strip()
            except OSError:
                pass
            raise TakeLockedError(
                f"{self.what} is already open for writing{f' by pid {holder}' if holder else ''}",
                hint="stop the other writer first; only one process may write a take",
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return self

    def acquire_wait(self) -> "FileLock":
        """Like ``acquire`` but waits for the holder (short critical sections shared by processes)."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        self._fd = fd
        return self

    def is_held_elsewhere(self) -> bool:
        """True if another live process holds the lock (used by recovery)."""
        if not self.path.exists():
            return False
        fd = os.open(self.path, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "FileLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


# --- per-process temporary names for frames -------------------------------------------------
# Several processes may write frames into one folder at once (a step's Ray chunks). Each
# temporary name carries host and pid, so a process only sweeps temps that cannot be another
# live writer's: its own host's dead pids, or anything older than STALE_TEMP_S.
TEMP_MARK = ".tmp-"
STALE_TEMP_S = 3600.0


def frame_temp_name(path: str | Path) -> Path:
    """``.<name>.tmp-<host>-<pid>-<random>.<ext>``: beside ``path`` (same file system, so the
    rename is atomic), ending with the real extension (codecs pick their format by it)."""
    import socket
    import uuid

    path = Path(path)
    host = socket.gethostname().split(".")[0].replace("-", "_") or "host"
    return path.with_name(f".{path.stem}{TEMP_MARK}{host}-{os.getpid()}-{uuid.uuid4().hex[:8]}{path.suffix}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale_temps(folder: str | Path, *, now: float | None = None) -> list[Path]:
    """Remove frame temps left by killed writers (never a live writer's); returns what went."""
    import socket
    import time

    folder = Path(folder)
    if not folder.is_dir():
        return []
    host = socket.gethostname().split(".")[0].replace("-", "_") or "host"
    now = time.time() if now is None else now
    gone = []
    for p in folder.rglob(f".*{TEMP_MARK}*"):
        try:
            tail = p.name.split(TEMP_MARK, 1)[1]
            t_host, t_pid = tail.split("-")[0], int(tail.split("-")[1])
        except (IndexError, ValueError):
            continue
        try:
            stale = (t_host == host and t_pid != os.getpid() and not _pid_alive(t_pid)) or now - p.stat().st_mtime > STALE_TEMP_S
            if stale:
                p.unlink()
                gone.append(p)
        except OSError:
            continue
    return gone

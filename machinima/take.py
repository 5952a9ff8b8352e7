"""The take: one portable folder per recorded take.

    <takes-root>/<take-id>/
      take.json         manifest (schema ``take`` version 3), written atomically
      streams.sqlite    time-stamped records (see ``store``)
      passes/<pass>/    rendered passes (rgb, depth, mask, pose ...)
      post/<step-id>/   outputs of post steps, each with params.json
      .lock             held by the one process that writes the take
      .reserve          256 KiB set aside while recording: freed when the take ends, so that
                        take.json can still be written when the disk fills up

Statuses: ``recording`` while a writer has it open, ``complete`` after ``finalize``,
``recovered`` when a take left in ``recording`` by a crash was reopened, ``failed`` when
recording stopped on an error (what was written stays).

Paths may be relative to the current folder everywhere; a take that cannot be created (a full
disk, a bad name) leaves no folder behind.

The manifest (``Slate``, ``Manifest``, ``read_manifest``) lives in ``take_manifest``; every name
stays importable from here.
"""

from __future__ import annotations

import datetime as _dt
import errno
import json
import logging
import os
import re
import shutil
import sqlite3
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterator

from . import schema
from .errors import DiskFullError, MachinimaError, StoreError, TakeError, TakeFormatError, TakeLockedError
from .fsutil import FileLock, atomic_write_json
from .store import StreamStore
from .take_manifest import MANIFEST, STATUSES, Manifest, Slate, _now, read_manifest
from .timecode import Timecode, parse_rate

STREAMS = "streams.sqlite"
LOCK = ".lock"
TRASH = ".trash"
RESERVE = ".reserve"
RESERVE_BYTES = 256 * 1024
log = logging.getLogger("machinima.take")


class Take:
    """A take folder. ``Take.create`` opens it for writing (recording); ``Take.open`` reads it."""

    def __init__(self, path: Path, manifest: Manifest, *, writable: bool = False, lock: FileLock | None = None) -> None:
        self.path = Path(path)
        self.manifest = manifest
        self.writable = writable
        self._lock = lock
        self._store: StreamStore | None = None

    # --- construction ---------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        takes_root: str | Path,
        *,
        production: str,
        scene: str,
        shot: str,
        fps: float | str = 24,
        timecode_in: str | None = None,
        performers: list[str] | None = None,
        notes: list[str] | None = None,
        take_number: int | None = None,
        origin_ns: int | None = None,
    ) -> "Take":
        """Create the next take of this shot and open it for recording.

        The take number auto-increments per (production, scene, shot); creating the folder is
        atomic (mkdir), so two recorders never get the same number.
        """
        root = Path(takes_root)
        rate = parse_rate(fps)
        tc_in = timecode_in or str(Timecode.at(rate, 0))
        Timecode.parse(tc_in, rate)
        try:
            root.mkdir(parents=True, exist_ok=True)
            number = take_number or next_take_number(root, production, scene, shot)
        except OSError as exc:
            raise _os_error(exc, f"cannot use the takes folder {root}") from None
        while True:
            slate = Slate(production, scene, shot, number)
            path = root / slate.take_id()
            try:
                path.mkdir()
                break
            except FileExistsError:
                if take_number:
                    raise TakeError(f"take {slate.take_id()} already exists in {root}") from None
                number += 1
            except OSError as exc:
                raise _os_error(exc, f"cannot create take {slate.take_id()} in {root}") from None
        lock: FileLock | None = None
        try:  # the folder is ours (mkdir); anything failing below removes it again
            lock = FileLock(path / LOCK, f"take {slate.take_id()}").acquire()
            _reserve(path)
            manifest = Manifest(
                id=slate.take_id(),
                slate=slate,
                fps=_fps_text(rate),
                timecode_in=tc_in,
                performers=[{"name": p} for p in (performers or [])],
                notes=list(notes or []),
            )
            take = cls(path, manifest, writable=True, lock=lock)
            take.save()
            take._store = StreamStore(
                path / STREAMS, writable=True, fps=rate, origin_ns=origin_ns, start_frame=Timecode.parse(tc_in, rate).frames
            )
        except BaseException as exc:
            if lock is not None:
                lock.release()
            shutil.rmtree(path, ignore_errors=True)
            if isinstance(exc, DiskFullError) or (isinstance(exc, OSError) and exc.errno in _FULL):
                raise DiskFullError(f"disk full: no room to start take {slate.take_id()} in {root}; nothing was created",
                                    hint="free space, then record again") from None
            if isinstance(exc, OSError):
                raise _os_error(exc, f"cannot create take {slate.take_id()} in {root}") from None
            raise
        _catalog_upsert(root, take)
        return take

    @classmethod
    def open(cls, path: str | Path, *, writable: bool = False) -> "Take":
        path = Path(path)
        if not path.is_dir():
            raise TakeError(f"no take at {path}")
        if not (path / MANIFEST).is_file():  # before the lock: a stranger's folder gets no .lock
            raise TakeFormatError(f"{path} has no {MANIFEST}: not a take folder")
        lock = FileLock(path / LOCK, f"take {path.name}").acquire() if writable else None
        try:
            manifest = read_manifest(path)
        except Exception:
            if lock:
                lock.release()
            raise
        return cls(path, manifest, writable=writable, lock=lock)

    # --- properties -----------------------------------------------------------------------
    @property
    def id(self) -> str:
        return self.manifest.id

    @property
    def root(self) -> Path:
        return self.path.parent

    @property
    def fps(self) -> Fraction:
        return self.manifest.rate

    @property
    def store(self) -> StreamStore:
        if self._store is None:
            streams = self.path / STREAMS
            if not streams.exists():
                raise StoreError(f"take {self.id} has no {STREAMS}", hint="the recording never started or the file was removed")
            self._store = StreamStore(streams, writable=self.writable)
        return self._store

    def passes_dir(self, name: str | None = None) -> Path:
        return self.path / "passes" / name if name else self.path / "passes"

    def post_dir(self, step_id: str | None = None) -> Path:
        return self.path / "post" / step_id if step_id else self.path / "post"

    # --- manifest -------------------------------------------------------------------------
    def save(self) -> None:
        self._require_writable()
        self.manifest.updated = _now()
        atomic_write_json(self.path / MANIFEST, self.manifest.to_doc())

    def _require_writable(self) -> None:
        if not self.writable:
            raise TakeError(f"take {self.id} is open read-only")

    def add_note(self, text: str) -> None:
        self.manifest.notes.append(text)
        self.save()

    def add_marker(self, t_ns: int, name: str, note: str = "", color: str = "red") -> None:
        self.store.append_event(t_ns, "marker", {"name": name, "note": note, "color": color}, stream="markers")
        frame = int(self.store.frames_of([t_ns])[0])
        self.manifest.markers.append({"name": name, "note": note, "color": color, "timecode": str(Timecode.at(self.fps, frame))})
        self.save()

    def add_performer(self, name: str, **info: Any) -> None:
        if not any(p.get("name") == name for p in self.manifest.performers):
            self.manifest.performers.append({"name": name, **info})
        self.store.add_mocap_stream(name)

    # --- lifecycle ------------------------------------------------------------------------
    def _summarize_streams(self) -> None:
        store = self.store
        store.flush()
        summary = []
        for info in store.streams():
            entry: dict[str, Any] = {"name": info.name, "kind": info.kind, "version": info.version}
            if info.kind in ("mocap", "blend", "camera"):
                row = store._db.execute("SELECT COALESCE(SUM(n),0), MIN(t0_ns), MAX(t1_ns) FROM chunks WHERE stream=?", (info.name,)).fetchone()
                entry["samples"] = int(row[0])
            summary.append(entry)
        self.manifest.streams = summary
        rng = store.time_range()
        if rng:
            last = int(store.frames_of([rng[1]])[0])
            self.manifest.timecode_out = str(Timecode.at(self.fps, last))
        for name in store.performers():
            if not any(p.get("name") == name for p in self.manifest.performers):
                self.manifest.performers.append({"name": name})

    def finalize(self, status: str = "complete") -> None:
        """Flush and close the store, summarise streams into take.json, index in the catalog."""
        self._require_writable()
        if status not in STATUSES:
            raise TakeError(f"unknown status {status!r}")
        self._summarize_streams()
        self.manifest.status = status
        _release_reserve(self.path)  # its room is for this very write when the disk is full
        self.save()
        self.close()
        _catalog_upsert(self.root, self)

    def fail(self, reason: str) -> bool:
        """End a recording that cannot go on (a full disk): drop what is not committed, mark the
        take ``failed`` with the note ``recording stopped: <reason>`` and release the lock, so
        ``takes recover`` works at once, even while the recording process lives on.

        Never raises: it runs when writing already failed. The reserve is freed first, so that
        take.json fits on a full disk; returns False when even that could not be written (the
        take then stays ``recording`` on disk and ``recover`` finishes it later)."""
        store = self._store
        if store is not None:
            store.discard_pending()
        _release_reserve(self.path)
        self.manifest.notes.append(f"recording stopped: {reason}")
        self.manifest.status = "failed"
        saved = False
        try:
            if store is not None:
                self._summarize_streams()
            self.save()
            saved = True
        except (MachinimaError, OSError, sqlite3.Error) as exc:
            log.error("take %s: could not write its failed status (%s); `machinima takes recover` will finish it", self.id, exc)
        try:
            self.close()
        except (MachinimaError, OSError, sqlite3.Error) as exc:
            log.error("take %s: closing after the failure: %s", self.id, exc)
        if saved:
            _catalog_upsert(self.root, self)
        return saved

    def close(self) -> None:
        """Close the store and release the lock (the lock even when closing the store fails);
        the reserve goes with the writer."""
        store, self._store = self._store, None
        try:
            if store is not None:
                store.close()
        finally:
            if self.writable:
                _release_reserve(self.path)
            if self._lock:
                self._lock.release()
                self._lock = None
            self.writable = False

    def __enter__(self) -> "Take":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def verify(self) -> list[str]:
        """Problems found (empty list = healthy): manifest, streams file, SQLite integrity."""
        problems: list[str] = []
        streams = self.path / STREAMS
        if not streams.exists():
            problems.append(f"{STREAMS} is missing")
        else:
            try:
                with StreamStore(streams) as st:
                    res = st.integrity_check()
                    if res != "ok":
                        problems.append(f"{STREAMS} integrity check: {res}")
                    declared = {s["name"]: s.get("samples") for s in self.manifest.streams}
                    for info in st.streams():
                        if info.kind in ("mocap", "blend", "camera"):
                            n = len(st.read(info.name))
                            if declared.get(info.name) not in (None, n) and self.manifest.status == "complete":
                                problems.append(f"stream {info.name}: manifest says {declared[info.name]} samples, store has {n}")
            except Exception as exc:  # any store problem is a finding, not a crash
                problems.append(str(exc))
        if self.manifest.status == "recording" and not FileLock(self.path / LOCK).is_held_elsewhere():
            problems.append("status is 'recording' but no writer is alive: run `machinima takes recover`")
        problems += [f"post/{name}: {p}" for name, (_, probs) in self.post_steps().items() for p in probs]
        return problems

    def post_steps(self) -> dict[str, tuple[dict[str, Any], list[str]]]:
        """Each post step folder's frame counts (QOI frames, the sequence manifest) and problems."""
        post = self.post_dir()
        if not post.is_dir():
            return {}
        from .stepfiles import check_step_folder  # lazy: the stage never runs post steps

        return {p.name: check_step_folder(p) for p in sorted(post.iterdir()) if p.is_dir() and (p / "ledger.jsonl").is_file()}


_FULL = (errno.ENOSPC, errno.EDQUOT)


def _os_error(exc: OSError, doing: str) -> TakeError:
    """An OS error as the take error a person reads (a full disk is a ``DiskFullError``)."""
    if exc.errno in _FULL:
        return DiskFullError(f"disk full: {doing}", hint="free space and try again")
    return TakeError(f"{doing}: {exc.strerror or exc}")


def _reserve(folder: Path, size: int = RESERVE_BYTES) -> None:
    """Set ``size`` bytes aside in ``folder`` (allocated, not sparse): freed when the take ends,
    they leave room for take.json after the recording itself filled the disk."""
    fd = os.open(folder / RESERVE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as exc:
        if exc.errno in _FULL:
            raise
        log.debug("no reserve in %s: %s", folder, exc)  # a file system without fallocate
    finally:
        os.close(fd)


def _release_reserve(folder: Path) -> None:
    try:
        (folder / RESERVE).unlink()
    except OSError:
        pass


def _fps_text(rate: Fraction) -> str:
    for name, value in (("23.976", Fraction(24000, 1001)), ("29.97", Fraction(30000, 1001)), ("59.94", Fraction(60000, 1001))):
        if rate == value:
            return name
    return str(rate.numerator) if rate.denominator == 1 else f"{float(rate):g}"


def next_take_number(root: Path, production: str, scene: str, shot: str) -> int:
    prefix = Slate(production, scene, shot).take_id().rsplit("_t", 1)[0] + "_t"
    best = 0
    for p in list(root.iterdir()) + (list((root / TRASH).iterdir()) if (root / TRASH).exists() else []):
        if p.name.startswith(prefix):
            m = re.match(r"(\d+)", p.name[len(prefix):])
            if m:
                best = max(best, int(m.group(1)))
    return best + 1


def iter_take_folders(root: str | Path) -> Iterator[Path]:
    """Folders in the takes root that hold a take.json (others are skipped, not errors)."""
    root = Path(root)
    if not root.exists():
        return
    for p in sorted(root.iterdir()):
        if p.is_dir() and not p.name.startswith(".") and (p / MANIFEST).exists():
            yield p


def recover(path: str | Path) -> Take:
    """Reopen a take left in ``recording`` by a crash: the WAL replays on open, everything that
    was committed is kept, the streams are summarised and the status becomes ``recovered``."""
    path = Path(path)
    try:
        take = Take.open(path, writable=True)
    except TakeLockedError:
        raise TakeLockedError(f"take {path.name} is still being recorded by a live process; nothing to recover") from None
    if take.manifest.status != "recording":
        take.close()
        return take
    if not (path / STREAMS).exists():
        take.manifest.status = "failed"
        take.manifest.notes.append(f"recovery: {STREAMS} was missing")
        _release_reserve(path)
        take.save()
        take.close()
        return take
    take.finalize("recovered")
    return take


def recover_all(root: str | Path) -> list[str]:
    """Recover every take of the root left in ``recording`` with no live writer (run at start)."""
    done = []
    for folder in iter_take_folders(root):
        try:
            manifest = read_manifest(folder)
        except TakeFormatError:
            continue
        if manifest.status == "recording" and not FileLock(folder / LOCK).is_held_elsewhere():
            recover(folder)
            done.append(manifest.id)
    return done


def delete(path: str | Path) -> Path:
    """Move a take to ``<root>/.trash/`` (never removes data); returns where it went."""
    path = Path(path)
    take = Take.open(path, writable=True)  # refuses while another process records it
    take.close()
    trash = path.parent / TRASH
    trash.mkdir(exist_ok=True)
    dest = trash / f"{path.name}.{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"
    shutil.move(str(path), dest)
    from .catalog import Catalog

    Catalog(path.parent).remove(take.id)
    return dest


def _catalog_upsert(root: Path, take: Take) -> None:
    from .catalog import Catalog

    try:
        Catalog(root).upsert(take.path, take.manifest)
    except Exception:
        # The catalog is an index that can always be rebuilt; a failure here must never
        # cost the take itself.
        pass

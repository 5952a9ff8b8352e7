"""catalog.sqlite: an index of the takes under a root, for listing and search.

Derived data only: ``rebuild`` recreates it from the take folders at any time, so a lost or
corrupt catalog never costs a take. ``sync`` brings it up to date cheaply (one stat per take):
a take whose take.json changed while the catalog could not be written (a full disk fails a take
and its catalog row alike) or that another process made is re-read, so ``takes list`` never
shows a failed take as still recording.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any

from .take import MANIFEST, Manifest, iter_take_folders, read_manifest
from .errors import TakeError, TakeFormatError

CATALOG = "catalog.sqlite"

_SQL = """
CREATE TABLE IF NOT EXISTS takes (
  id TEXT PRIMARY KEY, path TEXT NOT NULL, production TEXT, scene TEXT, shot TEXT,
  take_no INTEGER, status TEXT, fps TEXT, timecode_in TEXT, timecode_out TEXT,
  created TEXT, updated TEXT, performers TEXT, notes TEXT, stamp INTEGER);
CREATE INDEX IF NOT EXISTS takes_by_shot ON takes (production, scene, shot, take_no);
"""


def _disk_full(exc: Exception) -> bool:
    return any(w in str(exc) for w in ("disk I/O error", "disk is full"))


class Catalog:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._path = self.root / CATALOG
        try:
            self._db = sqlite3.connect(self._path, isolation_level=None, timeout=5.0)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SQL)
            if "stamp" not in {r[1] for r in self._db.execute("PRAGMA table_info(takes)")}:  # a catalog from before sync
                self._db.execute("ALTER TABLE takes ADD COLUMN stamp INTEGER")
        except sqlite3.OperationalError as exc:
            if os.access(self.root, os.W_OK) and not _disk_full(exc):
                raise TakeError(f"cannot open the catalog {self._path}: {exc}", hint="`machinima takes rebuild-catalog` makes a new one") from None
            # A takes root we may only read (an archive, another user's) or a full disk (the
            # take that filled it must still be listed): index it in memory.
            self._in_memory()
        except sqlite3.DatabaseError:
            # A corrupt index is replaced, then refilled from the folders.
            self._path.unlink(missing_ok=True)
            self._db = sqlite3.connect(self._path, isolation_level=None, timeout=5.0)
            self._db.executescript(_SQL)
            self.rebuild()

    def _in_memory(self) -> None:
        self._db = sqlite3.connect(":memory:", isolation_level=None)
        self._db.executescript(_SQL)
        self.rebuild()

    def upsert(self, folder: Path, m: Manifest) -> None:
        try:
            stamp = (Path(folder) / MANIFEST).stat().st_mtime_ns  # what sync compares
        except OSError:
            stamp = None
        self._db.execute(
            "INSERT OR REPLACE INTO takes (id, path, production, scene, shot, take_no, status, fps, timecode_in, timecode_out, "
            "created, updated, performers, notes, stamp) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                m.id, str(Path(folder).resolve()), m.slate.production, m.slate.scene, m.slate.shot, m.slate.take,
                m.status, m.fps, m.timecode_in, m.timecode_out, m.created, m.updated,
                json.dumps([p.get("name") for p in m.performers]), "\n".join(m.notes), stamp,
            ),
        )

    def sync(self) -> int:
        """Re-read the takes whose take.json changed since they were indexed (or were never
        indexed) and drop rows whose folder is gone; returns how many rows changed. On a full
        disk the index of this process moves to memory: the listing still tells the truth."""
        try:
            return self._sync()
        except sqlite3.OperationalError as exc:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            if not _disk_full(exc):
                raise
            self._in_memory()
            return len(self.search())

    def _sync(self) -> int:
        known = {path: stamp for path, stamp in self._db.execute("SELECT path, stamp FROM takes")}
        seen, n = set(), 0
        self._db.execute("BEGIN")
        try:
            for folder in iter_take_folders(self.root):
                key = str(folder.resolve())
                seen.add(key)
                try:
                    stamp = (folder / MANIFEST).stat().st_mtime_ns
                    if known.get(key) != stamp:
                        self.upsert(folder, read_manifest(folder))
                        n += 1
                except (OSError, TakeFormatError):  # unreadable now: rebuild-catalog lists it
                    continue
            for key in set(known) - seen:
                self._db.execute("DELETE FROM takes WHERE path=?", (key,))
                n += 1
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:  # SQLite may have rolled back already (a full disk)
                self._db.execute("ROLLBACK")
            raise
        return n

    def remove(self, take_id: str) -> None:
        self._db.execute("DELETE FROM takes WHERE id=?", (take_id,))

    def rebuild(self) -> tuple[int, list[str]]:
        """Re-index every take folder; returns (count, problems for folders that were skipped)."""
        problems: list[str] = []
        self._db.execute("BEGIN")
        self._db.execute("DELETE FROM takes")
        n = 0
        for folder in iter_take_folders(self.root):
            try:
                self.upsert(folder, read_manifest(folder))
                n += 1
            except TakeFormatError as exc:
                problems.append(str(exc))
        self._db.execute("COMMIT")
        return n, problems

    def search(
        self,
        *,
        production: str | None = None,
        scene: str | None = None,
        shot: str | None = None,
        status: str | None = None,
        performer: str | None = None,
        since: str | None = None,
        until: str | None = None,
        text: str | None = None,
    ) -> list[dict[str, Any]]:
        """Takes matching every given filter; dates are ISO strings compared with ``created``."""
        q = "SELECT * FROM takes WHERE 1=1"
        args: list[Any] = []
        for col, val in (("production", production), ("scene", scene), ("shot", shot), ("status", status)):
            if val is not None:
                q += f" AND {col}=?"
                args.append(val)
        if performer:
            q += " AND performers LIKE ?"
            args.append(f'%"{performer}"%')
        if since:
            q += " AND created>=?"
            args.append(since)
        if until:
            q += " AND created<=?"
            args.append(until)
        if text:
            q += " AND (id LIKE ? OR notes LIKE ?)"
            args += [f"%{text}%", f"%{text}%"]
        q += " ORDER BY production, scene, shot, take_no"
        cols = [c[0] for c in self._db.execute("SELECT * FROM takes LIMIT 0").description]
        rows = []
        for r in self._db.execute(q, args):
            d = dict(zip(cols, r))
            d["performers"] = json.loads(d["performers"] or "[]")
            d.pop("stamp", None)
            rows.append(d)
        return rows

    def close(self) -> None:
        self._db.close()

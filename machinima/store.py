"""streams.sqlite: time-stamped records of a take, append-only, crash-safe.

Layout (schema ``store`` 1)
- ``meta(key, value)``: store schema, take fps, origin (monotonic ns at timecode ``start_frame``).
- ``streams(name, kind, version, shape, meta)``: one row per stream (a performer's mocap, a
  camera, a blendshape set, events, markers); ``shape`` is the per-sample shape as JSON.
- ``chunks(stream, t0_ns, t1_ns, n, codec, t_ns, data)``: sampled kinds (mocap, blend, camera)
  are stored as chunks of consecutive samples: the int64 stamps and the float32 values, each
  XOR-delta coded against the previous sample, byte-shuffled and zlib-compressed (smooth motion
  compresses several times; see bench/take_store.py).
- ``events(stream, t_ns, kind, payload)``: sparse JSON records (events, markers, gaps).

Durability: WAL with ``synchronous=NORMAL`` and batched transactions while recording (a commit
survives a crash of the process; a power loss may roll back the last ones); ``close()``
checkpoints with ``synchronous=FULL``. A sample is *acknowledged* once ``flush()`` has
committed it; ``append`` buffers and flushes on its own every ``flush_interval`` seconds, so a
kill loses at most that much.
"""

from __future__ import annotations

import json
import sqlite3
import time
import zlib
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from . import schema
from .errors import DiskFullError, StoreError
from .timecode import frames_from_ns, parse_rate

SAMPLED_KINDS = {"mocap", "blend", "camera"}
SPARSE_KINDS = {"event", "marker", "gap"}
CAMERA_CHANNELS = ("px", "py", "pz", "qx", "qy", "qz", "qw", "focal_mm", "sensor_w_mm", "sensor_h_mm", "focus_m", "reserved")
"""Camera samples: world position and rotation in canonical space (right-handed, Y-up, metres).
The rotation is the camera's as its engine reports it, mirrored into canonical space like every
pose (``skeleton.unity_to_canonical``), so the camera looks along its local **+Z** axis (Unity's
forward) with +Y up; Blender's and OpenGL's cameras look down -Z, so importers turn them 180
degrees about Y (``blender_addon`` does)."""

_SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS streams (
  name TEXT PRIMARY KEY, kind TEXT NOT NULL, version INTEGER NOT NULL,
  shape TEXT NOT NULL, meta TEXT NOT NULL DEFAULT '{}');
CREATE TABLE IF NOT EXISTS chunks (
  id INTEGER PRIMARY KEY, stream TEXT NOT NULL, t0_ns INTEGER NOT NULL, t1_ns INTEGER NOT NULL,
  n INTEGER NOT NULL, codec TEXT NOT NULL, t_ns BLOB NOT NULL, data BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS chunks_by_time ON chunks (stream, t0_ns);
CREATE TABLE IF NOT EXISTS events (
  id INTEGER PRIMARY KEY, stream TEXT NOT NULL, t_ns INTEGER NOT NULL, kind TEXT NOT NULL,
  payload TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS events_by_time ON events (stream, t_ns);
"""


# --- codecs: pure functions on arrays ---------------------------------------------------------
def encode_chunk(values: np.ndarray, codec: str = "xor-zlib") -> bytes:
    """Encode (n, ...) 4- or 8-byte values. ``xor-zlib``: XOR each sample with the previous
    one (bit patterns of smooth signals share their high bytes), shuffle bytes so equal byte
    planes sit together, then zlib level 1. ``raw``: the bytes as they are."""
    arr = np.ascontiguousarray(values)
    if codec == "raw":
        return arr.tobytes()
    if codec != "xor-zlib":
        raise StoreError(f"unknown codec {codec!r}")
    itemsize = arr.dtype.itemsize
    u = arr.view(np.uint32 if itemsize == 4 else np.uint64).reshape(arr.shape[0], -1)
    x = u.copy()
    x[1:] ^= u[:-1]
    shuffled = x.view(np.uint8).reshape(-1, itemsize).T
    return zlib.compress(np.ascontiguousarray(shuffled).tobytes(), 1)


def decode_chunk(blob: bytes, n: int, dtype: np.dtype, shape: tuple[int, ...], codec: str = "xor-zlib") -> np.ndarray:
    dtype = np.dtype(dtype)
    if codec == "raw":
        return np.frombuffer(blob, dtype=dtype).reshape((n,) + tuple(shape)).copy()
    if codec != "xor-zlib":
        raise StoreError(f"unknown codec {codec!r}")
    try:
        raw = zlib.decompress(blob)
    except zlib.error as exc:
        raise StoreError(f"corrupt chunk: {exc}") from None
    itemsize = dtype.itemsize
    planes = np.frombuffer(raw, dtype=np.uint8).reshape(itemsize, -1)
    x = np.ascontiguousarray(planes.T).view(np.uint32 if itemsize == 4 else np.uint64).reshape(n, -1)
    u = np.bitwise_xor.accumulate(x, axis=0)
    return u.view(dtype).reshape((n,) + tuple(shape))


@dataclass
class StreamInfo:
    name: str
    kind: str
    version: int
    shape: tuple[int, ...]
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Track:
    """Samples of one stream: stamps (n,) int64 ns, take timecode frames (n,), values (n, ...)."""

    stream: str
    kind: str
    t_ns: np.ndarray
    frames: np.ndarray
    values: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.t_ns.shape[0])


@dataclass
class _Buffer:
    t: list[np.ndarray] = field(default_factory=list)
    v: list[np.ndarray] = field(default_factory=list)
    n: int = 0


def _is_disk_full(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "full" in text or "no space" in text


class _Txn:
    """One write transaction of a store (a class made once: it runs on every commit)."""

    __slots__ = ("store",)

    def __init__(self, store: "StreamStore") -> None:
        self.store = store

    def __enter__(self) -> None:
        self.store._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, et, ev, tb) -> bool:
        store = self.store
        if et is None:
            try:
                store._db.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                store._rollback()
                if _is_disk_full(exc):
                    raise DiskFullError(f"disk full while writing {store.path}; data committed before is intact") from None
                raise StoreError(f"could not commit to {store.path}: {exc}") from None
        else:
            store._rollback()
            if isinstance(ev, sqlite3.OperationalError) and _is_disk_full(ev):
                raise DiskFullError(f"disk full while writing {store.path}; data committed before is intact") from None
        return False


class StreamStore:
    """Append-only store of one take's streams. Open with ``writable=True`` for recording.

    Only one process may write a take at a time; ``Take`` enforces that with a lock file, so
    this class assumes it.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        writable: bool = False,
        fps: float | str | Fraction | None = None,
        origin_ns: int | None = None,
        start_frame: int = 0,
        flush_interval: float = 0.1,
        max_buffered_samples: int = 4096,
        codec: str = "xor-zlib",
    ) -> None:
        self.path = Path(path)
        self.writable = writable
        self.flush_interval = flush_interval
        self.max_buffered_samples = max_buffered_samples
        self.codec = codec
        if not writable and not self.path.exists():
            raise StoreError(f"streams file {self.path} does not exist", hint="the take has no recorded data; run `machinima takes verify`")
        # SQLite's URI form needs an absolute path; the user may have typed a relative one.
        uri = self.path.absolute().as_uri() + ("" if writable else "?mode=ro")
        try:
            self._db = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False, timeout=5.0)
            self._db.execute("PRAGMA journal_mode=WAL" if writable else "PRAGMA query_only=1")
            if writable:
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._db.executescript(_SCHEMA_SQL)
            self._check_schema()
        except sqlite3.DatabaseError as exc:
            if _is_disk_full(exc):
                raise DiskFullError(f"disk full while opening {self.path}") from None
            raise StoreError(f"{self.path} is not a readable streams store: {exc}") from None
        self._meta = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
        if writable and "store_version" not in self._meta:
            if fps is None:
                raise StoreError("a new streams store needs the take's fps")
            self._set_meta(
                store_version=str(schema.CURRENT["store"]),
                fps=str(parse_rate(fps)),
                origin_ns=str(origin_ns if origin_ns is not None else time.monotonic_ns()),
                start_frame=str(start_frame),
            )
        self.fps = parse_rate(self._meta.get("fps", fps or 24))
        self.origin_ns = int(self._meta.get("origin_ns", origin_ns or 0))
        self.start_frame = int(self._meta.get("start_frame", start_frame))
        self._streams: dict[str, StreamInfo] = {}
        for name, kind, version, shape, meta in self._db.execute("SELECT name, kind, version, shape, meta FROM streams"):
            self._streams[name] = StreamInfo(name, kind, version, tuple(json.loads(shape)), json.loads(meta))
        self._buffers: dict[str, _Buffer] = {}
        # longest chunk per stream, kept in meta ("span:<stream>") so a seek needs no scan
        self._spans: dict[str, int] = {k[5:]: int(v) for k, v in self._meta.items() if k.startswith("span:")}
        self._pending_events: list[tuple[str, int, str, str]] = []
        self._last_flush = time.monotonic()
        self.acknowledged = self._count_samples()

    # --- schema -------------------------------------------------------------------------------
    def _check_schema(self) -> None:
        tables = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not {"meta", "streams", "chunks", "events"} <= tables:
            raise StoreError(f"{self.path} is missing tables {sorted({'meta', 'streams', 'chunks', 'events'} - tables)}")
        row = self._db.execute("SELECT value FROM meta WHERE key='store_version'").fetchone()
        if row and int(row[0]) > schema.CURRENT["store"]:
            raise StoreError(f"{self.path} was written by a newer machinima (store version {row[0]})")

    def _set_meta(self, **items: str) -> None:
        with self._txn():
            self._db.executemany("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", list(items.items()))
        self._meta.update(items)

    def _txn(self) -> "_Txn":
        return _Txn(self)

    def _rollback(self) -> None:
        # SQLite already rolls back by itself on some errors (SQLITE_FULL): roll back only
        # what is still open.
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")

    # --- streams ------------------------------------------------------------------------------
    def streams(self) -> list[StreamInfo]:
        return list(self._streams.values())

    def stream(self, name: str) -> StreamInfo:
        try:
            return self._streams[name]
        except KeyError:
            raise StoreError(f"no stream {name!r} in this take; streams: {sorted(self._streams)}") from None

    def add_stream(self, name: str, kind: str, shape: Iterable[int], meta: dict[str, Any] | None = None) -> StreamInfo:
        """Declare a stream (idempotent when the declaration is the same)."""
        self._require_writable()
        if kind not in SAMPLED_KINDS | SPARSE_KINDS:
            raise StoreError(f"unknown stream kind {kind!r}; kinds: {sorted(SAMPLED_KINDS | SPARSE_KINDS)}")
        shape = tuple(int(s) for s in shape)
        info = StreamInfo(name, kind, schema.CURRENT.get(kind, 1), shape, dict(meta or {}))
        old = self._streams.get(name)
        if old is not None:
            if (old.kind, old.shape) != (kind, shape):
                raise StoreError(f"stream {name!r} exists as {old.kind} {old.shape}, not {kind} {shape}")
            return old
        with self._txn():
            self._db.execute(
                "INSERT INTO streams(name, kind, version, shape, meta) VALUES (?, ?, ?, ?, ?)",
                (name, kind, info.version, json.dumps(list(shape)), json.dumps(info.meta)),
            )
        self._streams[name] = info
        return info

    def add_mocap_stream(self, performer: str, bones: Iterable[str] | None = None, meta: dict[str, Any] | None = None) -> StreamInfo:
        from .skeleton import BONES, POSE_WIDTH

        bones = tuple(bones or BONES)
        m = {"performer": performer, "bones": list(bones), **(meta or {})}
        return self.add_stream(f"mocap/{performer}", "mocap", (len(bones), POSE_WIDTH), m)

    def add_camera_stream(self, camera: str, meta: dict[str, Any] | None = None) -> StreamInfo:
        return self.add_stream(f"camera/{camera}", "camera", (len(CAMERA_CHANNELS),), {"channels": list(CAMERA_CHANNELS), **(meta or {})})

    def add_blend_stream(self, name: str, channels: Iterable[str], meta: dict[str, Any] | None = None) -> StreamInfo:
        channels = list(channels)
        return self.add_stream(f"blend/{name}", "blend", (len(channels),), {"channels": channels, **(meta or {})})

    # --- appending ----------------------------------------------------------------------------
    def _require_writable(self) -> None:
        if not self.writable:
            raise StoreError(f"{self.path} is open read-only")

    def append(self, stream: str, t_ns: np.ndarray | int, values: np.ndarray) -> None:
        """Buffer samples of a sampled stream: ``t_ns`` (n,) monotonic ns, ``values`` (n, *shape)."""
        self._require_writable()
        info = self.stream(stream)
        if info.kind not in SAMPLED_KINDS:
            raise StoreError(f"stream {stream!r} is a {info.kind} stream; use append_event")
        t = np.atleast_1d(np.asarray(t_ns, dtype=np.int64))
        v = np.asarray(values, dtype=np.float32)
        if v.shape == info.shape:
            v = v[None]
        if v.shape[1:] != info.shape or v.shape[0] != t.shape[0]:
            raise StoreError(f"stream {stream!r} takes samples of shape {info.shape} with one stamp each; got values {v.shape} and {t.shape[0]} stamps")
        buf = self._buffers.setdefault(stream, _Buffer())
        buf.t.append(t)
        buf.v.append(v)
        buf.n += t.shape[0]
        self._maybe_flush(buf.n)

    def append_event(self, t_ns: int, kind: str, payload: dict[str, Any], stream: str = "events") -> None:
        """Buffer a sparse record: an engine event, a marker or a gap."""
        self._require_writable()
        if kind not in SPARSE_KINDS:
            raise StoreError(f"unknown event kind {kind!r}; kinds: {sorted(SPARSE_KINDS)}")
        if stream not in self._streams:
            self.add_stream(stream, kind if stream != "events" else "event", (), {})
        self._pending_events.append((stream, int(t_ns), kind, json.dumps(payload, sort_keys=True)))
        self._maybe_flush(0)

    def _maybe_flush(self, buffered: int) -> None:
        if buffered >= self.max_buffered_samples or time.monotonic() - self._last_flush >= self.flush_interval:
            self.flush()

    def flush(self) -> int:
        """Commit everything buffered in one transaction; returns the acknowledged sample count.

        On a full disk this raises ``DiskFullError`` and keeps the buffer, so a caller can free
        space and flush again; what was committed before stays.
        """
        if not self.writable:
            return self.acknowledged
        rows = []
        added = 0
        for name, buf in self._buffers.items():
            if not buf.n:
                continue
            t = np.concatenate(buf.t)
            v = np.concatenate(buf.v)
            rows.append((name, int(t.min()), int(t.max()), int(t.shape[0]), self.codec, encode_chunk(t, self.codec), encode_chunk(v, self.codec)))
            added += buf.n
        events = self._pending_events
        if not rows and not events:
            self._last_flush = time.monotonic()
            return self.acknowledged
        grown = {}
        for name, t0, t1, *_ in rows:
            if t1 - t0 > max(grown.get(name, -1), self._spans.get(name, -1)):
                grown[name] = t1 - t0
        try:
            with self._txn():
                self._db.executemany(
                    "INSERT INTO chunks(stream, t0_ns, t1_ns, n, codec, t_ns, data) VALUES (?, ?, ?, ?, ?, ?, ?)", rows
                )
                self._db.executemany("INSERT INTO events(stream, t_ns, kind, payload) VALUES (?, ?, ?, ?)", events)
                self._db.executemany("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
                                     [(f"span:{k}", str(v)) for k, v in grown.items()])
        except sqlite3.OperationalError as exc:
            if _is_disk_full(exc):
                raise DiskFullError(f"disk full while writing {self.path}; data committed before is intact") from None
            raise StoreError(f"could not write {self.path}: {exc}") from None
        self._spans.update(grown)
        self._buffers = {}
        self._pending_events = []
        self._last_flush = time.monotonic()
        self.acknowledged += added
        return self.acknowledged

    def discard_pending(self) -> int:
        """Drop buffered, unacknowledged samples and events (after a ``DiskFullError`` that will
        not clear): returns how many samples were dropped. Committed data is untouched."""
        dropped = sum(b.n for b in self._buffers.values())
        self._buffers = {}
        self._pending_events = []
        return dropped

    # --- reading ------------------------------------------------------------------------------
    def _count_samples(self) -> int:
        row = self._db.execute("SELECT COALESCE(SUM(n), 0) FROM chunks").fetchone()
        return int(row[0])

    def read(self, stream: str, t0_ns: int | None = None, t1_ns: int | None = None) -> Track:
        """Samples of ``stream`` with t0_ns <= t <= t1_ns (inclusive), ordered by time."""
        info = self.stream(stream)
        if info.kind not in SAMPLED_KINDS:
            raise StoreError(f"stream {stream!r} is a {info.kind} stream; use events()")
        lo = -(2**63) if t0_ns is None else int(t0_ns)
        hi = 2**63 - 1 if t1_ns is None else int(t1_ns)
        # a chunk overlapping [lo, hi] starts no earlier than lo - (longest chunk): bounding t0
        # from below turns a seek into an index range scan instead of a scan from the start
        floor = lo - self._max_span(stream) if t0_ns is not None else lo
        cur = self._db.execute(
            "SELECT n, codec, t_ns, data FROM chunks WHERE stream=? AND t0_ns>=? AND t0_ns<=? AND t1_ns>=? ORDER BY t0_ns, id",
            (stream, max(floor, -(2**63)), hi, lo),
        )
        ts, vs = [], []
        for n, codec, tb, db in cur:
            ts.append(decode_chunk(tb, n, np.int64, (), codec))
            vs.append(decode_chunk(db, n, np.float32, info.shape, codec))
        if ts:
            t = np.concatenate(ts)
            v = np.concatenate(vs)
            keep = (t >= lo) & (t <= hi)
            t, v = t[keep], v[keep]
            if t.shape[0] > 1 and np.any(np.diff(t) < 0):
                order = np.argsort(t, kind="stable")
                t, v = t[order], v[order]
        else:
            t = np.zeros((0,), np.int64)
            v = np.zeros((0,) + info.shape, np.float32)
        return Track(stream, info.kind, t, self.frames_of(t), v, info.meta)

    def _max_span(self, stream: str) -> int:
        """Longest chunk of ``stream`` in ns: from meta, or (a store written before spans were
        kept) one scan, then cached."""
        if stream not in self._spans:
            row = self._db.execute("SELECT COALESCE(MAX(t1_ns - t0_ns), 0) FROM chunks WHERE stream=?", (stream,)).fetchone()
            self._spans[stream] = int(row[0])
        return self._spans[stream]

    def read_mocap(self, performer: str, t0_ns: int | None = None, t1_ns: int | None = None) -> Track:
        return self.read(f"mocap/{performer}", t0_ns, t1_ns)

    def performers(self) -> list[str]:
        return [s.meta.get("performer", s.name.split("/", 1)[-1]) for s in self._streams.values() if s.kind == "mocap"]

    def events(self, kind: str | None = None, stream: str | None = None, t0_ns: int | None = None, t1_ns: int | None = None) -> list[dict[str, Any]]:
        q = "SELECT stream, t_ns, kind, payload FROM events WHERE t_ns>=? AND t_ns<=?"
        args: list[Any] = [-(2**63) if t0_ns is None else t0_ns, 2**63 - 1 if t1_ns is None else t1_ns]
        if kind:
            q += " AND kind=?"
            args.append(kind)
        if stream:
            q += " AND stream=?"
            args.append(stream)
        out = []
        for s, t, k, p in self._db.execute(q + " ORDER BY t_ns, id", args):
            out.append({"stream": s, "t_ns": t, "frame": int(self.frames_of(np.array([t]))[0]), "kind": k, "payload": json.loads(p)})
        return out

    def frames_of(self, t_ns: np.ndarray) -> np.ndarray:
        """Take timecode frame numbers of monotonic stamps."""
        return frames_from_ns(np.asarray(t_ns, dtype=np.int64) - self.origin_ns, self.fps) + self.start_frame

    def time_range(self) -> tuple[int, int] | None:
        row = self._db.execute("SELECT MIN(t0_ns), MAX(t1_ns) FROM chunks").fetchone()
        erow = self._db.execute("SELECT MIN(t_ns), MAX(t_ns) FROM events").fetchone()
        lows = [x for x in (row[0], erow[0]) if x is not None]
        highs = [x for x in (row[1], erow[1]) if x is not None]
        return (min(lows), max(highs)) if lows else None

    def integrity_check(self) -> str:
        return str(self._db.execute("PRAGMA integrity_check").fetchone()[0])

    def close(self) -> None:
        """Flush, checkpoint the WAL into the main file with a full sync, close.

        A checkpoint that fails on a full disk is not an error: the committed records stay in
        the WAL, which SQLite replays on the next open; only a failed flush raises.
        """
        if getattr(self, "_db", None) is None:
            return
        try:
            if self.writable:
                self.flush()
                try:
                    self._db.execute("PRAGMA synchronous=FULL")
                    self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                except sqlite3.OperationalError as exc:
                    if not _is_disk_full(exc):
                        raise StoreError(f"could not checkpoint {self.path}: {exc}") from None
        finally:
            self._db.close()
            self._db = None  # type: ignore[assignment]

    def __enter__(self) -> "StreamStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

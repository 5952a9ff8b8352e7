"""Image collections: the folder format shared by face-swap facesets and LoRA micro-datasets.

A collection is a folder of images plus ONE index file that says what each image is::

    <collection>/
      index.sqlite          the index (schema ``machinima.collection``, version in table ``meta``)
      images/...            the image files (any layout below the folder; paths are relative)

The index (SQLite, WAL; a faceset of 50k faces with 68 landmarks each stays small and an ``add``
never rewrites the whole file) has two tables:

    meta(key, value)        schema = "machinima.collection", version = 1, kind ("faceset",
                            "dataset", ...), created, info (JSON, free-form, e.g. face type/size)
    items(id, file, sha256, width, height, source, box, tags, caption, rights, meta, added)

One item (``Item``) is one image:

    file      path relative to the collection folder (unique)
    sha256    hash of the file's bytes when added (``verify`` checks it)
    source    where it came from: ``Source(kind="file"|"video"|"take", path, frame, take, pass_name)``
    box       crop box in the source image ``[x0, y0, x1, y1]`` (pixels) or None
    tags      list of strings (``"src"``, ``"blurry"``, a person's name...)
    caption   free text (LoRA datasets)
    rights    ids of rights records (``machinima.rights``) that cover this image
    meta      free-form JSON per item: face swap keeps ``landmarks`` (68x2, source pixels),
              ``transform`` (2x3 source -> aligned), ``face_type``, ``size``, ``yaw``/``pitch``,
              ``blur``, ``track`` id here; a dataset keeps whatever it needs

Operations: ``Collection.create / open``, ``add`` (an array or an existing file, written
atomically), ``remove``, ``update``, ``get``, iterate (``items()``, optionally by tag),
``load`` (one image; a missing or corrupt file raises ``CollectionItemError``),
``iter_images`` (skips and reports bad items instead of stopping), ``verify`` (every
problem as a ``Problem``, never an exception: missing file, unreadable file, changed bytes,
files in ``images/`` that the index does not know; side-car ``.txt``/``.caption`` files
of indexed images, as kohya keeps captions, are not orphans).

Versions: the schema version is stored in ``meta``; ``UPGRADES`` holds one step per version
(the ``machinima.schema`` habit), run in order when an older index is opened writable.

Errors: ``CollectionError`` (a ``MachinimaError``) for a folder that is not a collection, a
newer version, a duplicate file; ``CollectionItemError`` for one item's missing/corrupt file.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import sqlite3
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from .errors import MachinimaError

SCHEMA = "machinima.collection"
VERSION = 1
INDEX = "index.sqlite"
IMAGES = "images"
# side-car files beside an indexed image (kohya captions: images/NAME.txt) are not orphans
SIDECAR_SUFFIXES = (".txt", ".caption")

# version -> function(connection) that upgrades the tables to version + 1
UPGRADES: dict[int, Callable[[sqlite3.Connection], None]] = {}


class CollectionError(MachinimaError):
    """A folder that is not a usable collection, or an operation it cannot do."""


class CollectionItemError(CollectionError):
    """One item's image is missing, unreadable, or not what was indexed."""

    def __init__(self, message: str, *, item_id: int | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.item_id = item_id


@dataclass
class Source:
    """Where an image came from."""

    kind: str = "file"  # "file" | "video" | "take"
    path: str | None = None  # source file / video / take folder
    frame: int | None = None  # frame number in the video or take
    take: str | None = None  # take id
    pass_name: str | None = None  # the take's pass ("rgb")

    def to_doc(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_doc(cls, d: dict[str, Any] | None) -> "Source":
        d = dict(d or {})
        return cls(**{k: d.get(k) for k in ("kind", "path", "frame", "take", "pass_name") if k in d})


@dataclass
class Item:
    id: int
    file: str
    sha256: str = ""
    width: int = 0
    height: int = 0
    source: Source = field(default_factory=Source)
    box: list[float] | None = None
    tags: list[str] = field(default_factory=list)
    caption: str = ""
    rights: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    added: str = ""


@dataclass
class Problem:
    """One thing ``verify`` found wrong; ``kind`` is missing | corrupt | changed | orphan."""

    kind: str
    file: str
    item_id: int | None = None
    message: str = ""

    def __str__(self) -> str:
        return f"{self.kind}: {self.file}{f' (item {self.item_id})' if self.item_id is not None else ''}: {self.message}"


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _json(v: Any) -> str:
    def default(o: Any) -> Any:
        if isinstance(o, np.ndarray):
            return o.tolist()
        if isinstance(o, np.generic):
            return o.item()
        raise TypeError(f"{type(o).__name__} is not JSON-able")

    return json.dumps(v, default=default, separators=(",", ":"))


_COLS = "id, file, sha256, width, height, source, box, tags, caption, rights, meta, added"


class Collection:
    """One collection folder; open it with ``Collection.open`` or make one with ``create``."""

    def __init__(self, root: Path, conn: sqlite3.Connection) -> None:
        self.root = Path(root)
        self._conn = conn

    # --- construction ---------------------------------------------------------------------
    @classmethod
    def create(cls, root: str | Path, kind: str, *, info: dict[str, Any] | None = None, exist_ok: bool = False) -> "Collection":
        root = Path(root)
        if (root / INDEX).exists():
            if not exist_ok:
                raise CollectionError(f"{root} is already a collection", hint="open it, or choose another folder")
            col = cls.open(root)
            if col.kind != kind:
                col.close()
                raise CollectionError(f"{root} is a {col.kind!r} collection, not {kind!r}")
            return col
        root.mkdir(parents=True, exist_ok=True)
        (root / IMAGES).mkdir(exist_ok=True)
        conn = cls._connect(root / INDEX)
        with conn:
            conn.executescript(
                """
                CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
                CREATE TABLE IF NOT EXISTS items(
                    id INTEGER PRIMARY KEY AUTOINCREMENT, file TEXT NOT NULL UNIQUE, sha256 TEXT NOT NULL DEFAULT '',
                    width INTEGER NOT NULL DEFAULT 0, height INTEGER NOT NULL DEFAULT 0,
                    source TEXT NOT NULL DEFAULT '{}', box TEXT, tags TEXT NOT NULL DEFAULT '[]',
                    caption TEXT NOT NULL DEFAULT '', rights TEXT NOT NULL DEFAULT '[]',
                    meta TEXT NOT NULL DEFAULT '{}', added TEXT NOT NULL DEFAULT '');
                """
            )
            for k, v in {"schema": SCHEMA, "version": str(VERSION), "kind": kind, "created": _now(), "info": _json(info or {})}.items():
                conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (k, v))
        return cls(root, conn)

    @classmethod
    def open(cls, root: str | Path) -> "Collection":
        root = Path(root)
        path = root / INDEX
        if not path.exists():
            raise CollectionError(f"{root} is not a collection (no {INDEX})", hint="create it first, e.g. with `machinima faceswap extract`")
        try:
            conn = cls._connect(path)
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.DatabaseError as exc:
            raise CollectionError(f"{path} is not a readable collection index: {exc}") from None
        if meta.get("schema") != SCHEMA:
            conn.close()
            raise CollectionError(f"{path} is not a {SCHEMA} index (schema {meta.get('schema')!r})")
        version = int(meta.get("version", "0"))
        if version > VERSION:
            conn.close()
            raise CollectionError(f"{path} is version {version}, newer than this machinima understands ({VERSION})", hint="upgrade machinima")
        while version < VERSION:
            step = UPGRADES.get(version)
            if step is None:
                conn.close()
                raise CollectionError(f"no upgrade from collection version {version}")
            with conn:
                step(conn)
                version += 1
                conn.execute("UPDATE meta SET value=? WHERE key='version'", (str(version),))
        return cls(root, conn)

    @staticmethod
    def _connect(path: Path) -> sqlite3.Connection:
        conn = sqlite3.connect(str(path), timeout=30.0)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None  # type: ignore[assignment]

    def __enter__(self) -> "Collection":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- meta -----------------------------------------------------------------------------
    def _meta(self, key: str, default: str = "") -> str:
        row = self._conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else default

    @property
    def kind(self) -> str:
        return self._meta("kind")

    @property
    def version(self) -> int:
        return int(self._meta("version", "0"))

    @property
    def info(self) -> dict[str, Any]:
        return json.loads(self._meta("info", "{}"))

    def set_info(self, **values: Any) -> None:
        info = {**self.info, **values}
        with self._conn:
            self._conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('info', ?)", (_json(info),))

    # --- items ----------------------------------------------------------------------------
    def add(
        self,
        image: np.ndarray | str | Path,
        *,
        name: str | None = None,
        source: Source | dict[str, Any] | None = None,
        box: Iterable[float] | None = None,
        tags: Iterable[str] = (),
        caption: str = "",
        rights: Iterable[str] = (),
        meta: dict[str, Any] | None = None,
    ) -> Item:
        """Add one image: an array (written atomically to ``images/<name>``, PNG unless the
        name says otherwise) or the path of a file already inside the collection folder."""
        from .imageseq import write_image

        if isinstance(image, (str, Path)):
            path = Path(image)
            if not path.is_absolute():
                path = self.root / path
            try:
                rel = path.resolve().relative_to(self.root.resolve())
            except ValueError:
                raise CollectionError(f"{path} is outside the collection folder {self.root}", hint="copy it into images/ first") from None
            if not path.exists():
                raise CollectionItemError(f"{path} does not exist")
            h, w = _image_size(path)
        else:
            arr = np.asarray(image)
            if name is None:
                name = f"{self._next_id():06d}.png"
            rel = Path(IMAGES) / name
            path = self.root / rel
            if self._conn.execute("SELECT 1 FROM items WHERE file=?", (rel.as_posix(),)).fetchone():
                raise CollectionError(f"{rel} is already in the collection", hint="remove it first or pick another name")
            write_image(path, arr)
            h, w = arr.shape[:2]
        src = source if isinstance(source, Source) else Source.from_doc(source)
        row = (
            rel.as_posix(), _sha256(path), int(w), int(h), _json(src.to_doc()), _json(list(map(float, box)) if box is not None else None),
            _json(list(tags)), caption, _json(list(rights)), _json(meta or {}), _now(),
        )
        try:
            with self._conn:
                cur = self._conn.execute(
                    "INSERT INTO items(file, sha256, width, height, source, box, tags, caption, rights, meta, added) VALUES (?,?,?,?,?,?,?,?,?,?,?)", row
                )
        except sqlite3.IntegrityError:
            raise CollectionError(f"{rel} is already in the collection", hint="remove it first or pick another name") from None
        return self.get(int(cur.lastrowid))

    def _next_id(self) -> int:
        row = self._conn.execute("SELECT seq FROM sqlite_sequence WHERE name='items'").fetchone()
        return (row[0] if row else 0) + 1

    def update(self, item_id: int, **fields: Any) -> Item:
        """Change tags, caption, rights, box, source or meta (``meta`` is merged, not replaced)."""
        item = self.get(item_id)
        allowed = {"tags", "caption", "rights", "box", "source", "meta"}
        bad = set(fields) - allowed
        if bad:
            raise CollectionError(f"cannot update {sorted(bad)}; fields: {sorted(allowed)}")
        sets, vals = [], []
        for k, v in fields.items():
            if k == "meta":
                v = {**item.meta, **(v or {})}
            if k == "source":
                v = (v if isinstance(v, Source) else Source.from_doc(v)).to_doc()
            sets.append(f"{k}=?")
            vals.append(v if k == "caption" else _json(list(v) if k in ("tags", "rights") else v))
        if sets:
            with self._conn:
                self._conn.execute(f"UPDATE items SET {', '.join(sets)} WHERE id=?", (*vals, item_id))
        return self.get(item_id)

    def remove(self, item_id: int, *, delete_file: bool = True) -> None:
        item = self.get(item_id)
        with self._conn:
            self._conn.execute("DELETE FROM items WHERE id=?", (item_id,))
        if delete_file:
            (self.root / item.file).unlink(missing_ok=True)

    def get(self, item_id: int) -> Item:
        row = self._conn.execute(f"SELECT {_COLS} FROM items WHERE id=?", (int(item_id),)).fetchone()
        if row is None:
            raise CollectionError(f"no item {item_id} in {self.root}")
        return _item(row)

    def items(self, *, tag: str | None = None) -> Iterator[Item]:
        rows = self._conn.execute(f"SELECT {_COLS} FROM items ORDER BY id").fetchall()
        for row in rows:
            item = _item(row)
            if tag is None or tag in item.tags:
                yield item

    def __iter__(self) -> Iterator[Item]:
        return self.items()

    def __len__(self) -> int:
        return int(self._conn.execute("SELECT COUNT(*) FROM items").fetchone()[0])

    def path(self, item: Item | int) -> Path:
        it = item if isinstance(item, Item) else self.get(item)
        return self.root / it.file

    # --- images ---------------------------------------------------------------------------
    def load(self, item: Item | int) -> np.ndarray:
        """The item's image (uint8 RGB); ``CollectionItemError`` if missing or unreadable."""
        from .imageseq import ImageSeqError, read_image

        it = item if isinstance(item, Item) else self.get(item)
        p = self.root / it.file
        if not p.exists():
            raise CollectionItemError(f"{it.file} (item {it.id}) is missing from {self.root}", item_id=it.id,
                                      hint="restore the file or drop the item (`verify` lists all such items)")
        try:
            return read_image(p)
        except ImageSeqError:
            raise CollectionItemError(f"{it.file} (item {it.id}) is not a readable image (corrupt or truncated?)", item_id=it.id,
                                      hint="re-extract it or drop the item") from None

    def iter_images(self, *, tag: str | None = None, problems: list[Problem] | None = None) -> Iterator[tuple[Item, np.ndarray]]:
        """(item, image) for every readable item; bad items are appended to ``problems`` and skipped."""
        for it in self.items(tag=tag):
            try:
                yield it, self.load(it)
            except CollectionItemError as exc:
                if problems is not None:
                    problems.append(Problem("missing" if not (self.root / it.file).exists() else "corrupt", it.file, it.id, str(exc)))

    def verify(self, *, check_hash: bool = True, decode: bool = True) -> list[Problem]:
        """Every problem with the folder, as a list (an empty list means all is well)."""
        problems: list[Problem] = []
        known = set()
        for it in self.items():
            known.add(it.file)
            p = self.root / it.file
            if not p.exists():
                problems.append(Problem("missing", it.file, it.id, "file is gone"))
                continue
            if check_hash and it.sha256 and _sha256(p) != it.sha256:
                problems.append(Problem("changed", it.file, it.id, "bytes differ from when it was added"))
            if decode:
                try:
                    self.load(it)
                except CollectionItemError as exc:
                    problems.append(Problem("corrupt", it.file, it.id, str(exc)))
        known_stems = {Path(f).with_suffix("").as_posix() for f in known}
        img_dir = self.root / IMAGES
        if img_dir.is_dir():
            for p in sorted(img_dir.rglob("*")):
                if p.is_file() and not p.name.startswith(".") and p.relative_to(self.root).as_posix() not in known:
                    if p.suffix.lower() in SIDECAR_SUFFIXES and p.with_suffix("").relative_to(self.root).as_posix() in known_stems:
                        continue  # a side-car (kohya caption) of a known image
                    problems.append(Problem("orphan", p.relative_to(self.root).as_posix(), None, "file is not in the index"))
        return problems


def _item(row: tuple) -> Item:
    (iid, file, sha, w, h, source, box, tags, caption, rights, meta, added) = row
    return Item(
        id=int(iid), file=file, sha256=sha, width=int(w), height=int(h), source=Source.from_doc(json.loads(source or "{}")),
        box=json.loads(box) if box else None, tags=json.loads(tags or "[]"), caption=caption or "",
        rights=json.loads(rights or "[]"), meta=json.loads(meta or "{}"), added=added,
    )


def _image_size(path: Path) -> tuple[int, int]:
    from .imageseq import ImageSeqError, read_image

    try:
        img = read_image(path)
    except ImageSeqError as exc:
        raise CollectionItemError(str(exc)) from None
    return int(img.shape[0]), int(img.shape[1])

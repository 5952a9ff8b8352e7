"""The rights store: a folder of record files, ``<id>.json`` each, written atomically."""

from __future__ import annotations

import datetime as _dt
import getpass
import json
from pathlib import Path
from typing import Any

from ..fsutil import atomic_write_json
from .errors import RecordFormatError, RightsError
from .records import RightsRecord


def default_store_dir(cfg: Any = None) -> Path:
    """``[rights] store`` from machinima.toml (relative to the project), else ``<takes-root>/../rights``."""
    if cfg is None:
        from ..config import load_config

        cfg = load_config()
    sec = cfg.section("rights")
    if sec.get("store"):
        p = Path(str(sec["store"])).expanduser()
        return p if p.is_absolute() else cfg.project_dir / p
    return cfg.takes_root.parent / "rights"


class RightsStore:
    """A folder of record files, ``<id>.json`` each, written atomically and signed with the
    production's key (the project's production certificate, else its local chain)."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_store_dir()
        self._trust: Any = None

    def path_of(self, record_id: str) -> Path:
        return self.root / f"{record_id}.json"

    def add(self, record: RightsRecord, *, replace: bool = False) -> Path:
        record.check(f"record {record.id!r}")
        p = self.path_of(record.id)
        if p.exists() and not replace:
            raise RightsError(f"a rights record {record.id!r} already exists at {p}", hint="choose another --id, or pass --replace to supersede it")
        if not record.created:
            record.created = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        if not record.created_by:
            try:
                record.created_by = getpass.getuser()
            except Exception:  # noqa: BLE001 - no user name in some containers
                record.created_by = ""
        from ..provenance import sign_doc, signing_for

        doc = sign_doc(record.to_doc(), signing_for(self.root).identity)
        record.signature = doc["signature"]
        atomic_write_json(p, doc)
        self._trust = None  # signing may have just made the project's local chain
        return p

    def trust(self) -> Any:
        """The anchors records of this store are checked against (loaded once)."""
        if self._trust is None:
            from ..provenance import trust_for

            self._trust = trust_for(self.root)
        return self._trust

    def signature_of(self, record: RightsRecord) -> Any:
        """``DocCheck``: is the record signed, unchanged, by a trusted key."""
        from ..provenance import check_doc

        return check_doc(record.to_doc(), self.trust())

    def get(self, record_id: str) -> RightsRecord | None:
        p = self.path_of(record_id)
        if not p.exists():
            return None
        return self._load(p)

    def _load(self, p: Path) -> RightsRecord:
        try:
            doc = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise RecordFormatError(f"cannot read rights record {p}: {exc}") from None
        except json.JSONDecodeError as exc:
            raise RecordFormatError(f"{p}: not valid JSON ({exc.msg}, line {exc.lineno})", hint="fix or remove the file") from None
        return RightsRecord.from_doc(doc, str(p))

    def records(self) -> list[RightsRecord]:
        """Every record, sorted by id (a malformed file raises ``RecordFormatError``)."""
        if not self.root.is_dir():
            return []
        return [self._load(p) for p in sorted(self.root.glob("*.json"))]

    def find(self, subject_id: str) -> list[RightsRecord]:
        """Records whose id or subject is ``subject_id``."""
        return [r for r in self.records() if r.covers(subject_id)]

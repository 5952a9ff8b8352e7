"""Rights records: only faces and material the production has cleared are used.

A *rights record* says that a subject (a person, a dataset, a faceset or a piece of footage)
may be used by one production for some purposes (scopes) until a date, and where the signed
document that says so is kept (its SHA-256 and location). Records live as one JSON file each
in the project's rights store::

    <project>/rights/<record-id>.json      (default: <takes-root>/../rights/)
    # machinima.toml
    [rights]
    store = "rights"                         # relative to the project folder

API for the post steps (face swap train/merge, LoRA training, lip re-sync)::

    from machinima import rights

    clearance = rights.require(production, ["alice", "faceset-alice-v2"], "face_replacement")
    # -> Clearance(records=[...]); raises rights.NotCleared (a RightsError) naming the subject
    #    whose record is missing, expired, for another production or of the wrong scope,
    #    and the exact `machinima rights add ...` command that fixes it.
    step = PostStep(out, "faceswap-merge", params, rights=clearance)   # listed in provenance

    # one's own test material, no contract needed: say so, it is written into the provenance
    # and into every output's C2PA manifest
    clearance = rights.require(production, ["me"], "training", override="my own face, test run")

Scopes: ``training`` (train a face model or LoRA on the subject), ``face_replacement`` (merge
the face into footage), ``voice`` (use or synthesize the voice), ``lip_sync`` (re-sync the
mouth). A dataset or faceset record may list the person records it draws on in
``references``: requiring the dataset also requires each referenced record (same scope).

Stored type: ``{"schema": "machinima.rights-record", "version": 1, ...}``; upgrades are
registered steps (``_UPGRADES``), like ``machinima.schema``.

Errors (all ``RightsError``, a ``MachinimaError``)::

    RightsError
    ├── NotCleared          require() found no valid record for a subject (says which and why)
    ├── RecordFormatError   a record file that cannot be read (names the file and field)
    └── DisclosureError     signing / watermark / certificate problems (machinima.provenance)

Only the standard library is imported here: every spoke may import this module cheaply.
"""

from __future__ import annotations

import datetime as _dt
import getpass
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from .errors import MachinimaError
from .fsutil import atomic_write_json

SCHEMA = "machinima.rights-record"
VERSION = 1
KINDS = ("person", "dataset", "faceset", "footage")
SCOPES = ("training", "face_replacement", "voice", "lip_sync")
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class RightsError(MachinimaError):
    """Base of rights and disclosure errors."""


class NotCleared(RightsError):
    """A subject has no valid rights record for this production and scope."""

    def __init__(self, message: str, *, hint: str | None = None, problems: Sequence["Problem"] = ()) -> None:
        super().__init__(message, hint=hint)
        self.problems = list(problems)


class RecordFormatError(RightsError):
    """A rights record file is missing a field or has a malformed one."""


class DisclosureError(RightsError):
    """Signing, certificate, manifest or watermark problems."""


# --- the record --------------------------------------------------------------------------------

def _parse_date(value: Any, field_name: str, where: str) -> _dt.date | None:
    if value is None or value == "":
        return None
    if isinstance(value, _dt.date):
        return value
    try:
        return _dt.date.fromisoformat(str(value))
    except ValueError:
        raise RecordFormatError(
            f"{where}: {field_name} {value!r} is not a date",
            hint="write it as YYYY-MM-DD, e.g. 2027-06-30 (empty = no end date)",
        ) from None


def today() -> _dt.date:
    return _dt.datetime.now(_dt.timezone.utc).date()


@dataclass
class RightsRecord:
    """One cleared subject. ``expires`` is the last day of validity (None = no end date)."""

    id: str
    kind: str
    subject: str
    production: str
    scopes: tuple[str, ...]
    document_sha256: str = ""
    document_location: str = ""
    holder: str = ""
    valid_from: _dt.date | None = None
    expires: _dt.date | None = None
    references: tuple[str, ...] = ()
    notes: str = ""
    created: str = ""
    created_by: str = ""

    def check(self, where: str = "record") -> "RightsRecord":
        """Validate fields; raises ``RecordFormatError`` naming the field."""
        if not isinstance(self.id, str) or not _ID_RE.match(self.id):
            raise RecordFormatError(f"{where}: id {self.id!r} must be letters, digits, '.', '_' or '-' (max 128)")
        if self.kind not in KINDS:
            raise RecordFormatError(f"{where}: kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if not self.subject or not isinstance(self.subject, str):
            raise RecordFormatError(f"{where}: subject is empty", hint="name the person, dataset, faceset or footage")
        if not self.production or not isinstance(self.production, str):
            raise RecordFormatError(f"{where}: production is empty")
        bad = [s for s in self.scopes if s not in SCOPES]
        if bad or not self.scopes:
            raise RecordFormatError(f"{where}: scopes {list(self.scopes)} must be some of {', '.join(SCOPES)}")
        if self.document_sha256 and not re.fullmatch(r"[0-9a-f]{64}", self.document_sha256):
            raise RecordFormatError(f"{where}: document_sha256 must be 64 lowercase hex digits")
        if self.valid_from and self.expires and self.expires < self.valid_from:
            raise RecordFormatError(f"{where}: expires {self.expires} is before valid_from {self.valid_from}")
        return self

    def to_doc(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "version": VERSION,
            "id": self.id,
            "kind": self.kind,
            "subject": self.subject,
            "production": self.production,
            "scopes": list(self.scopes),
            "valid_from": self.valid_from.isoformat() if self.valid_from else None,
            "expires": self.expires.isoformat() if self.expires else None,
            "document": {"sha256": self.document_sha256, "location": self.document_location},
            "holder": self.holder,
            "references": list(self.references),
            "notes": self.notes,
            "created": self.created,
            "created_by": self.created_by,
        }

    @classmethod
    def from_doc(cls, doc: Any, where: str = "record") -> "RightsRecord":
        if not isinstance(doc, dict):
            raise RecordFormatError(f"{where}: not a JSON object")
        if doc.get("schema") != SCHEMA:
            raise RecordFormatError(f"{where}: schema {doc.get('schema')!r} is not {SCHEMA!r}")
        version = doc.get("version")
        if not isinstance(version, int):
            raise RecordFormatError(f"{where}: version missing")
        doc = upgrade(doc, version, where)
        for name in ("id", "kind", "subject", "production", "scopes"):
            if name not in doc:
                raise RecordFormatError(f"{where}: field {name!r} is missing")
        scopes = doc["scopes"]
        if isinstance(scopes, str) or not isinstance(scopes, list):
            raise RecordFormatError(f"{where}: scopes must be a list")
        document = doc.get("document") or {}
        if not isinstance(document, dict):
            raise RecordFormatError(f"{where}: document must be an object with sha256 and location")
        return cls(
            id=doc["id"], kind=doc["kind"], subject=doc["subject"], production=doc["production"],
            scopes=tuple(scopes),
            document_sha256=str(document.get("sha256") or ""), document_location=str(document.get("location") or ""),
            holder=str(doc.get("holder") or ""),
            valid_from=_parse_date(doc.get("valid_from"), "valid_from", where),
            expires=_parse_date(doc.get("expires"), "expires", where),
            references=tuple(doc.get("references") or ()), notes=str(doc.get("notes") or ""),
            created=str(doc.get("created") or ""), created_by=str(doc.get("created_by") or ""),
        ).check(where)

    def covers(self, subject_id: str) -> bool:
        return subject_id in (self.id, self.subject)

    def status(self, production: str, scope: str, on: _dt.date | None = None) -> str:
        """'' when valid for ``production`` and ``scope`` on date ``on``, else why not."""
        on = on or today()
        if self.production != production:
            return f"is for production {self.production!r}, not {production!r}"
        if scope not in self.scopes:
            return f"covers {', '.join(self.scopes)}, not {scope}"
        if self.valid_from and on < self.valid_from:
            return f"is valid only from {self.valid_from}"
        if self.expires and on > self.expires:
            return f"expired on {self.expires}"
        return ""

    def summary(self) -> dict[str, Any]:
        """The short form written into provenance and C2PA manifests."""
        return {
            "id": self.id, "kind": self.kind, "subject": self.subject, "production": self.production,
            "scopes": list(self.scopes), "expires": self.expires.isoformat() if self.expires else None,
            "document_sha256": self.document_sha256,
        }


_UPGRADES: dict[int, Any] = {}  # version -> fn(doc) -> doc of version + 1


def upgrade(doc: dict[str, Any], version: int, where: str = "record") -> dict[str, Any]:
    if version > VERSION:
        raise RecordFormatError(f"{where}: rights record version {version} is newer than this machinima ({VERSION})", hint="upgrade machinima")
    while version < VERSION:
        step = _UPGRADES.get(version)
        if step is None:
            raise RecordFormatError(f"{where}: no upgrade from rights record version {version}")
        doc = step(doc)
        version += 1
    return doc


def document_hash(path: str | Path) -> str:
    """SHA-256 of the signed document (contract, release form)."""
    p = Path(path)
    try:
        h = hashlib.sha256()
        with open(p, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    except OSError as exc:
        raise RightsError(f"cannot read the signed document {p}: {exc.strerror or exc}", hint="give the path of the signed contract or release") from None
    return h.hexdigest()


# --- the store ---------------------------------------------------------------------------------

def default_store_dir(cfg: Any = None) -> Path:
    """``[rights] store`` from machinima.toml (relative to the project), else ``<takes-root>/../rights``."""
    if cfg is None:
        from .config import load_config

        cfg = load_config()
    sec = cfg.section("rights")
    if sec.get("store"):
        p = Path(str(sec["store"])).expanduser()
        return p if p.is_absolute() else cfg.project_dir / p
    return cfg.takes_root.parent / "rights"


class RightsStore:
    """A folder of record files, ``<id>.json`` each, written atomically."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_store_dir()

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
        atomic_write_json(p, record.to_doc())
        return p

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


# --- enforcement -------------------------------------------------------------------------------

@dataclass
class Problem:
    subject: str
    reason: str  # 'missing' | 'expired' | 'production' | 'scope' | 'not-yet-valid'
    message: str
    record_id: str | None = None


@dataclass
class Clearance:
    """What ``require`` found: the records relied on, and any override. Goes into provenance."""

    production: str
    scope: str
    subjects: list[str]
    records: list[RightsRecord] = field(default_factory=list)
    override: dict[str, Any] | None = None
    checked_on: str = ""

    @property
    def record_ids(self) -> list[str]:
        return [r.id for r in self.records]

    def to_provenance(self) -> dict[str, Any]:
        """JSON for params.json and the C2PA ``machinima.rights`` assertion."""
        return {
            "production": self.production,
            "scope": self.scope,
            "subjects": list(self.subjects),
            "records": [r.summary() for r in self.records],
            "override": self.override,
            "checked_on": self.checked_on,
        }


def merge_provenance(clearances: Iterable["Clearance | dict[str, Any]"]) -> dict[str, Any]:
    """Several clearances (e.g. face_replacement + lip_sync) as one provenance block."""
    items = [c.to_provenance() if isinstance(c, Clearance) else dict(c) for c in clearances]
    records: dict[str, Any] = {}
    overrides = []
    for it in items:
        for r in it.get("records", []):
            records[r["id"]] = r
        if it.get("override"):
            overrides.append(it["override"])
    override = None
    if overrides:  # one override block, whatever the number of clearances
        override = {"reason": "; ".join(dict.fromkeys(o.get("reason", "") for o in overrides)),
                    "by": overrides[0].get("by", ""), "at": overrides[0].get("at", ""),
                    "missing": [m for o in overrides for m in o.get("missing", [])]}
    return {"clearances": items, "records": list(records.values()), "override": override}


def provenance_of(rights: Any) -> dict[str, Any] | None:
    """The provenance block for params.json and manifests from a ``Clearance``, a list of them,
    or an already-made dict (None stays None)."""
    if rights is None:
        return None
    if isinstance(rights, Clearance):
        return rights.to_provenance()
    if isinstance(rights, dict):
        return rights if "records" in rights else {"records": [], **rights}
    return merge_provenance(rights)


def _add_hint(production: str, subject: str, scope: str) -> str:
    return (
        f"add one: machinima rights add {subject} --kind person --production {production} --scope {scope} "
        f"--expires YYYY-MM-DD --document /path/to/signed-release.pdf "
        f"(or, for your own test material, pass an override reason)"
    )


def _check_subject(store: RightsStore, production: str, subject: str, scope: str, on: _dt.date,
                   seen: set[str]) -> tuple[list[RightsRecord], Problem | None]:
    found = store.find(subject)
    if not found:
        return [], Problem(subject, "missing", f"no rights record for {subject!r} in {store.root}")
    valid = [r for r in found if not r.status(production, scope, on)]
    if not valid:
        # explain the closest miss: same production first, then scope, then dates
        def rank(r: RightsRecord) -> int:
            return (r.production == production) * 2 + (scope in r.scopes)

        best = max(found, key=rank)
        why = best.status(production, scope, on)
        reason = ("production" if best.production != production else "scope" if scope not in best.scopes
                  else "expired" if "expired" in why else "not-yet-valid")
        return [], Problem(subject, reason, f"record {best.id!r} for {subject!r} {why}", best.id)
    # the latest-expiring valid record
    rec = max(valid, key=lambda r: (r.expires or _dt.date.max))
    out = [rec]
    for ref in rec.references:
        if ref in seen:
            continue
        seen.add(ref)
        sub, prob = _check_subject(store, production, ref, scope, on, seen)
        if prob:
            prob.message = f"{prob.message} (referenced by {rec.id!r})"
            return [], prob
        out.extend(sub)
    return out, None


def require(
    production: str,
    subject_ids: str | Sequence[str],
    scope: str,
    override: str | bool | None = None,
    *,
    store: RightsStore | str | Path | None = None,
    on: _dt.date | str | None = None,
) -> Clearance:
    """Check that every subject has a valid record for ``production`` and ``scope``.

    ``subject_ids``: record ids or subject names (a person, dataset, faceset or footage).
    ``override``: a reason (str) to proceed without records, e.g. "my own face, test run";
    ``True`` means "override, no reason given". The override is never silent: it is returned
    in ``Clearance.override`` (who, when, why, what was missing) for provenance and manifests.
    ``store``: a ``RightsStore`` or folder (default: from machinima.toml). ``on``: the date to
    check against (default today, UTC).

    Raises ``NotCleared`` (message names each subject and why; hint gives the command to add a
    record), ``RecordFormatError`` for a malformed record file, ``RightsError`` for a bad scope.
    """
    if scope not in SCOPES:
        raise RightsError(f"unknown rights scope {scope!r}", hint=f"use one of {', '.join(SCOPES)}")
    if not production:
        raise RightsError("no production given for the rights check", hint="set production in machinima.toml or the take's slate")
    subjects = [subject_ids] if isinstance(subject_ids, str) else list(subject_ids)
    st = store if isinstance(store, RightsStore) else RightsStore(store)
    day = _parse_date(on, "date", "require()") if on is not None else today()
    clearance = Clearance(production, scope, subjects, checked_on=day.isoformat())
    problems: list[Problem] = []
    seen: set[str] = set(subjects)
    for s in subjects:
        recs, prob = _check_subject(st, production, s, scope, day, seen)
        if prob:
            problems.append(prob)
        for r in recs:
            if r.id not in clearance.record_ids:
                clearance.records.append(r)
    if problems:
        if override:
            try:
                user = getpass.getuser()
            except Exception:  # noqa: BLE001
                user = ""
            clearance.override = {
                "reason": override if isinstance(override, str) else "override (no reason given)",
                "by": user,
                "at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                "missing": [{"subject": p.subject, "reason": p.reason, "message": p.message} for p in problems],
            }
            return clearance
        first = problems[0]
        msg = f"{scope} not cleared for production {production!r}: " + "; ".join(p.message for p in problems)
        raise NotCleared(msg, hint=_add_hint(production, first.subject, scope), problems=problems)
    return clearance


def require_items(
    production: str,
    items: Iterable[Any],
    scope: str,
    override: str | bool | None = None,
    *,
    store: RightsStore | str | Path | None = None,
    on: _dt.date | str | None = None,
    what: str = "collection",
) -> Clearance:
    """``require`` for a faceset or dataset (``machinima.collections`` items, or anything with
    ``.id``, ``.file`` and ``.rights``): every item must name at least one record, and every
    record named must be valid. Items without a record are refused by name (first five)."""
    items = list(items)
    bare = [it for it in items if not list(getattr(it, "rights", []) or [])]
    ids = list(dict.fromkeys(r for it in items for r in (getattr(it, "rights", []) or [])))
    problems: list[Problem] = [Problem(f"item {getattr(it, 'id', '?')} ({getattr(it, 'file', '?')})", "missing",
                                       f"{what} item {getattr(it, 'id', '?')} ({getattr(it, 'file', '?')}) names no rights record")
                               for it in bare]
    try:
        clearance = require(production, ids, scope, override, store=store, on=on) if ids else Clearance(
            production, scope, [], checked_on=(_parse_date(on, "date", "require()") if on is not None else today()).isoformat())
    except NotCleared as exc:
        problems = exc.problems + problems
        clearance = None
    if problems and (clearance is None or clearance.override is None):
        if override:
            clearance = require(production, ids, scope, override, store=store, on=on) if ids else Clearance(production, scope, [])
            missing = [{"subject": p.subject, "reason": p.reason, "message": p.message} for p in problems]
            try:
                user = getpass.getuser()
            except Exception:  # noqa: BLE001
                user = ""
            clearance.override = clearance.override or {"reason": override if isinstance(override, str) else "override (no reason given)",
                                                        "by": user, "at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                                                        "missing": []}
            known = {m["message"] for m in clearance.override["missing"]}
            clearance.override["missing"] += [m for m in missing if m["message"] not in known]
            return clearance
        shown = "; ".join(p.message for p in problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        hint = (f"add the record (machinima rights add NAME --production {production} --scope {scope} ...) and set the items' "
                f"rights ids, e.g. Collection.update(item_id, rights=['NAME'])")
        raise NotCleared(f"{scope} not cleared for production {production!r}: {shown}", hint=hint, problems=problems)
    assert clearance is not None
    return clearance

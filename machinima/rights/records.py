"""The rights record: who may be used, by which production, for what, until when, bound to
the person's face by identity embeddings of their reference photos, and signed."""

from __future__ import annotations

import datetime as _dt
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import RecordFormatError, RightsError

SCHEMA = "machinima.rights-record"
VERSION = 2  # 2: identity (reference photo embeddings), granted_by, signature
KINDS = ("person", "dataset", "faceset", "footage")
SCOPES = ("training", "face_replacement", "voice", "lip_sync")
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


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
    """One cleared subject. ``expires`` is the last day of validity (None = no end date).

    ``identity`` (a person): the reference photos' hashes and their identity embeddings per
    method (``machinima.identity``): what a face in the material must match. ``signature``:
    the production key's signature over the whole record (``machinima.provenance.sigdoc``);
    a record edited after signing, or signed by a stranger, clears nothing.
    """

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
    granted_by: str = ""  # who granted the rights (the person, their agent)
    identity: dict[str, Any] | None = None  # {"photos": [{sha256, name, box}], "embeddings": {method: [[...]]}}
    signature: dict[str, Any] | None = None

    def embeddings(self, method: str) -> list[list[float]]:
        """The reference embeddings of ``method`` (empty when the record has none)."""
        return list(((self.identity or {}).get("embeddings") or {}).get(method) or [])

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
        if self.identity is not None:
            emb = self.identity.get("embeddings") if isinstance(self.identity, dict) else None
            if not isinstance(emb, dict) or not all(isinstance(v, list) and all(isinstance(e, list) for e in v) for v in emb.values()):
                raise RecordFormatError(f"{where}: identity.embeddings must map a method to a list of embeddings")
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
            "granted_by": self.granted_by,
            "identity": self.identity,
            **({"signature": self.signature} if self.signature else {}),
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
            granted_by=str(doc.get("granted_by") or ""), identity=doc.get("identity") or None,
            signature=doc.get("signature") if isinstance(doc.get("signature"), dict) else None,
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
            "document_sha256": self.document_sha256, "granted_by": self.granted_by,
            "photos": [p.get("sha256", "")[:16] for p in (self.identity or {}).get("photos", [])],
        }


def _v1_to_v2(doc: dict[str, Any]) -> dict[str, Any]:
    """Version 1 records named a subject and nothing more: they are kept, unsigned and without
    an identity, so they clear no face until re-added with reference photos."""
    return {**doc, "version": 2, "granted_by": doc.get("granted_by", ""), "identity": None}


_UPGRADES: dict[int, Any] = {1: _v1_to_v2}  # version -> fn(doc) -> doc of version + 1


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

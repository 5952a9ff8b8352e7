"""Enforcement by record id or subject: what ``require`` found (``Clearance``), for provenance."""

from __future__ import annotations

import datetime as _dt
import getpass
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from .errors import NotCleared, RightsError
from .records import SCOPES, RightsRecord, _parse_date, today
from .store import RightsStore


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
    identities: list[dict[str, Any]] = field(default_factory=list)  # faces matched: record, faces, worst distance, method
    swap: dict[str, Any] | None = None  # a face-swap merge's clearance, which later steps inherit (``rights.inherit``)
    inherited: list[dict[str, Any]] = field(default_factory=list)  # clearances inherited from merge steps read

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
            **({"identities": self.identities} if self.identities else {}),
            **({"swap": self.swap} if self.swap else {}),
            **({"inherited": self.inherited} if self.inherited else {}),
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
    identities = [i for it in items for i in it.get("identities", [])]
    inherited = [i for it in items for i in it.get("inherited", [])]
    swap = next((it["swap"] for it in items if it.get("swap")), None)
    return {"clearances": items, "records": list(records.values()), "override": override,
            **({"identities": identities} if identities else {}), **({"inherited": inherited} if inherited else {}),
            **({"swap": swap} if swap else {})}


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


def free_record_id(store: RightsStore, wanted: str) -> str:
    """``wanted`` slugged, or the first ``wanted-N`` no record uses yet (a hint never names an id
    that ``rights add`` would refuse as existing)."""
    import re

    base = re.sub(r"[^A-Za-z0-9._-]+", "-", wanted).strip("-").lower() or "record"
    rid, n = base, 2
    while store.path_of(rid).exists():
        rid, n = f"{base}-{n}", n + 1
    return rid


def _add_hint(production: str, subject: str, scope: str, store: RightsStore | None = None) -> str:
    rid = free_record_id(store, subject) if store is not None else subject
    return (
        f"add one: machinima rights add {subject!r} --id {rid} --production {production} --scope {scope} --photo FACE.jpg "
        f"--document SIGNED-RELEASE.pdf --granted-by WHO --expires YYYY-MM-DD "
        f"(or, for your own test material, pass an override reason)"
    )


def continued_override(provenance: dict[str, Any] | None) -> str | None:
    """The reason of an override recorded in an earlier run's provenance (a resumed model goes
    on under the decision it was started with, and says so), else None."""
    ov = (provenance or {}).get("override")
    if not ov:
        return None
    reason = ov.get("reason") if isinstance(ov, dict) else str(ov)
    return reason if str(reason).startswith("continued: ") else f"continued: {reason}"


def make_override(reason: str | bool, problems: Sequence[Problem]) -> dict[str, Any]:
    """The override block (who, when, why, what was missing) that provenance and manifests carry."""
    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name in some containers
        user = ""
    return {"reason": reason if isinstance(reason, str) else "override (no reason given)", "by": user,
            "at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "missing": [{"subject": p.subject, "reason": p.reason, "message": p.message} for p in problems]}


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
            clearance.override = make_override(override, problems)
            return clearance
        first = problems[0]
        msg = f"{scope} not cleared for production {production!r}: " + "; ".join(p.message for p in problems)
        raise NotCleared(msg, hint=_add_hint(production, first.subject, scope, st), problems=problems)
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
            clearance.override = clearance.override or make_override(override, [])
            known = {m["message"] for m in clearance.override["missing"]}
            clearance.override["missing"] += [m for m in missing if m["message"] not in known]
            return clearance
        shown = "; ".join(p.message for p in problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        hint = (f"add the record (machinima rights add NAME --production {production} --scope {scope} ...) and set the items' "
                f"rights ids, e.g. Collection.update(item_id, rights=['NAME'])")
        raise NotCleared(f"{scope} not cleared for production {production!r}: {shown}", hint=hint, problems=problems)
    assert clearance is not None
    return clearance

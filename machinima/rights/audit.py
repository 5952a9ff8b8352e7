"""Audit from training set to delivered frame: ``machinima rights audit TAKE|TAKES|PROJECT``.

Walks what a project holds and what it was made from, and says what is outside its rights:

- **collections** (facesets, datasets): every face sampled and matched against the records
  (which identities it holds; faces that match none);
- **models**: face-swap models (``model.json``) and LoRAs (``.safetensors`` metadata): the
  identities they were trained on, their records, any override;
- **post steps** (``<take>/post/<step>/`` and step folders elsewhere in the project): the
  identities each relied on, clearances inherited from a face-swap merge (which step, which
  source and destination records), overrides, "disclosure off" decisions, and every picture or video
  output without valid disclosure;
- **deliveries**: pictures and videos at the top of the project folder or under ``deliveries/``.

Every identity is listed with its record, scope, expiry and status today (valid, expired,
missing, unsigned, changed since use). ``AuditReport.bad`` is true when anything is outside its
rights: an identity whose record is not valid now, a face no record clears, an override, an
undisclosed output not covered by a recorded decision, a decision file that is not signed, a
delivery that does not verify.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from .errors import RecordFormatError, RightsError
from .records import today
from .store import RightsStore

MEDIA = (".png", ".jpg", ".jpeg", ".mp4", ".mov")


@dataclass
class StepAudit:
    take: str
    step: str
    kind: str
    path: str
    rights: dict[str, Any] | None
    outputs: int = 0
    disclosed: int = 0
    decision: dict[str, Any] | None = None
    problems: list[tuple[str, str]] = field(default_factory=list)  # (path, status: reason)


@dataclass
class AuditReport:
    steps: list[StepAudit] = field(default_factory=list)
    identities: dict[str, dict[str, Any]] = field(default_factory=dict)
    overrides: list[dict[str, Any]] = field(default_factory=list)
    models: list[dict[str, Any]] = field(default_factory=list)
    collections: list[dict[str, Any]] = field(default_factory=list)
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    decisions: list[dict[str, Any]] = field(default_factory=list)
    inherited: list[dict[str, Any]] = field(default_factory=list)  # clearances a step inherited from a face-swap merge
    problems: list[str] = field(default_factory=list)  # one line each: what is outside its rights

    @property
    def undisclosed(self) -> list[tuple[str, str]]:
        return [p for s in self.steps for p in s.problems]

    @property
    def bad(self) -> bool:
        return bool(self.problems)

    def to_doc(self) -> dict[str, Any]:
        return {
            "steps": [{"take": s.take, "step": s.step, "kind": s.kind, "path": s.path, "outputs": s.outputs, "disclosed": s.disclosed,
                       "records": [r.get("id") for r in (s.rights or {}).get("records", [])], "decision": s.decision,
                       "problems": s.problems} for s in self.steps],
            "identities": self.identities, "overrides": self.overrides, "models": self.models, "collections": self.collections,
            "deliveries": self.deliveries, "decisions": self.decisions, "inherited": self.inherited,
            "undisclosed": [{"path": p, "status": st} for p, st in self.undisclosed], "problems": self.problems, "ok": not self.bad,
        }


def _json(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        return doc if isinstance(doc, dict) else {}
    except (OSError, ValueError):
        return {}


class _Walk:
    """One audit: the store, the trust, and the report being filled."""

    def __init__(self, store: RightsStore, trust: Any, watermarks: bool) -> None:
        self.store, self.trust, self.watermarks = store, trust, watermarks
        self.rep = AuditReport()
        self._photos: dict[str, str] | None = None

    def identity(self, rec: dict[str, Any], used_in: str, how: str = "used_in") -> None:
        """Note a record relied on, and its status today."""
        rid = str(rec.get("id") or rec.get("record") or "?")
        ent = self.rep.identities.setdefault(rid, {"subject": rec.get("subject"), "kind": rec.get("kind"), "production": rec.get("production"),
                                                   "scopes": rec.get("scopes"), "expires": rec.get("expires"), "used_in": [], "trained": [],
                                                   "status": ""})
        ent[how].append(used_in)
        if ent["status"]:
            return
        try:
            cur = self.store.get(rid)
        except RecordFormatError as exc:
            ent["status"], ent["error"] = "malformed", str(exc)
        else:
            if cur is None:
                ent["status"] = "missing"
            else:
                sig = self.store.signature_of(cur)
                ent.update(expires=cur.expires.isoformat() if cur.expires else None, scopes=list(cur.scopes), granted_by=cur.granted_by,
                           signature=sig.state)
                ent["status"] = ("expired" if cur.expires and today() > cur.expires else
                                 "not yet valid" if cur.valid_from and today() < cur.valid_from else
                                 "unsigned or changed" if not sig.ok else "valid")
                if rec.get("document_sha256") and rec["document_sha256"] != cur.document_sha256:
                    ent["status"] = "changed since use"
        if ent["status"] != "valid":
            self.rep.problems.append(f"record {rid!r} ({ent.get('subject')}) is {ent['status']} (used by {used_in})")

    def rights_block(self, rights: dict[str, Any] | None, where: str, take: str = "", step: str = "", how: str = "used_in") -> None:
        rights = rights or {}
        for r in rights.get("records", []):
            self.identity(r, where, how)
        for inh in rights.get("inherited", []) or []:  # the merge's records are in "records" too: their status is checked above
            self.rep.inherited.append({"take": take, "step": step, "where": where, **inh})
        ovs = rights.get("override")
        for ov in (ovs if isinstance(ovs, list) else [ovs] if ovs else []):
            self.rep.overrides.append({"take": take, "step": step, "where": where, **ov})
            self.rep.problems.append(f"rights override in {where}: {ov.get('reason')} (by {ov.get('by') or '?'} at {ov.get('at') or '?'})")

    def step(self, folder: Path, take: str) -> None:
        from ..provenance import decision_home, iter_media, read_decision, verify_file

        params = _json(folder / "params.json")
        sa = StepAudit(take, folder.name, str(params.get("step", "?")), str(folder), params.get("rights"))
        where = f"{take}/{folder.name}" if take else str(folder)
        self.rights_block(sa.rights, where, take, folder.name)
        dec = read_decision(decision_home(folder), self.trust)
        if dec is not None:
            sa.decision = dec.summary()
            self.rep.decisions.append({"where": where, **dec.summary()})
            if not dec.honoured:
                self.rep.problems.append(f"{dec.path} {dec.check.reason()}: the decision is not honoured")
        off = dec is not None and dec.honoured and not dec.disclose
        for f in iter_media(folder):
            sa.outputs += 1
            rep = verify_file(f, trust=self.trust, watermark=self.watermarks or f.suffix.lower() in (".mp4", ".mov"))
            if rep.status in ("ok", "ok-local", "unwatermarked", "override"):  # overrides are reported once per step, above
                sa.disclosed += 1
            elif rep.status == "unmarked" and off:
                pass  # a recorded decision; listed with the step
            else:
                label = "no disclosure" if rep.status == "unmarked" else rep.status
                sa.problems.append((str(f), f"{label}: {rep.reason}"))
        for p, st in sa.problems[:3]:
            self.rep.problems.append(f"{p}: {st}")
        if len(sa.problems) > 3:
            self.rep.problems.append(f"{where}: and {len(sa.problems) - 3} more outputs without valid disclosure")
        self.rep.steps.append(sa)

    def take(self, take_dir: Path) -> None:
        doc = _json(take_dir / "take.json")
        take_id = str(doc.get("id") or take_dir.name)
        post = take_dir / "post"
        if post.is_dir():
            for folder in sorted(p for p in post.iterdir() if p.is_dir() and not p.name.startswith(".")):
                self.step(folder, take_id)

    def model(self, path: Path, kind: str, rights: dict[str, Any] | None) -> None:
        ids = [r.get("id") for r in (rights or {}).get("records", [])]
        self.rep.models.append({"path": str(path), "kind": kind, "records": ids, "identities": (rights or {}).get("identities", []),
                                "override": (rights or {}).get("override")})
        self.rights_block(rights, str(path), how="trained")

    def collection(self, path: Path) -> None:
        from ..identity import get_embedder
        from .faces import _candidates, faces_in_collection

        try:
            emb = get_embedder()
            faces = faces_in_collection(path)
        except Exception as exc:  # noqa: BLE001 - a broken collection is a finding, not a crash
            self.rep.problems.append(f"collection {path} cannot be checked: {str(exc).splitlines()[0]}")
            return
        cands, _ = _candidates(self.store, "", "training", today(), emb.method)
        matches: dict[str, int] = {}
        unknown = []
        for face in faces:
            best = min(((min(emb.distance(face.embedding, r) for r in c.refs), c.record.id) for c in cands), default=(9.0, ""))
            if best[0] < emb.threshold:
                matches[best[1]] = matches.get(best[1], 0) + 1
            else:
                unknown.append(face.where)
        self.rep.collections.append({"path": str(path), "faces_checked": len(faces), "identities": matches, "unknown": len(unknown)})
        for rid in matches:
            rec = self.store.get(rid)
            self.identity(rec.summary() if rec else {"id": rid}, str(path))
        if unknown:
            self.rep.problems.append(f"collection {path}: {len(unknown)} face(s) match no rights record (first: {unknown[0]})")

    def reference_photos(self) -> dict[str, str]:
        """sha256 -> record id of every record's reference photos: the photos a person gave to
        bind a record to their face are inputs, not outputs, wherever they lie."""
        if self._photos is None:
            self._photos = {}
            try:
                records = self.store.records()
            except (RightsError, OSError):
                records = []
            for r in records:
                for ph in (r.identity or {}).get("photos", []):
                    if ph.get("sha256"):
                        self._photos[ph["sha256"]] = r.id
        return self._photos

    def delivery(self, path: Path) -> None:
        import hashlib

        from ..provenance import verify_file

        if path.suffix.lower() in (".png", ".jpg", ".jpeg"):
            record = self.reference_photos().get(hashlib.sha256(path.read_bytes()).hexdigest())
            if record is not None:
                self.rep.deliveries.append({"path": str(path), "status": "reference photo", "reason": f"of rights record {record!r}"})
                return
        rep = verify_file(path, trust=self.trust)
        self.rep.deliveries.append({"path": str(path), "status": rep.status, "reason": rep.reason})
        if rep.bad:
            self.rep.problems.append(f"delivery {path}: {rep.status}: {rep.reason}")


def _take_folders(target: Path) -> list[Path]:
    from ..take import iter_take_folders

    if (target / "take.json").exists():
        return [target]
    folders = list(iter_take_folders(target))
    if not folders and (target / "takes").is_dir():
        folders = list(iter_take_folders(target / "takes"))
    return folders


def _project_items(project: Path, skip: set[Path]) -> Iterator[tuple[str, Path]]:
    """('step'|'collection'|'faceswap-model'|'lora'|'delivery', path) under a project folder."""
    for p in sorted(project.iterdir()):
        if p.name.startswith(".") or p.resolve() in skip:
            continue
        if p.is_file() and p.suffix.lower() in MEDIA:
            yield "delivery", p
        elif p.is_dir():
            yield from _folder_items(p, skip, deliveries=p.name == "deliveries")


def _folder_items(folder: Path, skip: set[Path], *, deliveries: bool, depth: int = 0) -> Iterator[tuple[str, Path]]:
    if depth > 6 or folder.resolve() in skip:
        return
    if (folder / "index.sqlite").is_file():
        yield "collection", folder
        return
    if (folder / "model.json").is_file() and _json(folder / "model.json").get("schema") == "machinima.faceswap-model":
        yield "faceswap-model", folder
        return
    if (folder / "params.json").is_file() and "step" in _json(folder / "params.json"):
        yield "step", folder
        return
    if (folder / "take.json").is_file():
        return
    for p in sorted(folder.iterdir()):
        if p.name.startswith("."):
            continue
        if p.is_dir():
            yield from _folder_items(p, skip, deliveries=deliveries, depth=depth + 1)
        elif p.suffix == ".safetensors":
            yield "lora", p
        elif deliveries and p.suffix.lower() in MEDIA:
            yield "delivery", p


def _lora_rights(path: Path) -> dict[str, Any] | None:
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="numpy") as fh:
            meta = fh.metadata() or {}
    except Exception:  # noqa: BLE001 - not ours, or not readable: nothing to say about rights
        return None
    raw = meta.get("machinima.rights")
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


def audit(target: str | Path, *, store: RightsStore | None = None, watermarks: bool = False, trust: Any = None) -> AuditReport:
    """Audit one take folder, a takes root or a project folder (see the module docstring)."""
    from ..provenance import trust_for

    target = Path(target)
    if not target.exists():
        raise RightsError(f"{target} does not exist", hint="give a take folder, a takes root or a project folder")
    is_project = (target / "machinima.toml").exists()
    if is_project:
        from ..config import load_config

        takes_root = load_config(target).takes_root
        folders = _take_folders(takes_root)
    else:
        folders = _take_folders(target)
    if not folders and not is_project:
        raise RightsError(f"no takes under {target}", hint="give a take folder, a takes root or a project folder")
    walk = _Walk(store or RightsStore(), trust if trust is not None else trust_for(target), watermarks)
    for take_dir in folders:
        walk.take(take_dir)
    if is_project or (target / "takes").is_dir():
        skip = {f.resolve() for f in folders} | {(target / "takes").resolve(), walk.store.root.resolve()}
        if is_project:
            skip.add(takes_root.resolve())
        for kind, p in _project_items(target, skip):
            if kind == "step":
                walk.step(p, "")
            elif kind == "collection":
                walk.collection(p)
            elif kind == "faceswap-model":
                walk.model(p, "faceswap", _json(p / "model.json").get("rights"))
            elif kind == "lora":
                rights = _lora_rights(p)
                if rights is not None:
                    walk.model(p, "lora", rights)
            else:
                walk.delivery(p)
    return walk.rep

"""``machinima rights ...``: add and list rights records, audit takes, make a test certificate
chain; and the body of the top-level ``machinima verify`` command.

    machinima rights add alice --kind person --production my-film --scope training --scope face_replacement \\
        --expires 2027-06-30 --document contracts/alice-release.pdf
    machinima rights list [--production P]
    machinima rights audit TAKE|PROJECT [--watermarks] [--json]
    machinima rights certs DIR            # test root + signing certificate, prints the toml to use
    machinima rights sign FILE --take ID --step ID   # sign a delivered MP4/PNG/JPEG
    machinima verify FILE|FOLDER [--json] [--strict]
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from . import rights as R

console = Console()
app = typer.Typer(help="Rights records (who may be used, for what, until when), audits, signing certificates.", no_args_is_help=True)

StoreOpt = typer.Option(None, "--store", help="Rights store folder (default: [rights] store in machinima.toml, else <takes-root>/../rights).")


def _store(store: Optional[Path]) -> R.RightsStore:
    return R.RightsStore(store) if store else R.RightsStore()


def _slug(text: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-").lower() or "record"


@app.command("add")
def add(
    subject: str = typer.Argument(..., help="Who or what: a person's name, a dataset, faceset or footage id."),
    kind: str = typer.Option("person", help=f"One of {', '.join(R.KINDS)}."),
    production: Optional[str] = typer.Option(None, help="Production (default: production in machinima.toml)."),
    scope: list[str] = typer.Option(..., "--scope", help=f"Consented use, repeat for several: {', '.join(R.SCOPES)}."),
    expires: Optional[str] = typer.Option(None, help="Last valid day, YYYY-MM-DD (omit: no end date)."),
    valid_from: Optional[str] = typer.Option(None, help="First valid day, YYYY-MM-DD."),
    document: Optional[Path] = typer.Option(None, help="The signed release/contract: its SHA-256 is stored, and its path as location."),
    document_sha256: Optional[str] = typer.Option(None, help="SHA-256 of the signed document when it is not on this machine."),
    location: Optional[str] = typer.Option(None, help="Where the signed document is kept (default: --document's path)."),
    holder: str = typer.Option("", help="Who holds the rights (studio, agency)."),
    record_id: Optional[str] = typer.Option(None, "--id", help="Record id (default: the subject, slugged)."),
    references: list[str] = typer.Option([], "--references", help="Records this one draws on (a dataset's persons)."),
    notes: str = typer.Option("", help="Free text."),
    replace: bool = typer.Option(False, help="Supersede an existing record with the same id."),
    store: Optional[Path] = StoreOpt,
) -> None:
    """Add a rights record (schema machinima.rights-record v1) to the store."""
    if production is None:
        from .config import load_config

        production = load_config().production
    if document is None and not document_sha256:
        raise R.RightsError("a rights record needs the signed document", hint="pass --document PATH (hashed) or --document-sha256 HEX --location WHERE")
    sha = R.document_hash(document) if document is not None else str(document_sha256).lower()
    rec = R.RightsRecord(
        id=record_id or _slug(subject), kind=kind, subject=subject, production=production, scopes=tuple(scope),
        document_sha256=sha, document_location=location or (str(document.resolve()) if document else ""), holder=holder,
        valid_from=R._parse_date(valid_from, "--valid-from", "rights add"), expires=R._parse_date(expires, "--expires", "rights add"),
        references=tuple(references), notes=notes,
    )
    path = _store(store).add(rec, replace=replace)
    console.print(f"added rights record [bold]{rec.id}[/] ({rec.kind} {rec.subject!r}, {production}, {', '.join(rec.scopes)}, "
                  f"until {rec.expires or 'no end date'}) -> {path}")


@app.command("list")
def list_records(production: Optional[str] = typer.Option(None), store: Optional[Path] = StoreOpt) -> None:
    """List rights records with their status today."""
    st = _store(store)
    table = Table(title=f"rights records in {st.root}")
    for col in ("id", "kind", "subject", "production", "scopes", "expires", "status", "document"):
        table.add_column(col)
    today = R.today()
    for r in st.records():
        if production and r.production != production:
            continue
        status = "expired" if r.expires and today > r.expires else ("not yet valid" if r.valid_from and today < r.valid_from else "valid")
        table.add_row(r.id, r.kind, r.subject, r.production, ", ".join(r.scopes), str(r.expires or "-"), status,
                      f"{r.document_sha256[:12]} {r.document_location}")
    console.print(table)


@app.command("certs")
def certs(
    out: Path = typer.Argument(..., help="Folder for root.pem, root.key, signer.pem, signer.key."),
    organization: str = typer.Option("machinima test production", help="Organization name in the certificates."),
    days: int = typer.Option(365, help="Validity of the signing certificate in days."),
    overwrite: bool = typer.Option(False, help="Replace an existing chain."),
) -> None:
    """Make a local test chain (root CA + C2PA signing certificate) for tests and demos."""
    from .provenance import make_test_chain

    chain = make_test_chain(out, organization=organization, days=days, overwrite=overwrite)
    console.print(f"test chain written to {out} (not trusted outside this project). Add to machinima.toml:\n")
    console.print(chain.toml(), markup=False, highlight=False)


@app.command("sign")
def sign(
    file: Path = typer.Argument(..., help="A delivered PNG, JPEG or MP4 whose frames come from disclosed post steps."),
    take: str = typer.Option(..., help="Take id the file comes from."),
    step: str = typer.Option(..., help="Step id (e.g. the delivery or the last post step)."),
    kind: str = typer.Option("delivery", help="Step kind written into the manifest."),
    out: Optional[Path] = typer.Option(None, help="Write the signed copy here (default: sign in place)."),
) -> None:
    """Sign a file with the production certificate from machinima.toml."""
    from .provenance import Disclosure, identity_from_config

    d = Disclosure(identity=identity_from_config(), take_id=take, step_id=step, step_kind=kind)
    path = d.sign_file(file, out)
    console.print(f"signed {path}")


# --- audit ------------------------------------------------------------------------------------

@dataclass
class StepAudit:
    take: str
    step: str
    kind: str
    rights: dict[str, Any] | None
    outputs: int = 0
    disclosed: int = 0
    problems: list[tuple[str, str]] = field(default_factory=list)  # (path, status)


@dataclass
class AuditReport:
    steps: list[StepAudit] = field(default_factory=list)
    identities: dict[str, dict[str, Any]] = field(default_factory=dict)
    overrides: list[dict[str, Any]] = field(default_factory=list)

    @property
    def undisclosed(self) -> list[tuple[str, str]]:
        return [p for s in self.steps for p in s.problems]

    @property
    def bad(self) -> bool:
        return bool(self.undisclosed) or any(i["status"] in ("missing", "malformed") for i in self.identities.values())

    def to_doc(self) -> dict[str, Any]:
        return {
            "steps": [{"take": s.take, "step": s.step, "kind": s.kind, "outputs": s.outputs, "disclosed": s.disclosed,
                       "records": [r.get("id") for r in (s.rights or {}).get("records", [])], "problems": s.problems} for s in self.steps],
            "identities": self.identities, "overrides": self.overrides,
            "undisclosed": [{"path": p, "status": st} for p, st in self.undisclosed], "ok": not self.bad,
        }


def _take_folders(target: Path) -> list[Path]:
    from .take import iter_take_folders

    if (target / "take.json").exists():
        return [target]
    if (target / "machinima.toml").exists():
        from .config import load_config

        return list(iter_take_folders(load_config(target).takes_root))
    folders = list(iter_take_folders(target))
    if not folders and (target / "takes").is_dir():
        folders = list(iter_take_folders(target / "takes"))
    return folders


def audit(target: str | Path, *, store: R.RightsStore | None = None, watermarks: bool = False,
          trust_anchors: bytes | None = None) -> AuditReport:
    """Every identity used (with its record and expiry) and every output without valid disclosure,
    for one take folder, a takes root or a project folder."""
    from .provenance import is_picture, iter_media, verify_file

    target = Path(target)
    if not target.exists():
        raise R.RightsError(f"{target} does not exist", hint="give a take folder, a takes root or a project folder")
    folders = _take_folders(target)
    if not folders:
        raise R.RightsError(f"no takes under {target}", hint="give a take folder, a takes root or a project folder")
    st = store or R.RightsStore()
    report = AuditReport()
    for take_dir in folders:
        try:
            take_id = str(json.loads((take_dir / "take.json").read_text(encoding="utf-8")).get("id") or take_dir.name)
        except (OSError, ValueError):
            take_id = take_dir.name
        post = take_dir / "post"
        if not post.is_dir():
            continue
        for step_dir in sorted(p for p in post.iterdir() if p.is_dir() and not p.name.startswith(".")):
            params: dict[str, Any] = {}
            try:
                params = json.loads((step_dir / "params.json").read_text(encoding="utf-8"))
            except (OSError, ValueError):
                pass
            sa = StepAudit(take_id, step_dir.name, str(params.get("step", "?")), params.get("rights"))
            rights = sa.rights or {}
            for r in rights.get("records", []):
                rid = r.get("id", "?")
                ent = report.identities.setdefault(rid, {"subject": r.get("subject"), "kind": r.get("kind"), "production": r.get("production"),
                                                         "scopes": r.get("scopes"), "expires": r.get("expires"), "used_in": [], "status": ""})
                ent["used_in"].append(f"{take_id}/{step_dir.name}")
                try:
                    cur = st.get(rid)
                except R.RecordFormatError as exc:
                    ent["status"] = "malformed"
                    ent["error"] = str(exc)
                    continue
                if cur is None:
                    ent["status"] = "missing"
                else:
                    ent["expires"] = cur.expires.isoformat() if cur.expires else None
                    ent["status"] = "expired" if cur.expires and R.today() > cur.expires else "valid"
                    if r.get("document_sha256") and r["document_sha256"] != cur.document_sha256:
                        ent["status"] = "changed since use"
            overrides = rights.get("override")
            for ov in (overrides if isinstance(overrides, list) else [overrides] if overrides else []):
                report.overrides.append({"take": take_id, "step": step_dir.name, **ov})
            for f in iter_media(step_dir):
                if not is_picture(f):
                    continue  # masks and data passes are not pictures: not disclosed
                sa.outputs += 1
                rep = verify_file(f, trust_anchors=trust_anchors, watermark=watermarks)
                if rep.bad or (watermarks and rep.status != "ok"):
                    sa.problems.append((str(f), rep.status if rep.status != "unmarked" else "no disclosure"))
                else:
                    sa.disclosed += 1
            report.steps.append(sa)
    return report


@app.command("audit")
def audit_cmd(
    target: Path = typer.Argument(..., help="A take folder, a takes root or a project folder."),
    watermarks: bool = typer.Option(False, "--watermarks", help="Also decode every output's watermark (slower)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    store: Optional[Path] = StoreOpt,
) -> None:
    """List every identity used, its record and expiry, overrides, and any output without disclosure. Exit 1 on problems."""
    from .config import load_config
    from .provenance import trust_anchors_from_config

    # a project folder brings its own machinima.toml (rights store, trust anchors)
    cfg = load_config(target) if (target / "machinima.toml").exists() else load_config()
    st = _store(store) if store else R.RightsStore(R.default_store_dir(cfg))
    rep = audit(target, store=st, watermarks=watermarks, trust_anchors=trust_anchors_from_config(cfg))
    if as_json:
        print(json.dumps(rep.to_doc(), indent=2))
    else:
        t = Table(title="identities used")
        for col in ("record", "subject", "kind", "scopes", "expires", "status now", "used in"):
            t.add_column(col)
        for rid, e in sorted(rep.identities.items()):
            t.add_row(rid, str(e.get("subject")), str(e.get("kind")), ", ".join(e.get("scopes") or []), str(e.get("expires") or "-"),
                      e["status"], ", ".join(e["used_in"]))
        console.print(t)
        for ov in rep.overrides:
            console.print(f"[yellow]override[/] {ov['take']}/{ov['step']}: {ov.get('reason')} (by {ov.get('by') or '?'} at {ov.get('at')}; "
                          f"missing: {', '.join(m.get('subject', '?') for m in ov.get('missing', []))})")
        s = Table(title="outputs")
        for col in ("take", "step", "kind", "files", "disclosed", "problems"):
            s.add_column(col)
        for st in rep.steps:
            s.add_row(st.take, st.step, st.kind, str(st.outputs), str(st.disclosed), str(len(st.problems)))
        console.print(s)
        for path, status in rep.undisclosed:
            console.print(f"[red]{status}[/] {path}")
    if rep.bad:
        raise typer.Exit(1)


# --- verify (the body of the top-level `machinima verify`) ------------------------------------

def run_verify(target: Path, *, as_json: bool = False, strict: bool = False, watermark: bool = True) -> int:
    """Print a report per file and a summary; return the exit code (1 on tampered/unmarked)."""
    from .provenance import trust_anchors_from_config, verify_path

    reports = verify_path(target, trust_anchors=trust_anchors_from_config(), watermark=watermark)
    if not reports:
        raise R.DisclosureError(f"no PNG, JPEG or MP4 files under {target}")
    strict_bad = ("watermark-only", "unwatermarked")
    bad = [r for r in reports if r.bad or (strict and (r.status in strict_bad or "signingCredential.untrusted" in r.failures))]
    if as_json:
        print(json.dumps({"files": [r.to_doc() for r in reports], "bad": len(bad), "total": len(reports)}, indent=2))
        return 1 if bad else 0
    colors = {"ok": "green", "watermark-only": "yellow", "unwatermarked": "yellow"}
    single = len(reports) == 1
    for r in reports:
        c = colors.get(r.status, "red")
        line = f"[{c}]{r.status:<14}[/] {r.path}  manifest={r.manifest}"
        if r.source_type:
            line += f" source={r.source_type}"
        if r.take:
            line += f" take={r.take} step={r.step} ({r.kind})"
        if r.records:
            line += f" rights={','.join(r.records)}"
        if r.override:
            line += f" [yellow]OVERRIDE: {r.override.get('reason') if isinstance(r.override, dict) else r.override}[/]"
        if r.watermark is not None:
            w = r.watermark
            line += (f" watermark=take#{w.take_hash} step#{w.step_hash} ({w.confidence:.2f})" if w.found else f" watermark=none ({w.reason})")
        if r.error:
            line += f" error={r.error}"
        if single or r.status != "ok":
            extra = [f for f in r.failures if f != "signingCredential.untrusted"]
            if extra:
                line += f" failures={','.join(extra)}"
            if single and r.actions:
                line += f" actions={','.join(r.actions)}"
            if single and r.signer:
                line += f" signer={r.signer}{' (untrusted)' if 'signingCredential.untrusted' in r.failures else ''}"
        console.print(line, highlight=False)
    counts: dict[str, int] = {}
    for r in reports:
        counts[r.status] = counts.get(r.status, 0) + 1
    console.print(f"{len(reports)} file(s): " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())), highlight=False)
    return 1 if bad else 0

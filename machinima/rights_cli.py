"""``machinima rights ...``: add and list rights records, audit a project, record a disclosure
decision, sign a delivery, make a test certificate chain.

    machinima rights add "Alice Doe" --id alice --photo alice-1.jpg --photo alice-2.jpg \\
        --document contracts/alice-release.pdf --granted-by "Alice Doe" \\
        --scope training --scope face_replacement --expires 2027-06-30
    machinima rights list [--production P]
    machinima rights audit TAKE|PROJECT [--watermarks] [--json]
    machinima rights disclosure off TAKE --reason "..."      # recorded: who, when, why
    machinima rights disclosure on TAKE
    machinima rights sign FILE --take ID --step ID           # sign a delivered MP4/PNG/JPEG
    machinima rights certs DIR                               # a production-style test chain
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from . import rights as R

console = Console(soft_wrap=True)  # one line per file and per finding, never wrapped
app = typer.Typer(help="Rights records (whose face may be used, for what, until when), audits, disclosure decisions, signing.",
                  no_args_is_help=True)
disclosure_app = typer.Typer(help="Disclosure is on for every output; turning it off is a decision recorded in the take.",
                             no_args_is_help=True)
app.add_typer(disclosure_app, name="disclosure")

StoreOpt = typer.Option(None, "--store", help="Rights store folder (default: [rights] store in machinima.toml, else <takes-root>/../rights).")


def _store(store: Optional[Path]) -> R.RightsStore:
    return R.RightsStore(store) if store else R.RightsStore()


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-").lower() or "record"


@app.command("add")
def add(
    subject: str = typer.Argument(..., help="Who or what: a person's name (a label), a dataset, faceset or footage id."),
    photo: list[Path] = typer.Option([], "--photo", help="A reference photo of the person's face (repeat; required for a person)."),
    document: Optional[Path] = typer.Option(None, help="The signed consent or release: its SHA-256 is stored, and its path as location."),
    granted_by: str = typer.Option(..., "--granted-by", help="Who granted the rights (the person, or their agent)."),
    scope: list[str] = typer.Option(..., "--scope", help=f"Consented use, repeat for several: {', '.join(R.SCOPES)}."),
    expires: str = typer.Option(..., help="Last valid day, YYYY-MM-DD ('none': no end date, said explicitly)."),
    kind: str = typer.Option("person", help=f"One of {', '.join(R.KINDS)}."),
    production: Optional[str] = typer.Option(None, help="Production (default: production in machinima.toml)."),
    valid_from: Optional[str] = typer.Option(None, help="First valid day, YYYY-MM-DD."),
    document_sha256: Optional[str] = typer.Option(None, help="SHA-256 of the signed document when it is not on this machine."),
    location: Optional[str] = typer.Option(None, help="Where the signed document is kept (default: --document's path)."),
    holder: str = typer.Option("", help="Who holds the rights (studio, agency)."),
    record_id: Optional[str] = typer.Option(None, "--id", help="Record id (default: the subject, slugged)."),
    references: list[str] = typer.Option([], "--references", help="Records this one draws on (a dataset's persons)."),
    notes: str = typer.Option("", help="Free text."),
    replace: bool = typer.Option(False, help="Supersede an existing record with the same id."),
    store: Optional[Path] = StoreOpt,
) -> None:
    """Add a rights record bound to the person's face (reference photos), signed with the production's key."""
    if production is None:
        from .config import load_config

        production = load_config().production
    if document is None and not document_sha256:
        raise R.RightsError("a rights record needs the signed consent document", hint="pass --document PATH (hashed) or --document-sha256 HEX --location WHERE")
    if kind == "person" and not photo:
        raise R.RightsError("a person's record needs reference photos of their face: the record is bound to the face, not the name",
                            hint="--photo FACE.jpg (repeat for several angles)")
    st = _store(store)
    rid = record_id or _slug(subject)
    if st.path_of(rid).exists() and not replace:
        raise R.RightsError(f"a rights record {rid!r} already exists at {st.path_of(rid)}",
                            hint=f"use --id {R.free_record_id(st, rid)} for a new record, or --replace to supersede this one")
    identity = R.reference_identity(photo) if photo else None
    sha = R.document_hash(document) if document is not None else str(document_sha256).lower()
    rec = R.RightsRecord(
        id=rid, kind=kind, subject=subject, production=production, scopes=tuple(scope),
        document_sha256=sha, document_location=location or (str(document.resolve()) if document else ""), holder=holder,
        valid_from=R._parse_date(valid_from, "--valid-from", "rights add"),
        expires=None if expires.strip().lower() == "none" else R._parse_date(expires, "--expires", "rights add"),
        references=tuple(references), notes=notes, granted_by=granted_by, identity=identity,
    )
    path = st.add(rec, replace=replace)
    n = len((identity or {}).get("photos", []))
    methods = ", ".join((identity or {}).get("embeddings", {}))
    console.print(f"added rights record [bold]{rec.id}[/] ({rec.kind} {rec.subject!r}, {production}, {', '.join(rec.scopes)}, "
                  f"until {rec.expires or 'no end date'}, granted by {granted_by}"
                  + (f"; bound to {n} reference photo(s) by {methods}" if n else "") + f"; signed) -> {path}", highlight=False)


@app.command("list")
def list_records(production: Optional[str] = typer.Option(None), store: Optional[Path] = StoreOpt) -> None:
    """List rights records with their status today (expired, unsigned or changed records clear nothing)."""
    st = _store(store)
    table = Table(title=f"rights records in {st.root}")
    for col in ("id", "kind", "subject (production)", "scopes", "expires", "face", "status"):
        table.add_column(col, overflow="fold")
    today = R.today()
    for r in st.records():
        if production and r.production != production:
            continue
        sig = st.signature_of(r)
        status = ("expired" if r.expires and today > r.expires else "not yet valid" if r.valid_from and today < r.valid_from
                  else f"clears nothing: {sig.state}" if not sig.ok else "valid")
        photos = len((r.identity or {}).get("photos", []))
        table.add_row(r.id, r.kind, f"{r.subject} ({r.production})", ", ".join(r.scopes), str(r.expires or "-"),
                      f"{photos} photo(s)" if photos else "-", status)
    console.print(table)


@app.command("certs")
def certs(
    out: Path = typer.Argument(..., help="Folder for root.pem, root.key, signer.pem, signer.key."),
    organization: str = typer.Option("machinima test production", help="Organization name in the certificates."),
    days: int = typer.Option(365, help="Validity of the signing certificate in days."),
    overwrite: bool = typer.Option(False, help="Replace an existing chain."),
) -> None:
    """Make a test chain (root CA + C2PA signing certificate) shaped like a production's."""
    from .provenance import make_test_chain

    chain = make_test_chain(out, organization=organization, days=days, overwrite=overwrite)
    console.print(f"test chain written to {out} (trusted only where its root.pem is a trust anchor). Add to machinima.toml:\n")
    console.print(chain.toml(), markup=False, highlight=False)


@app.command("sign")
def sign(
    file: Path = typer.Argument(..., help="A delivered PNG, JPEG or MP4 made from disclosed post steps."),
    take: str = typer.Option(..., help="Take id the file comes from."),
    step: str = typer.Option(..., help="Step id (e.g. the delivery or the last post step)."),
    kind: str = typer.Option("delivery", help="Step kind written into the manifest."),
    mark: bool = typer.Option(False, "--mark", help="Also watermark a picture's pixels (a contact sheet, a poster)."),
    out: Optional[Path] = typer.Option(None, help="Write the signed copy here (default: sign in place)."),
) -> None:
    """Sign a delivered file with the project's key; any manifest it had stays as its parent."""
    from .provenance import Disclosure, signing_for

    if not file.is_file():
        raise R.DisclosureError(f"{file} does not exist")
    s = signing_for(file)
    d = Disclosure(identity=s.identity, take_id=take, step_id=step, step_kind=kind, production=s.production, secret=s.secret,
                   signer_note=s.describe())
    if mark and file.suffix.lower() != ".mp4":
        from .fsutil import atomic_write_bytes
        from .imageseq import read_image

        dst = out or file
        atomic_write_bytes(dst, d.encode(read_image(file), dst.name, ext=file.suffix.lower()))
        path = dst
    else:
        path = d.sign_file(file, out)
    console.print(f"signed {path} ({s.describe()})", highlight=False)


@disclosure_app.command("off")
def disclosure_off(
    target: Path = typer.Argument(..., help="A take (id or folder), or a step's output folder outside any take."),
    reason: str = typer.Option(..., "--reason", help="Why these outputs are not disclosed (kept, with who and when)."),
    by: Optional[str] = typer.Option(None, "--by", help="Who decides (default: the user name)."),
) -> None:
    """Record that a take's post outputs are not disclosed; verify and audit report it."""
    _decide(target, False, reason, by)


@disclosure_app.command("on")
def disclosure_on(
    target: Path = typer.Argument(..., help="A take (id or folder), or a step's output folder."),
    reason: str = typer.Option("disclosure back on", "--reason"),
    by: Optional[str] = typer.Option(None, "--by"),
) -> None:
    """Turn disclosure back on (the earlier decision stays in the history)."""
    _decide(target, True, reason, by)


def _in_take(target: Path) -> Path:
    """A take id works where a take folder does (``TAKE`` or ``TAKE/post/STEP``); a path that
    exists is used as typed, and a typo gets the takes it is close to (machinima.takeref)."""
    from .cli import resolve_in_take

    return resolve_in_take(target)


def _decide(target: Path, disclose: bool, reason: str, by: Optional[str]) -> None:
    from .provenance import record_decision

    target = _in_take(target)
    d = record_decision(target, disclose, reason, by=by)
    console.print(f"disclosure {'ON' if disclose else 'OFF'} for {target}: by {d.by} at {d.at}: {d.reason} (signed: {d.path})", highlight=False)


@app.command("audit")
def audit_cmd(
    target: Path = typer.Argument(..., help="A take (id or folder), a takes root or a project folder."),
    watermarks: bool = typer.Option(False, "--watermarks", help="Also decode every frame's watermark (slower; videos always are)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    store: Optional[Path] = StoreOpt,
) -> None:
    """Every identity (record, scope, expiry), model, faceset, override and undisclosed output. Exit 1 when anything is outside its rights."""
    from .config import load_config
    from .rights.audit import audit

    target = _in_take(target)
    # a project folder brings its own machinima.toml (rights store, trust anchors)
    cfg = load_config(target) if (target / "machinima.toml").exists() else load_config()
    st = _store(store) if store else R.RightsStore(R.default_store_dir(cfg))
    rep = audit(target, store=st, watermarks=watermarks)
    if as_json:
        print(json.dumps(rep.to_doc(), indent=2, default=str))
    else:
        _print_audit(rep)
    if rep.bad:
        raise typer.Exit(1)


def _print_audit(rep) -> None:
    t = Table(title="identities")
    for col in ("record", "subject", "scopes", "expires", "granted by", "status now", "trained", "used in"):
        t.add_column(col)
    for rid, e in sorted(rep.identities.items()):
        t.add_row(rid, str(e.get("subject")), ", ".join(e.get("scopes") or []), str(e.get("expires") or "-"), str(e.get("granted_by") or "-"),
                  e["status"], ", ".join(e["trained"]), ", ".join(e["used_in"]))
    console.print(t)
    for m in rep.models:
        who = ", ".join(m["records"]) or ("OVERRIDE" if m["override"] else "none recorded")
        console.print(f"model {m['path']} ({m['kind']}): trained on {who}", highlight=False)
    for c in rep.collections:
        console.print(f"collection {c['path']}: {c['faces_checked']} faces checked, identities {c['identities'] or '-'}, "
                      f"{c['unknown']} unknown", highlight=False)
    s = Table(title="post steps")
    for col in ("take", "step", "kind", "files", "disclosed", "problems", "decision"):
        s.add_column(col)
    for st in rep.steps:
        dec = st.decision
        s.add_row(st.take or "-", st.step, st.kind, str(st.outputs), str(st.disclosed), str(len(st.problems)),
                  f"off by {dec['by']}: {dec['reason']}" if dec and not dec["disclose"] else "-")
    console.print(s)
    for d in rep.deliveries:
        console.print(f"delivery {d['path']}: {d['status']} ({d['reason']})", highlight=False)
    for inh in rep.inherited:
        console.print(f"inherited clearance {inh.get('where')}: faces put in by face-swap merge {inh.get('step_id')} "
                      f"({inh.get('from_step')}), source {', '.join(inh.get('source') or []) or '-'}, destination "
                      f"{', '.join(inh.get('destination') or []) or '-'} ({inh.get('scope')})", highlight=False)
    for ov in rep.overrides:
        console.print(f"[yellow]override[/] {ov.get('where')}: {ov.get('reason')} (by {ov.get('by') or '?'} at {ov.get('at')})", highlight=False)
    for p in rep.problems:
        console.print(f"[red]outside its rights:[/] {p}", highlight=False)
    console.print("audit: " + ("[red]problems found[/]" if rep.bad else "[green]everything within its rights[/]"))

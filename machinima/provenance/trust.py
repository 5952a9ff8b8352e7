"""Who signs a project's outputs, and whom ``verify`` trusts.

Signing: the production's certificate (``[rights] cert``/``key`` in the machinima.toml of the
project the output belongs to); without one, the project's own **local chain**
(``<project>/.machinima/local-chain/``: a root CA and a signing certificate made on first
need), so disclosure works from the first step of a fresh project, offline. The project of an
output is found from the output's own path (the nearest folder above it with a machinima.toml,
else the folder holding the takes root), never from the working directory alone: a step run
from another folder signs like one run inside the project.

Trust: ``verify`` trusts the anchors the production configured (``[rights] trust_anchors``)
and the project's local chain, and says which: "production anchors" or "local chain of
PROJECT (this project only)". Anything else is a stranger. ``[rights] crl`` names certificate
revocation lists (PEM or DER, issued by an anchor): a signer whose serial is listed is revoked.

Turning disclosure off is a decision recorded in the take (``machinima.provenance.decision``),
never a setting: ``[rights] disclose = false`` (or ``MACHINIMA_RIGHTS__DISCLOSE=false``) is
refused with the command to use instead.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ..config import CONFIG_FILE, Config, load_config
from ..fsutil import umask
from ..rights import DisclosureError
from .certs import SigningIdentity, _cfg_path, _read, identity_from_config, load_identity, make_test_chain

LOCAL_DIR = Path(".machinima") / "local-chain"


def find_project(path: str | Path) -> Path | None:
    """The nearest folder at or above ``path`` holding a machinima.toml."""
    p = Path(path).resolve()
    for folder in [p, *p.parents] if p.is_dir() else list(p.parents):
        if (folder / CONFIG_FILE).is_file():
            return folder
    return None


def project_of(path: str | Path) -> Path:
    """The project an output belongs to: a machinima.toml above it; else a folder above it that
    already holds a local chain; else, for ``<takes-root>/<take>/...``, the folder holding the
    takes root; else the folder the output sits in (a job outside any project)."""
    p = Path(path).resolve()
    found = find_project(p)
    if found is not None:
        return found
    chain = [p, *p.parents] if p.is_dir() else list(p.parents)
    for folder in chain:
        if (folder / LOCAL_DIR / "root.pem").is_file():
            return folder
    for folder in chain:
        if (folder / "take.json").is_file():
            return folder.parent.parent
    return p.parent


def check_disclose_setting(cfg: Config) -> None:
    """``disclose = false`` as a setting or variable is refused: the decision belongs in the take."""
    value = cfg.section("rights").get("disclose")
    if value is False or (isinstance(value, str) and value.strip().lower() in ("false", "0", "no", "off")):
        raise DisclosureError(
            f"disclosure cannot be turned off by a setting ([rights] disclose in {cfg.source} or MACHINIMA_RIGHTS__DISCLOSE)",
            hint="record the decision in the take instead: machinima rights disclosure off TAKE --reason '...' (who, when and why are kept)",
        )


def ensure_local_chain(project: str | Path) -> Path:
    """The project's local chain folder, created once (atomically: two processes racing get the same chain)."""
    folder = Path(project) / LOCAL_DIR
    if (folder / "signer.pem").is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".local-chain.", dir=folder.parent))
    os.chmod(tmp, 0o777 & ~umask())  # certificates readable by the team (keys stay 0600)
    try:
        # the organization names this chain (and tells two projects of the same name apart)
        org = f"machinima local chain {secrets.token_hex(3)} {Path(project).resolve().name}"[:50]  # CN "<org> root CA" <= 64
        make_test_chain(tmp, organization=org, days=3650)
        try:
            os.rename(tmp, folder)
        except OSError:
            if not (folder / "signer.pem").is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


@dataclass
class Signing:
    """With what an output is signed and marked."""

    identity: SigningIdentity
    secret: bytes  # the watermark's HMAC key
    production: str
    local: bool  # the project's local chain, not a production certificate
    project: Path | None

    def describe(self) -> str:
        if self.local:
            return f"local chain of {self.project} (offline; trusted by this project only)"
        return f"production certificate {self.identity.subject} ({self.identity.organization})"


def _configs(path: Path | None, cfg: Config | None) -> list[Config]:
    """The output's project config first, then the working directory's (or MACHINIMA_PROJECT's)."""
    out: list[Config] = []
    project = find_project(path) if path is not None else None
    if project is not None:
        out.append(load_config(project))
    here = cfg or load_config()
    if not out or here.project_dir != out[0].project_dir:
        out.append(here)
    for c in out:
        check_disclose_setting(c)
    return out


def _secret(cfg: Config, identity: SigningIdentity) -> bytes:
    wk = cfg.section("rights").get("watermark_key")
    if not wk:
        return identity.watermark_secret()
    raw = _read(_cfg_path(cfg, wk), "watermark key").strip()
    try:
        return bytes.fromhex(raw.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return raw


def signing_for(path: str | Path, *, cfg: Config | None = None, production: str | None = None) -> Signing:
    """Sign outputs under ``path`` with the production certificate of its project (or of the
    working directory's project), else with the project's local chain (made if needed)."""
    path = Path(path)
    configs = _configs(path, cfg)
    for c in configs:
        if c.source == "defaults":
            continue
        sec = c.section("rights")
        if sec.get("cert") or sec.get("key"):
            ident = identity_from_config(c)
            return Signing(ident, _secret(c, ident), production or c.production, False, c.project_dir)
    project = project_of(path)
    chain = ensure_local_chain(project)
    ident = load_identity(chain / "signer.pem", chain / "signer.key")
    prod = production or next((c.production for c in configs if c.source != "defaults"), configs[0].production)
    return Signing(ident, ident.watermark_secret(), prod, True, project)


@dataclass
class Anchor:
    name: str
    pem: bytes
    local: bool
    organizations: list[str] = field(default_factory=list)


@dataclass
class Revoked:
    serial: int
    issuer_organization: str
    date: str


@dataclass
class Trust:
    """The anchors, revocations and watermark secrets ``verify`` and ``audit`` use."""

    anchors: list[Anchor] = field(default_factory=list)
    revoked: list[Revoked] = field(default_factory=list)
    secrets: list[tuple[str, bytes]] = field(default_factory=list)  # (production, secret)
    problems: list[str] = field(default_factory=list)  # e.g. a configured key that cannot be read

    def pem(self) -> bytes:
        return b"".join(a.pem if a.pem.endswith(b"\n") else a.pem + b"\n" for a in self.anchors)

    def anchor_named(self, organization: str) -> Anchor | None:
        return next((a for a in self.anchors if organization and organization in a.organizations), None)

    def revocation(self, serial: int, issuer_organization: str) -> Revoked | None:
        return next((r for r in self.revoked if r.serial == serial and r.issuer_organization == issuer_organization), None)

    def add_anchor(self, anchor: Anchor) -> None:
        if all(a.pem != anchor.pem for a in self.anchors):
            self.anchors.append(anchor)

    def add_secret(self, production: str, secret: bytes) -> None:
        if (production, secret) not in self.secrets:
            self.secrets.append((production, secret))


def _organizations(pem: bytes) -> list[str]:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    out = []
    for c in x509.load_pem_x509_certificates(pem):
        out += [str(a.value) for a in c.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    return out


def _load_crls(cfg: Config, trust: Trust) -> None:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    value = cfg.section("rights").get("crl")
    for item in ([value] if isinstance(value, str) else list(value or [])):
        raw = _read(_cfg_path(cfg, item), "certificate revocation list")
        try:
            crl = x509.load_pem_x509_crl(raw) if raw.lstrip().startswith(b"-----") else x509.load_der_x509_crl(raw)
        except ValueError as exc:
            raise DisclosureError(f"{item} is not a certificate revocation list ({exc})") from None
        issuer = [str(a.value) for a in crl.issuer.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
        anchors = [c for a in trust.anchors for c in x509.load_pem_x509_certificates(a.pem)]
        if not any(crl.is_signature_valid(c.public_key()) for c in anchors if c.subject == crl.issuer):
            trust.problems.append(f"the revocation list {item} is not signed by a trust anchor: ignored")
            continue
        for r in crl:
            trust.revoked.append(Revoked(r.serial_number, issuer[0] if issuer else "", r.revocation_date_utc.date().isoformat()))


def trust_for(target: str | Path | None = None, *, cfg: Config | None = None) -> Trust:
    """Anchors (production, then the project's local chain), revocations and watermark secrets
    for files at ``target``, from its project's machinima.toml and the working directory's."""
    trust = Trust()
    configs = _configs(Path(target) if target is not None else None, cfg)
    for c in configs:
        sec = c.section("rights")
        if sec.get("trust_anchors"):
            path = _cfg_path(c, sec["trust_anchors"])
            pem = _read(path, "trust anchors")
            try:
                orgs = _organizations(pem)
            except ValueError as exc:
                raise DisclosureError(f"{path} is not a valid PEM certificate ({exc})") from None
            trust.add_anchor(Anchor(f"production anchors ({path})", pem, False, orgs))
        if sec.get("cert") and sec.get("key"):
            try:
                ident = identity_from_config(c)
                trust.add_secret(c.production, _secret(c, ident))
            except DisclosureError as exc:
                trust.problems.append(f"watermark payloads cannot be checked: {exc}")
    projects = [project_of(target)] if target is not None else []
    projects += [c.project_dir for c in configs if c.source != "defaults"]
    for project in dict.fromkeys(projects):
        chain = Path(project) / LOCAL_DIR
        if (chain / "root.pem").is_file():
            pem = (chain / "root.pem").read_bytes()
            trust.add_anchor(Anchor(f"local chain of {project} (this project only)", pem, True, _organizations(pem)))
            try:
                ident = load_identity(chain / "signer.pem", chain / "signer.key")
                for c in configs:
                    trust.add_secret(c.production, ident.watermark_secret())
            except DisclosureError as exc:
                trust.problems.append(f"the local chain's key cannot be read: {exc}")
    for c in configs:
        _load_crls(c, trust)
    return trust


def config_of(path: str | Path) -> Config:
    """The config of the project ``path`` belongs to (its machinima.toml), else the working directory's."""
    project = find_project(path)
    return load_config(project) if project is not None else load_config()


__all__ = ["Anchor", "Signing", "Trust", "check_disclose_setting", "config_of", "ensure_local_chain", "find_project",
           "project_of", "signing_for", "trust_for"]


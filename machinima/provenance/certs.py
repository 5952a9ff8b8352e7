"""Signing certificates: the production's chain and key, checked before anything is signed;
a locally generated test chain (``make_test_chain``) for tests and offline work."""

from __future__ import annotations

import datetime as _dt
import hashlib
import hmac
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..rights import DisclosureError

@dataclass
class TestChain:
    """Paths of a locally generated chain: a root CA and a C2PA signing certificate."""

    root_cert: Path
    root_key: Path
    cert: Path  # signing certificate followed by the root (the chain c2pa embeds)
    key: Path

    def toml(self) -> str:
        return f'[rights]\ncert = "{self.cert}"\nkey = "{self.key}"\ntrust_anchors = "{self.root_cert}"\n'


def make_test_chain(out_dir: str | Path, *, organization: str = "machinima test production", days: int = 365,
                    overwrite: bool = False) -> TestChain:
    """Generate a root CA (keyCertSign) and an ES256 signing certificate (digitalSignature, EKU
    emailProtection, subject/authority key identifiers: what C2PA checks) into ``out_dir``.

    For tests and demos: a reader trusts it only when given ``root.pem`` as a trust anchor.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    out = Path(out_dir)
    chain = TestChain(out / "root.pem", out / "root.key", out / "signer.pem", out / "signer.key")
    if chain.cert.exists() and not overwrite:
        raise DisclosureError(f"a certificate already exists at {chain.cert}", hint="pass --overwrite to replace it, or use it as it is")
    out.mkdir(parents=True, exist_ok=True)
    now = _dt.datetime.now(_dt.timezone.utc)
    root_key = ec.generate_private_key(ec.SECP256R1())
    key = ec.generate_private_key(ec.SECP256R1())

    def name(cn: str):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn), x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization)])

    def usage(**on: bool):
        flags = dict.fromkeys(("digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
                               "key_agreement", "key_cert_sign", "crl_sign", "encipher_only", "decipher_only"), False)
        flags.update(on)
        return x509.KeyUsage(**flags)

    root = (x509.CertificateBuilder().subject_name(name(f"{organization} root CA")).issuer_name(name(f"{organization} root CA"))
            .public_key(root_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - _dt.timedelta(days=1)).not_valid_after(now + _dt.timedelta(days=days * 10))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(usage(key_cert_sign=True, crl_sign=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False)
            .sign(root_key, hashes.SHA256()))
    leaf = (x509.CertificateBuilder().subject_name(name(f"{organization} signer")).issuer_name(root.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - _dt.timedelta(days=1)).not_valid_after(now + _dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(usage(digital_signature=True), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False)
            .sign(root_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    pkcs8 = serialization.PrivateFormat.PKCS8
    from ..fsutil import atomic_write_bytes

    atomic_write_bytes(chain.root_cert, root.public_bytes(pem))
    atomic_write_bytes(chain.root_key, root_key.private_bytes(pem, pkcs8, serialization.NoEncryption()), private=True)
    atomic_write_bytes(chain.cert, leaf.public_bytes(pem) + root.public_bytes(pem))
    atomic_write_bytes(chain.key, key.private_bytes(pem, pkcs8, serialization.NoEncryption()), private=True)
    return chain


@dataclass
class SigningIdentity:
    """A checked certificate chain and its private key, ready for c2pa."""

    chain_pem: bytes
    key_pem: bytes
    alg: str
    subject: str
    organization: str
    not_after: str
    cert_path: str = ""
    trust_anchors_pem: bytes | None = None
    _signer: Any = field(default=None, repr=False)

    def signer(self):
        if self._signer is None:
            import c2pa

            info = c2pa.C2paSignerInfo(getattr(c2pa.C2paSigningAlg, self.alg), self.chain_pem, self.key_pem, None)
            try:
                self._signer = c2pa.Signer.from_info(info)
            except c2pa.C2paError as exc:
                raise DisclosureError(f"c2pa refused the signing certificate {self.cert_path}: {exc}") from None
        return self._signer

    def __getstate__(self) -> dict[str, Any]:  # picklable for Ray tasks: the c2pa signer is rebuilt there
        state = dict(self.__dict__)
        state["_signer"] = None
        return state

    def summary(self) -> dict[str, Any]:
        return {"subject": self.subject, "organization": self.organization, "alg": self.alg, "not_after": self.not_after,
                "fingerprint": self.fingerprint()}

    def fingerprint(self) -> str:
        """SHA-256 of the signing certificate (DER), 16 hex digits: which key signed."""
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization

        leaf = x509.load_pem_x509_certificates(self.chain_pem)[0]
        return hashlib.sha256(leaf.public_bytes(serialization.Encoding.DER)).hexdigest()[:16]

    def watermark_secret(self) -> bytes:
        """The watermark's HMAC key, derived from the private signing key: whoever can sign for
        the production can mark for it, and nobody else (a ``[rights] watermark_key`` file
        replaces it, e.g. to keep marks checkable across a certificate renewal)."""
        return hmac.new(b"machinima watermark secret v2", self.key_pem, hashlib.sha256).digest()


def _read(path: str | Path, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise DisclosureError(f"cannot read the {what} {path}: {exc.strerror or exc}",
                              hint="check [rights] in machinima.toml, or make a test chain with `machinima rights certs DIR`") from None


def load_identity(cert: str | Path, key: str | Path, *, trust_anchors: str | Path | None = None,
                  password: str | None = None, now: _dt.datetime | None = None) -> SigningIdentity:
    """Load and check a signing certificate (PEM chain, leaf first) and its private key.

    Refuses, with a message naming the file: unreadable or corrupt PEM, a key that does not
    belong to the certificate, a certificate outside its validity dates, one without the
    digitalSignature key usage or without an extended key usage, a CA certificate as signer.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
    from cryptography.x509.oid import NameOID

    chain_pem = _read(cert, "signing certificate")
    key_raw = _read(key, "private key")
    try:
        certs = x509.load_pem_x509_certificates(chain_pem)
    except ValueError as exc:
        raise DisclosureError(f"{cert} is not a valid PEM certificate chain ({exc})",
                              hint="the file is damaged or not a certificate; re-export it, or run `machinima rights certs DIR` for a test chain") from None
    leaf = certs[0]
    try:
        pkey = serialization.load_pem_private_key(key_raw, password=password.encode() if password else None)
    except TypeError:
        raise DisclosureError(f"the private key {key} is encrypted", hint="set MACHINIMA_RIGHTS__KEY_PASSWORD") from None
    except ValueError as exc:
        raise DisclosureError(f"{key} is not a valid PEM private key ({exc})", hint="the file is damaged or the password is wrong") from None
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    if pkey.public_key().public_bytes(der, spki) != leaf.public_key().public_bytes(der, spki):
        raise DisclosureError(f"the private key {key} does not belong to the certificate {cert}",
                              hint="pair each certificate with the key it was issued for; nothing was signed")
    if isinstance(pkey, ec.EllipticCurvePrivateKey):
        alg = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}.get(pkey.curve.name)
    elif isinstance(pkey, ed25519.Ed25519PrivateKey):
        alg = "ED25519"
    elif isinstance(pkey, rsa.RSAPrivateKey):
        alg = "PS256"
    else:
        alg = None
    if alg is None:
        raise DisclosureError(f"{key}: unsupported key type for C2PA", hint="use an EC P-256/P-384/P-521, Ed25519 or RSA key")
    now = now or _dt.datetime.now(_dt.timezone.utc)
    if now < leaf.not_valid_before_utc or now > leaf.not_valid_after_utc:
        raise DisclosureError(f"the certificate {cert} is valid from {leaf.not_valid_before_utc:%Y-%m-%d} to {leaf.not_valid_after_utc:%Y-%m-%d}, not now",
                              hint="renew the production certificate")
    try:
        bc = leaf.extensions.get_extension_for_class(x509.BasicConstraints).value
        if bc.ca:
            raise DisclosureError(f"{cert}: the first certificate is a CA; C2PA needs an end-entity signing certificate first in the chain")
    except x509.ExtensionNotFound:
        pass
    try:
        ku = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
        if not ku.digital_signature:
            raise DisclosureError(f"{cert}: the certificate lacks the digitalSignature key usage that C2PA requires")
    except x509.ExtensionNotFound:
        raise DisclosureError(f"{cert}: the certificate has no key usage extension (C2PA requires digitalSignature)") from None
    try:
        leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    except x509.ExtensionNotFound:
        raise DisclosureError(f"{cert}: the certificate has no extended key usage (C2PA accepts e.g. emailProtection or documentSigning)") from None

    def attr(oid) -> str:
        vals = leaf.subject.get_attributes_for_oid(oid)
        return str(vals[0].value) if vals else ""

    anchors = _read(trust_anchors, "trust anchors") if trust_anchors else None
    if anchors is not None:
        try:
            x509.load_pem_x509_certificates(anchors)
        except ValueError as exc:
            raise DisclosureError(f"{trust_anchors} is not a valid PEM certificate ({exc})") from None
    key_pem = pkey.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return SigningIdentity(
        chain_pem=b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs), key_pem=key_pem, alg=alg,
        subject=attr(NameOID.COMMON_NAME), organization=attr(NameOID.ORGANIZATION_NAME),
        not_after=leaf.not_valid_after_utc.date().isoformat(), cert_path=str(cert), trust_anchors_pem=anchors,
    )


def _cfg_path(cfg: Any, value: Any) -> Path:
    p = Path(str(value)).expanduser()
    return p if p.is_absolute() else cfg.project_dir / p


def identity_from_config(cfg: Any = None) -> SigningIdentity:
    """The production's signing identity from ``[rights] cert``, ``key``, ``trust_anchors``."""
    if cfg is None:
        from ..config import load_config

        cfg = load_config()
    sec = cfg.section("rights")
    if not sec.get("cert") or not sec.get("key"):
        raise DisclosureError(
            "no signing certificate configured",
            hint="set cert and key under [rights] in machinima.toml (the production certificate), or make a test chain with `machinima rights certs DIR`",
        )
    anchors = sec.get("trust_anchors")
    return load_identity(_cfg_path(cfg, sec["cert"]), _cfg_path(cfg, sec["key"]),
                         trust_anchors=_cfg_path(cfg, anchors) if anchors else None,
                         password=str(sec["key_password"]) if sec.get("key_password") else None)


def trust_anchors_from_config(cfg: Any = None) -> bytes | None:
    if cfg is None:
        from ..config import load_config

        cfg = load_config()
    anchors = cfg.section("rights").get("trust_anchors")
    return _read(_cfg_path(cfg, anchors), "trust anchors") if anchors else None

"""Signed JSON documents (rights records, disclosure decisions): a detached signature over the
canonical JSON, made with the production's signing key, checked against the trust anchors.

    doc = sign_doc({"schema": ..., ...}, identity)     # adds "signature": {alg, chain, value}
    state = check_doc(doc, trust)                      # DocCheck(ok, state, signer, anchor)

Editing any field of a signed document (a scope, an expiry, an embedding) breaks the signature;
a document signed by a stranger's key chains to no anchor. Either way it is not relied on.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from .certs import SigningIdentity
from .trust import Anchor, Trust

SIG = "signature"


def canonical(doc: dict[str, Any]) -> bytes:
    """The bytes that are signed: the document without its signature, keys sorted, no spaces."""
    body = {k: v for k, v in doc.items() if k != SIG}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _sign_raw(key_pem: bytes, data: bytes) -> bytes:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

    key = serialization.load_pem_private_key(key_pem, password=None)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(data, ec.ECDSA(hashes.SHA256()))
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(data)
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(data, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32), hashes.SHA256())
    raise TypeError(f"unsupported key type {type(key).__name__}")


def _verify_raw(cert: Any, sig: bytes, data: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

    pub = cert.public_key()
    try:
        if isinstance(pub, ec.EllipticCurvePublicKey):
            pub.verify(sig, data, ec.ECDSA(hashes.SHA256()))
        elif isinstance(pub, ed25519.Ed25519PublicKey):
            pub.verify(sig, data)
        elif isinstance(pub, rsa.RSAPublicKey):
            pub.verify(sig, data, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32), hashes.SHA256())
        else:
            return False
    except InvalidSignature:
        return False
    return True


def sign_doc(doc: dict[str, Any], identity: SigningIdentity) -> dict[str, Any]:
    """A copy of ``doc`` with a signature by ``identity`` (its certificate chain travels along)."""
    out = {k: v for k, v in doc.items() if k != SIG}
    value = _sign_raw(identity.key_pem, canonical(out))
    out[SIG] = {"alg": identity.alg, "chain": identity.chain_pem.decode("ascii"), "value": base64.b64encode(value).decode("ascii"),
                "signer": identity.subject, "organization": identity.organization}
    return out


@dataclass
class DocCheck:
    ok: bool
    state: str  # 'trusted' | 'trusted-local' | 'unsigned' | 'bad-signature' | 'untrusted' | 'expired' | 'revoked'
    signer: str = ""
    anchor: str = ""

    def reason(self) -> str:
        return {"unsigned": "is not signed", "bad-signature": "was changed after it was signed (signature does not match)",
                "untrusted": f"is signed by {self.signer or 'an unknown key'}, which no trust anchor issued",
                "expired": f"is signed with a certificate that is no longer valid ({self.signer})",
                "revoked": f"is signed with a revoked certificate ({self.signer})"}.get(self.state, "")


def chain_anchor(certs: list[Any], anchors: list[Anchor]) -> Anchor | None:
    """The anchor that issued this chain (leaf first), or None. Each certificate must be
    issued by the next; the last by an anchor (or be one)."""
    from cryptography import x509

    for a in anchors:
        roots = x509.load_pem_x509_certificates(a.pem)
        for i in range(len(certs)):
            tail = certs[i]
            if not all(_issued_by(certs[j], certs[j + 1]) for j in range(i)):
                break
            if any(tail == r or _issued_by(tail, r) for r in roots):
                return a
    return None


def _issued_by(cert: Any, issuer: Any) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except Exception:  # noqa: BLE001 - InvalidSignature, a wrong key type...: not issued by it
        return False
    return True


def check_doc(doc: dict[str, Any], trust: Trust, *, now: Any = None) -> DocCheck:
    """Is ``doc`` signed, unchanged, and signed under one of ``trust``'s anchors?"""
    import datetime as _dt

    from cryptography import x509

    sig = doc.get(SIG)
    if not isinstance(sig, dict) or not sig.get("value") or not sig.get("chain"):
        return DocCheck(False, "unsigned")
    try:
        certs = x509.load_pem_x509_certificates(str(sig["chain"]).encode("ascii"))
        value = base64.b64decode(str(sig["value"]), validate=True)
    except (ValueError, UnicodeEncodeError):
        return DocCheck(False, "bad-signature", str(sig.get("signer", "")))
    who = f"{sig.get('signer', '?')} ({sig.get('organization', '?')})"
    if not _verify_raw(certs[0], value, canonical(doc)):
        return DocCheck(False, "bad-signature", who)
    anchor = chain_anchor(certs, trust.anchors)
    if anchor is None:
        return DocCheck(False, "untrusted", who)
    now = now or _dt.datetime.now(_dt.timezone.utc)
    leaf = certs[0]
    if trust.revocation(leaf.serial_number, _org(leaf.issuer)):
        return DocCheck(False, "revoked", who)
    if now > leaf.not_valid_after_utc:
        return DocCheck(False, "expired", who)
    return DocCheck(True, "trusted-local" if anchor.local else "trusted", who, anchor.name)


def _org(name: Any) -> str:
    from cryptography.x509.oid import NameOID

    vals = name.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    return str(vals[0].value) if vals else ""

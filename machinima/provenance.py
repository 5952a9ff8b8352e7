"""Disclosure: every synthetic output says what it is, verifiably.

Three marks, from the most to the least fragile:

1. A **C2PA manifest** (Content Credentials, ``c2pa-python``) embedded in each PNG/JPEG frame
   and each delivered MP4: the actions taken (``c2pa.created`` with the IPTC digital source
   type ``compositeWithTrainedAlgorithmicMedia`` or ``trainedAlgorithmicMedia``, then one
   ``c2pa.edited`` per post step), the take and its source passes as ingredients, and an
   ``org.machinima.provenance`` assertion with take id, step id, params hash, the rights
   records relied on and any override. Signed with the production's certificate
   (``[rights] cert``/``key`` in machinima.toml) or a local test chain (``make_test_chain``).
   One changed pixel invalidates it.
2. An **invisible watermark** in the pixels carrying a 32-bit hash of the take id and a
   16-bit hash of the step id (+ CRC-16): the 64 bits are convolutionally coded (K=7, rate
   1/3: 210 coded bits), and each coded bit is spread over ~25-30 coefficients by
   quantization-index modulation of five low DCT coefficients of 8x8 blocks on a luma grid of
   at most 48 blocks across (each block spans ~40 px at 1080p); decoding sums soft decisions
   (over frames too) and runs a soft Viterbi decoder. PSNR about 43.7 dB. It survives JPEG
   q75/q50, H.264 re-encoding (crf 23-28 at every size, up to crf 35 at 720p and above) and
   rescaling that keeps the aspect ratio; it survives when the manifest is stripped.
3. An optional visible **"AI-modified" label** burned into a corner.

Per-frame signing: post steps write PNG frames; each frame gets its own manifest (about 7 ms
at 1080p without a thumbnail), so any single frame pulled from a delivery still verifies.
Videos are signed once per file after encoding (``sign_file``).

Errors are ``machinima.rights.DisclosureError``. c2pa, cv2 and cryptography are imported
lazily inside functions.
"""

from __future__ import annotations

import binascii
import datetime as _dt
import hashlib
import io
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from .rights import DisclosureError

IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"
SOURCE_TYPES = ("trainedAlgorithmicMedia", "compositeWithTrainedAlgorithmicMedia", "algorithmicMedia",
                "compositeSynthetic", "digitalCreation")
ASSERTION = "org.machinima.provenance"
MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".mp4": "video/mp4", ".mov": "video/quicktime"}
VIDEO_EXTS = (".mp4", ".mov")


def mime_of(path: str | Path) -> str | None:
    return MIME.get(Path(path).suffix.lower())


# =============================================================================================
# Certificates
# =============================================================================================

@dataclass
class TestChain:
    """Paths of a locally generated chain: a root CA and a C2PA signing certificate."""

    root_cert: Path
    root_key: Path
    cert: Path  # signing certificate followed by the root (the chain c2pa embeds)
    key: Path

    def toml(self) -> str:
        return (f'[rights]\ncert = "{self.cert}"\nkey = "{self.key}"\ntrust_anchors = "{self.root_cert}"\ndisclose = true\n')


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
    from .fsutil import atomic_write_bytes

    atomic_write_bytes(chain.root_cert, root.public_bytes(pem))
    atomic_write_bytes(chain.root_key, root_key.private_bytes(pem, pkcs8, serialization.NoEncryption()))
    atomic_write_bytes(chain.cert, leaf.public_bytes(pem) + root.public_bytes(pem))
    atomic_write_bytes(chain.key, key.private_bytes(pem, pkcs8, serialization.NoEncryption()))
    for p in (chain.root_key, chain.key):
        os.chmod(p, 0o600)
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
        return {"subject": self.subject, "organization": self.organization, "alg": self.alg, "not_after": self.not_after}


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
        from .config import load_config

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
        from .config import load_config

        cfg = load_config()
    anchors = cfg.section("rights").get("trust_anchors")
    return _read(_cfg_path(cfg, anchors), "trust anchors") if anchors else None


# =============================================================================================
# Watermark
# =============================================================================================

WM_SCHEME = "machinima-qim-cc-v1"
WM_BITS = 64  # payload: take hash 32 + step hash 16 + CRC-16
_CC_K = 7  # convolutional code, constraint length 7, rate 1/3 (generators 133, 171, 165 octal)
_CC_GENS = (0o133, 0o171, 0o165)
WM_CODED = (WM_BITS + _CC_K - 1) * len(_CC_GENS)  # 210 coded bits, spread over the chips
WM_STRENGTH = 20.0  # QIM step on orthonormal 8x8 DCT coefficients of the luma grid (PSNR ~43.7 dB)
WM_MIN_SIDE = 128
WM_FOUND_CONFIDENCE = 0.12  # codeword agreement (plus a valid CRC-16); unmarked 1080p frames measure about 0.07
_WM_UNMARKED = 0.44  # unmarked agreement is about 0.44 / sqrt(coefficients per coded bit): small frames need more
_WM_COEFS = ((0, 1), (1, 0), (1, 1), (0, 2), (2, 0))
_WM_KEY = b"machinima-watermark-v1"
_layouts: dict[tuple[int, int], tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = {}
_basis: np.ndarray | None = None


def _wm_basis() -> np.ndarray:
    global _basis
    if _basis is None:
        d = np.zeros((8, 8))
        for k in range(8):
            d[k] = (np.sqrt(1 / 8) if k == 0 else np.sqrt(2 / 8)) * np.cos(np.pi * (2 * np.arange(8) + 1) * k / 16)
        _basis = np.stack([np.outer(d[u], d[v]) for u, v in _WM_COEFS]).astype(np.float32)
    return _basis


def _wm_grid(h: int, w: int) -> tuple[int, int]:
    bw = max(4, min(48, w // 16))
    bh = max(4, int(round(bw * h / w)))
    return bh, bw


def _wm_layout(bh: int, bw: int):
    key = (bh, bw)
    if key not in _layouts:
        n = bh * bw * len(_WM_COEFS)
        seed = int.from_bytes(hashlib.sha256(_WM_KEY + f"{bh}x{bw}".encode()).digest()[:8], "little")
        rng = np.random.default_rng(seed)
        bit_of = rng.permutation(n) % WM_CODED
        dither = rng.random(n)
        flip = rng.integers(0, 2, n)
        counts = np.bincount(bit_of, minlength=WM_CODED)
        _layouts[key] = (bit_of, dither, flip, counts)
    return _layouts[key]


def _wm_coeffs(y_low: np.ndarray, bh: int, bw: int) -> np.ndarray:
    blocks = y_low.reshape(bh, 8, bw, 8)
    return np.einsum("ixjy,cxy->ijc", blocks, _wm_basis(), optimize=True).reshape(-1)


def _wm_synth(dc: np.ndarray, bh: int, bw: int) -> np.ndarray:
    return np.einsum("ijc,cxy->ixjy", dc.reshape(bh, bw, -1), _wm_basis(), optimize=True).reshape(bh * 8, bw * 8).astype(np.float32)


class _Banded:
    """A square matrix that is zero outside a few diagonals: ``M @ x`` along an axis as shifted adds."""

    def __init__(self, m: np.ndarray) -> None:
        n = m.shape[0]
        rows, cols = np.nonzero(np.abs(m) > 1e-7)
        k = int(np.max(np.abs(cols - rows))) if len(rows) else 0
        self.diags = {}
        for off in range(-k, k + 1):
            d = np.zeros(n, np.float32)
            i = np.arange(max(0, -off), min(n, n - off))
            d[i] = m[i, i + off]
            self.diags[off] = d

    def apply(self, x: np.ndarray, axis: int) -> np.ndarray:
        """(M @ x) for axis 0, (x @ M.T) for axis 1."""
        out = np.zeros_like(x)
        n = x.shape[axis]
        for off, d in self.diags.items():
            lo, hi = max(0, -off), min(n, n - off)
            if axis == 0:
                out[lo:hi] += d[lo:hi, None] * x[lo + off:hi + off]
            else:
                out[:, lo:hi] += d[None, lo:hi] * x[:, lo + off:hi + off]
        return out


_roundtrips: dict[tuple[int, int, int, int], tuple[_Banded, _Banded]] = {}


def _wm_roundtrip(h: int, w: int, bh: int, bw: int) -> tuple[_Banded, _Banded]:
    """(My, Mx): area-down(linear-up(x)) == My @ x @ Mx.T for a low-res grid ``x`` (both banded)."""
    import cv2

    key = (h, w, bh, bw)
    if key not in _roundtrips:
        def axis(n_low: int, n_full: int) -> _Banded:
            eye = np.eye(n_low, dtype=np.float32)
            up = cv2.resize(eye, (n_low, n_full), interpolation=cv2.INTER_LINEAR)  # columns: basis vectors
            return _Banded(cv2.resize(up, (n_low, n_low), interpolation=cv2.INTER_AREA))

        _roundtrips[key] = (axis(bh * 8, h), axis(bw * 8, w))
    return _roundtrips[key]


def _luma_low(img: np.ndarray, bh: int, bw: int) -> np.ndarray:
    import cv2

    img = np.asarray(img)
    if img.ndim == 3 and img.shape[2] == 4:
        img = img[..., :3]
    y = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2GRAY) if img.ndim == 3 else img
    return cv2.resize(y, (bw * 8, bh * 8), interpolation=cv2.INTER_AREA).astype(np.float32)


def watermark_ids(take_id: str, step_id: str) -> tuple[str, str]:
    """The hashes the watermark carries: 8 hex digits for the take, 4 for the step."""
    return (hashlib.sha256(take_id.encode()).hexdigest()[:8], hashlib.sha256(step_id.encode()).hexdigest()[:4])


def payload_bits(take_id: str, step_id: str) -> np.ndarray:
    t, s = watermark_ids(take_id, step_id)
    data = bytes.fromhex(t + s)
    crc = binascii.crc_hqx(data, 0xFFFF).to_bytes(2, "big")
    return np.unpackbits(np.frombuffer(data + crc, np.uint8)).astype(np.int64)


_trellis: tuple[np.ndarray, np.ndarray] | None = None


def _cc_trellis() -> tuple[np.ndarray, np.ndarray]:
    """(next_state[state, bit], outputs[state, bit, gen]) of the K=7 rate-1/3 code."""
    global _trellis
    if _trellis is None:
        n_states = 1 << (_CC_K - 1)
        nxt = np.zeros((n_states, 2), np.int64)
        out = np.zeros((n_states, 2, len(_CC_GENS)), np.int64)
        for st in range(n_states):
            for b in (0, 1):
                reg = (b << (_CC_K - 1)) | st  # newest bit at the top
                nxt[st, b] = reg >> 1
                for g, gen in enumerate(_CC_GENS):
                    out[st, b, g] = bin(reg & gen).count("1") & 1
        _trellis = (nxt, out)
    return _trellis


def cc_encode(bits: np.ndarray) -> np.ndarray:
    """Convolutionally encode ``bits`` (+ K-1 zero tail bits): 3 coded bits per input bit."""
    nxt, out = _cc_trellis()
    st, coded = 0, []
    for b in list(np.asarray(bits, np.int64)) + [0] * (_CC_K - 1):
        coded.extend(out[st, b])
        st = nxt[st, b]
    return np.asarray(coded, np.int64)


def cc_decode(soft: np.ndarray) -> np.ndarray:
    """Soft Viterbi: ``soft`` (+1 = coded 0, -1 = coded 1) -> the 64 payload bits."""
    nxt, out = _cc_trellis()
    n_states = nxt.shape[0]
    steps = len(soft) // len(_CC_GENS)
    sig = 1 - 2 * out  # (S, 2, G) in {+1, -1}
    metric = np.full(n_states, -np.inf)
    metric[0] = 0.0
    back = np.zeros((steps, n_states), np.int64)  # predecessor * 2 + bit
    src = np.repeat(np.arange(n_states), 2)
    bit = np.tile([0, 1], n_states)
    dst = nxt[src, bit]
    for t in range(steps):
        s = np.asarray(soft[t * len(_CC_GENS):(t + 1) * len(_CC_GENS)])
        cand = metric[src] + (sig[src, bit] * s).sum(axis=1)
        if t >= steps - (_CC_K - 1):  # tail: only zero inputs
            cand = np.where(bit == 0, cand, -np.inf)
        order = np.lexsort((-cand, dst))  # best candidate first within each destination
        first = np.r_[True, dst[order][1:] != dst[order][:-1]]
        win = order[first]
        new = np.full(n_states, -np.inf)
        new[dst[win]] = cand[win]
        back[t, dst[win]] = src[win] * 2 + bit[win]
        metric = new
    st, bits = 0, []
    for t in range(steps - 1, -1, -1):
        code = back[t, st]
        bits.append(code & 1)
        st = code >> 1
    return np.asarray(bits[::-1][:WM_BITS], np.uint8)


def can_watermark(img: np.ndarray) -> bool:
    a = np.asarray(img)
    return a.dtype == np.uint8 and a.ndim == 3 and a.shape[2] in (3, 4) and min(a.shape[:2]) >= WM_MIN_SIDE


def embed_watermark(img: np.ndarray, take_id: str, step_id: str, *, strength: float = WM_STRENGTH) -> np.ndarray:
    """Return a copy of the uint8 RGB(A) ``img`` carrying the take/step watermark."""
    import cv2

    img = np.asarray(img)
    if not can_watermark(img):
        raise DisclosureError(f"cannot watermark a {img.shape} {img.dtype} image (needs uint8 RGB, at least {WM_MIN_SIDE} px a side)")
    alpha = img[..., 3:] if img.shape[2] == 4 else None
    rgb = np.ascontiguousarray(img[..., :3])
    h, w = rgb.shape[:2]
    bh, bw = _wm_grid(h, w)
    bit_of, dither, flip, _ = _wm_layout(bh, bw)
    chips = cc_encode(payload_bits(take_id, step_id))[bit_of] ^ flip
    offset = (dither + chips / 2.0) * strength
    y = _luma_low(rgb, bh, bw)
    c = _wm_coeffs(y, bh, bw)
    target = np.round((c - offset) / strength) * strength + offset
    d1 = np.clip(_wm_synth(target - c, bh, bw), -30, 30)
    # second pass, in the low-res domain: correct what linear up + area down will lose
    # (that round trip is separable and linear: two small cached matrices, no full-size work)
    my, mx = _wm_roundtrip(h, w, bh, bw)
    c2 = _wm_coeffs(y + mx.apply(my.apply(d1, 0), 1), bh, bw)
    dlow = np.clip(d1 + _wm_synth(target - c2, bh, bw), -60, 60)
    # one upsample of the delta, stored as uint8 (2*d + 128: half-level precision), then the
    # same delta on R, G and B with one saturating weighted add
    low8 = cv2.convertScaleAbs(dlow, alpha=2.0, beta=128.0)
    full8 = cv2.resize(low8, (w, h), interpolation=cv2.INTER_LINEAR)
    out = cv2.addWeighted(rgb, 1.0, cv2.cvtColor(full8, cv2.COLOR_GRAY2RGB), 0.5, -64.0)
    return np.concatenate([out, alpha], axis=2) if alpha is not None else out


@dataclass
class WatermarkResult:
    found: bool
    take_hash: str = ""
    step_hash: str = ""
    confidence: float = 0.0  # agreement of the soft values with the decoded codeword, 1 = clean
    crc_ok: bool = False
    frames: int = 0
    reason: str = ""
    bits: np.ndarray | None = field(default=None, repr=False)
    soft: np.ndarray | None = field(default=None, repr=False)

    def matches(self, take_id: str, step_id: str) -> bool:
        return self.found and (self.take_hash, self.step_hash) == watermark_ids(take_id, step_id)

    def to_doc(self) -> dict[str, Any]:
        return {"found": self.found, "take_hash": self.take_hash, "step_hash": self.step_hash,
                "confidence": round(self.confidence, 3), "crc_ok": self.crc_ok, "frames": self.frames, "reason": self.reason}


class _WMAccumulator:
    def __init__(self) -> None:
        self.acc = np.zeros(WM_CODED)
        self.cnt = np.zeros(WM_CODED)
        self.frames = 0
        self.skipped = 0
        self.per_coded = np.inf  # coefficients per coded bit in the smallest frame

    def add(self, img: np.ndarray, strength: float = WM_STRENGTH) -> None:
        img = np.asarray(img)
        if img.dtype != np.uint8 or min(img.shape[:2]) < WM_MIN_SIDE:
            self.skipped += 1
            return
        h, w = img.shape[:2]
        bh, bw = _wm_grid(h, w)
        bit_of, dither, flip, counts = _wm_layout(bh, bw)
        c = _wm_coeffs(_luma_low(img, bh, bw), bh, bw)
        soft = np.cos(2 * np.pi * ((c / strength - dither) % 1.0))
        soft = np.where(flip == 1, -soft, soft)  # +1 -> bit 0, -1 -> bit 1
        self.acc += np.bincount(bit_of, weights=soft, minlength=WM_CODED)
        self.cnt += counts
        self.frames += 1
        self.per_coded = min(self.per_coded, len(bit_of) / WM_CODED)

    def result(self) -> WatermarkResult:
        if self.frames == 0:
            return WatermarkResult(False, reason=f"image too small or not 8-bit (needs {WM_MIN_SIDE} px a side)")
        s = self.acc / np.maximum(self.cnt, 1)  # soft coded bits: +1 = 0, -1 = 1
        bits = cc_decode(s)
        raw = np.packbits(bits).tobytes()
        crc_ok = binascii.crc_hqx(raw[:6], 0xFFFF).to_bytes(2, "big") == raw[6:8]
        # confidence: how well the soft values agree with the decoded codeword (1 = clean)
        conf = float(np.mean(s * (1 - 2 * cc_encode(bits))))
        threshold = max(WM_FOUND_CONFIDENCE, float(1.5 * _WM_UNMARKED / np.sqrt(self.per_coded)))
        found = bool(crc_ok and conf >= threshold)
        reason = "" if found else ("no watermark (checksum fails)" if not crc_ok else f"too weak (confidence {conf:.2f})")
        return WatermarkResult(found, raw[:4].hex() if found else "", raw[4:6].hex() if found else "", conf, crc_ok,
                               self.frames, reason, bits, s)


def decode_watermark(images: np.ndarray | Iterable[np.ndarray], *, strength: float = WM_STRENGTH) -> WatermarkResult:
    """Decode the watermark from one image or from several frames of the same step (soft sum)."""
    acc = _WMAccumulator()
    if isinstance(images, np.ndarray) and images.ndim in (2, 3) and images.dtype == np.uint8 and (images.ndim == 2 or images.shape[2] in (3, 4)):
        images = [images]
    for im in images:
        acc.add(im, strength)
    return acc.result()


def burn_label(img: np.ndarray, text: str = "AI-modified") -> np.ndarray:
    """A visible label in the lower right corner (white on a dark box), scaled to the frame."""
    import cv2

    out = np.ascontiguousarray(np.array(img, copy=True))
    h, w = out.shape[:2]
    scale = max(0.4, min(w, h) / 900)
    thick = max(1, int(round(scale * 2)))
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    pad = int(8 * scale) + 2
    x0, y0 = max(0, w - tw - 3 * pad), max(0, h - th - base - 3 * pad)
    x1, y1 = min(w, x0 + tw + 2 * pad), min(h, y0 + th + base + 2 * pad)
    roi = out[y0:y1, x0:x1, :3]
    out[y0:y1, x0:x1, :3] = (roi.astype(np.float32) * 0.35).astype(np.uint8)
    color = (255, 255, 255) if out.dtype == np.uint8 else (1.0, 1.0, 1.0)
    cv2.putText(out, text, (x0 + pad, y1 - pad - base // 2), cv2.FONT_HERSHEY_SIMPLEX, scale, color, thick, cv2.LINE_AA)
    return out


# =============================================================================================
# Manifests: build, sign
# =============================================================================================

def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def build_manifest(
    *,
    title: str,
    mime: str,
    take_id: str,
    step_id: str,
    step_kind: str,
    source_type: str = "compositeWithTrainedAlgorithmicMedia",
    steps: Sequence[dict[str, Any]] = (),
    ingredients: Sequence[dict[str, Any]] = (),
    rights: dict[str, Any] | None = None,
    params_hash: str = "",
    frame: int | None = None,
    watermark: bool = True,
    label: str | None = None,
) -> dict[str, Any]:
    """The manifest definition c2pa signs. ``steps``: earlier post steps, each {"kind", "step_id"}."""
    if source_type not in SOURCE_TYPES:
        raise DisclosureError(f"unknown digital source type {source_type!r}", hint=f"use one of {', '.join(SOURCE_TYPES)}")
    from . import __version__

    agent = {"name": "machinima", "version": __version__}
    actions: list[dict[str, Any]] = [{"action": "c2pa.created", "digitalSourceType": IPTC + source_type, "softwareAgent": agent,
                                      "when": _now()}]
    for s in list(steps) + [{"kind": step_kind, "step_id": step_id}]:
        actions.append({"action": "c2pa.edited", "digitalSourceType": IPTC + source_type, "softwareAgent": agent,
                        "parameters": {"description": f"machinima post step {s.get('kind')} ({s.get('step_id')})"}})
    rights = rights or {}
    override = rights.get("override")
    t_hash, s_hash = watermark_ids(take_id, step_id)
    prov = {
        "take": take_id, "step": step_id, "kind": step_kind, "params_hash": params_hash, "frame": frame,
        "source_type": source_type,
        "rights": {"records": rights.get("records", []), "override": override},
        "override": bool(override),
        "watermark": {"scheme": WM_SCHEME, "take_hash": t_hash, "step_hash": s_hash} if watermark else None,
        "label": label,
    }
    return {
        "claim_generator_info": [agent],
        "title": title,
        "format": mime,
        "ingredients": [dict(i) for i in ingredients],
        "assertions": [
            {"label": "c2pa.actions.v2", "data": {"actions": actions}},
            {"label": ASSERTION, "data": prov},
        ],
    }


def _context(*, sign: bool, trust_anchors: bytes | None = None):
    import c2pa

    conf: dict[str, Any] = {}
    if sign:
        conf["builder"] = {"thumbnail": {"enabled": False}}
    if trust_anchors:
        conf["trust"] = {"trust_anchors": trust_anchors.decode()}
    return c2pa.Context.from_dict(conf) if conf else None


_SIGN_CTX: Any = None


def png_single_idat(png: bytes) -> bytes:
    """The same PNG with its image data in one IDAT chunk (encoders write many 8 KiB chunks;
    c2pa walks a PNG chunk by chunk through Python stream callbacks, so one chunk signs about
    twice as fast). Anything unexpected returns the input unchanged."""
    import struct
    import zlib

    if png[:8] != b"\x89PNG\r\n\x1a\n":
        return png
    pos, head, idat, tail = 8, [png[:8]], [], []
    try:
        while pos < len(png):
            (n,) = struct.unpack(">I", png[pos:pos + 4])
            kind = png[pos + 4:pos + 8]
            end = pos + 12 + n
            if end > len(png):
                return png
            if kind == b"IDAT":
                if tail:
                    return png  # IDAT chunks must be consecutive
                idat.append(png[pos + 8:pos + 8 + n])
            else:
                (tail if idat else head).append(png[pos:end])
            pos = end
    except struct.error:
        return png
    if len(idat) <= 1:
        return png
    body = b"".join(idat)
    chunk = struct.pack(">I", len(body)) + b"IDAT" + body + struct.pack(">I", zlib.crc32(body, zlib.crc32(b"IDAT")) & 0xFFFFFFFF)
    return b"".join(head) + chunk + b"".join(tail)


def sign_bytes(data: bytes, mime: str, manifest: dict[str, Any], identity: SigningIdentity) -> bytes:
    """Embed a signed manifest into ``data`` (PNG/JPEG/MP4 bytes); returns the new bytes."""
    import c2pa

    global _SIGN_CTX
    if _SIGN_CTX is None:
        _SIGN_CTX = _context(sign=True)
    try:
        builder = c2pa.Builder(json.dumps(manifest), context=_SIGN_CTX)
        dst = io.BytesIO()
        builder.sign(identity.signer(), mime, io.BytesIO(data), dst)
    except c2pa.C2paError as exc:
        raise DisclosureError(f"signing {manifest.get('title')} failed: {exc}", hint="nothing was written") from None
    return dst.getvalue()


def sign_file(src: str | Path, manifest: dict[str, Any], identity: SigningIdentity, dst: str | Path | None = None) -> Path:
    """Sign a file (streams, so a long MP4 is not held in memory); writes ``dst`` (default:
    replaces ``src``) atomically. On any error nothing is written."""
    import c2pa

    global _SIGN_CTX
    src = Path(src)
    dst = Path(dst) if dst is not None else src
    mime = mime_of(src)
    if mime is None:
        raise DisclosureError(f"{src.name}: cannot sign this file type", hint=f"supported: {', '.join(sorted(MIME))}")
    if _SIGN_CTX is None:
        _SIGN_CTX = _context(sign=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.stem}.", suffix=dst.suffix, dir=dst.parent)
    try:
        with os.fdopen(fd, "w+b") as out, open(src, "rb") as inp:
            builder = c2pa.Builder(json.dumps(manifest), context=_SIGN_CTX)
            builder.sign(identity.signer(), mime, inp, out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, dst)
    except OSError as exc:
        _unlink(tmp)
        raise DisclosureError(f"cannot sign {src}: {exc.strerror or exc}", hint="nothing was written") from None
    except c2pa.C2paError as exc:
        _unlink(tmp)
        raise DisclosureError(f"signing {src} failed: {exc}", hint="nothing was written") from None
    except BaseException:
        _unlink(tmp)
        raise
    return dst


def _unlink(p: str | Path) -> None:
    try:
        os.unlink(p)
    except OSError:
        pass


# =============================================================================================
# Disclosure: what a post step applies to each output
# =============================================================================================

@dataclass
class Disclosure:
    """Watermark + label + signed manifest for one post step's outputs.

    Make one with ``Disclosure.for_step(out_dir, kind, identity, rights=...)`` or let
    ``PostStep`` make it from ``[rights]`` in machinima.toml (``disclose = true``).
    """

    identity: SigningIdentity
    take_id: str
    step_id: str
    step_kind: str
    source_type: str = "compositeWithTrainedAlgorithmicMedia"
    rights: dict[str, Any] | None = None
    ingredients: list[dict[str, Any]] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)
    watermark: bool = True
    label: str | None = None
    strength: float = WM_STRENGTH
    params_hash: str = ""
    frame_sources: dict[str, str] = field(default_factory=dict)  # input name -> frame folder in the take

    @classmethod
    def for_step(cls, out_dir: str | Path, kind: str, identity: SigningIdentity, *, rights: Any = None,
                 inputs: dict[str, Any] | None = None, **kw: Any) -> "Disclosure":
        """Fill take id, ingredients (take.json + the step's inputs) from ``<take>/post/<step-id>``."""
        out_dir = Path(out_dir)
        take_dir = out_dir.parent.parent
        take_id, ingredients = take_dir.name, []
        manifest = take_dir / "take.json"
        if manifest.exists():
            try:
                doc = json.loads(manifest.read_text(encoding="utf-8"))
                take_id = str(doc.get("id") or take_id)
            except (OSError, ValueError):
                pass
            try:
                take_sha = hashlib.sha256(manifest.read_bytes()).hexdigest()
            except OSError:
                take_sha = ""
            ingredients.append({"title": f"take {take_id} (take.json)", "format": "application/json", "relationship": "componentOf",
                                "instance_id": f"machinima:take:{take_id}",
                                "metadata": {"dataTypes": [{"type": "machinima.take"}], "sha256": take_sha}})
        steps: list[dict[str, Any]] = []
        frame_sources: dict[str, str] = {}
        for name, value in sorted((inputs or {}).items()):
            ingredients.append({"title": f"{name}: {value}"[:200], "format": "application/octet-stream", "relationship": "componentOf",
                                "instance_id": f"machinima:input:{name}:{hashlib.sha256(str(value).encode()).hexdigest()[:16]}"})
            steps.extend(_earlier_steps(take_dir, value, steps))
            if isinstance(value, (str, Path)):  # a frame folder of this take (a pass, an earlier step's output)
                p = Path(str(value))
                p = p if p.is_absolute() else take_dir / p
                try:
                    if p.is_dir() and p.resolve().is_relative_to(take_dir.resolve()):
                        frame_sources[name] = str(p.resolve().relative_to(take_dir.resolve()))
                except OSError:
                    pass
        kw.setdefault("steps", steps)
        kw.setdefault("frame_sources", frame_sources)
        return cls(identity=identity, take_id=take_id, step_id=out_dir.name, step_kind=kind,
                   rights=_rights_doc(rights), ingredients=ingredients, **kw)

    def fingerprint(self) -> dict[str, Any]:
        """What changes the pixels (goes into the frame keys of PostStep)."""
        return {"wm": WM_SCHEME if self.watermark else None, "strength": self.strength, "label": self.label,
                "take": self.take_id, "step": self.step_id}

    def mark(self, img: np.ndarray) -> np.ndarray:
        """Label (if asked) then watermark; images too small for a watermark pass unchanged."""
        out = np.asarray(img)
        if self.label:
            out = burn_label(out, self.label)
        if self.watermark and can_watermark(out):
            out = embed_watermark(out, self.take_id, self.step_id, strength=self.strength)
        return out

    def manifest(self, title: str, mime: str, frame: int | None = None) -> dict[str, Any]:
        ingredients = list(self.ingredients)
        if frame is not None:  # the source frames this frame was made from
            for name, folder in sorted(self.frame_sources.items()):
                ingredients.append({"title": f"{folder}/{frame:06d}", "format": "image/png", "relationship": "componentOf",
                                    "instance_id": f"machinima:{self.take_id}:{folder}/{frame:06d}"})
        return build_manifest(title=title, mime=mime, take_id=self.take_id, step_id=self.step_id, step_kind=self.step_kind,
                              source_type=self.source_type, steps=self.steps, ingredients=ingredients, rights=self.rights,
                              params_hash=self.params_hash, frame=frame, watermark=self.watermark, label=self.label)

    def encode(self, img: np.ndarray, title: str, *, frame: int | None = None, ext: str = ".png",
               jpeg_quality: int = 95) -> bytes:
        """Mark, encode (PNG or JPEG) and sign one RGB(A) frame; returns the file's bytes."""
        import cv2

        marked = self.mark(img)
        a = np.asarray(marked)
        if a.ndim == 3 and a.shape[2] == 3:
            a = a[..., ::-1]
        elif a.ndim == 3 and a.shape[2] == 4:
            a = a[..., [2, 1, 0, 3]]
        params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality] if ext in (".jpg", ".jpeg") else []
        ok, buf = cv2.imencode(ext, np.ascontiguousarray(a), params)
        if not ok:
            raise DisclosureError(f"could not encode {title}")
        data = png_single_idat(buf.tobytes()) if ext == ".png" else buf.tobytes()
        return sign_bytes(data, MIME[ext], self.manifest(title, MIME[ext], frame), self.identity)

    def sign_file(self, path: str | Path, dst: str | Path | None = None) -> Path:
        """Sign an already-marked file (a delivered MP4 whose frames came from disclosed steps)."""
        p = Path(path)
        return sign_file(p, self.manifest(p.name, mime_of(p) or ""), self.identity, dst)

    def summary(self) -> dict[str, Any]:
        """For params.json."""
        return {"signer": self.identity.summary(), "source_type": self.source_type, "watermark": WM_SCHEME if self.watermark else None,
                "watermark_ids": dict(zip(("take_hash", "step_hash"), watermark_ids(self.take_id, self.step_id))),
                "label": self.label, "per": "frame (PNG/JPEG); file (MP4)", "steps": self.steps}


def _earlier_steps(take_dir: Path, value: Any, known: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """An input inside ``<take>/post/<step-id>/``: that step (and the steps it recorded) came first."""
    if not isinstance(value, (str, Path)):
        return []
    parts = Path(str(value)).parts
    if "post" not in parts:
        return []
    i = len(parts) - 1 - parts[::-1].index("post")
    if i + 1 >= len(parts):
        return []
    step_id = parts[i + 1]
    if any(k.get("step_id") == step_id for k in known):
        return []
    try:
        doc = json.loads((take_dir / "post" / step_id / "params.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [*(doc.get("disclosure") or {}).get("steps", []), {"kind": str(doc.get("step", "?")), "step_id": step_id}]


def _rights_doc(rights: Any) -> dict[str, Any] | None:
    from .rights import provenance_of

    return provenance_of(rights)


def disclosure_from_config(out_dir: str | Path, kind: str, *, rights: Any = None, inputs: dict[str, Any] | None = None,
                           cfg: Any = None) -> Disclosure | None:
    """``[rights] disclose = true`` -> a Disclosure signed with the configured certificate; else None."""
    if cfg is None:
        from .config import load_config

        cfg = load_config()
    sec = cfg.section("rights")
    if not sec.get("disclose"):
        return None
    label = sec.get("label")
    return Disclosure.for_step(out_dir, kind, identity_from_config(cfg), rights=rights, inputs=inputs,
                               source_type=str(sec.get("source_type", "compositeWithTrainedAlgorithmicMedia")),
                               label=("AI-modified" if label is True else (str(label) if label else None)))


def write_disclosed_video(path: str | Path, frames: Iterable[np.ndarray], disclosure: Disclosure, fps: float | str = 24,
                          *, crf: int = 18, mark: bool = True) -> Path:
    """Encode frames to MP4 (marking each, unless they were marked already) and sign the file."""
    from .imageseq import write_video

    path = Path(path)
    src = (disclosure.mark(f) for f in frames) if mark else frames
    write_video(path, src, fps, crf=crf)
    return disclosure.sign_file(path)


# =============================================================================================
# Verification
# =============================================================================================

@dataclass
class FileReport:
    path: str
    manifest: str  # 'absent' | 'valid' | 'trusted' | 'invalid' | 'unreadable'
    failures: list[str] = field(default_factory=list)
    source_type: str = ""
    actions: list[str] = field(default_factory=list)
    take: str = ""
    step: str = ""
    kind: str = ""
    records: list[str] = field(default_factory=list)
    override: Any = None
    signer: str = ""
    watermark: WatermarkResult | None = None
    watermark_matches: bool | None = None
    error: str = ""

    @property
    def status(self) -> str:
        """'ok', 'tampered', 'unmarked', 'unreadable', 'watermark-only', 'unwatermarked', 'mismatch'."""
        wm = self.watermark.found if self.watermark else False
        if self.manifest == "unreadable":
            return "unreadable"
        if self.manifest == "invalid":
            return "tampered"
        if self.manifest == "absent":
            return "watermark-only" if wm else "unmarked"
        if self.watermark_matches is False:
            return "mismatch"
        if self.watermark is not None and not wm:
            return "unwatermarked"
        return "ok"

    @property
    def bad(self) -> bool:
        return self.status in ("tampered", "unmarked", "unreadable", "mismatch")

    def to_doc(self) -> dict[str, Any]:
        return {"path": self.path, "status": self.status, "manifest": self.manifest, "failures": self.failures,
                "source_type": self.source_type, "actions": self.actions, "take": self.take, "step": self.step, "kind": self.kind,
                "records": self.records, "override": self.override, "signer": self.signer,
                "watermark": self.watermark.to_doc() if self.watermark else None, "watermark_matches": self.watermark_matches,
                "error": self.error}


def read_manifest(path: str | Path, *, trust_anchors: bytes | None = None) -> tuple[str, dict[str, Any] | None, list[str]]:
    """(state, active manifest or None, failure codes). state: absent/valid/trusted/invalid/unreadable."""
    import c2pa

    p = Path(path)
    mime = mime_of(p)
    if mime is None:
        return "unreadable", None, [f"unsupported file type {p.suffix}"]
    try:
        with open(p, "rb") as fh:
            ctx = _context(sign=False, trust_anchors=trust_anchors)
            reader = c2pa.Reader(mime, fh, context=ctx) if ctx is not None else c2pa.Reader(mime, fh)
            state = (reader.get_validation_state() or "").lower()
            doc = json.loads(reader.json())
    except OSError as exc:
        return "unreadable", None, [f"cannot read: {exc.strerror or exc}"]
    except c2pa.C2paError as exc:
        text = str(exc)
        if "ManifestNotFound" in type(exc).__name__ or "ManifestNotFound" in text or "no JUMBF" in text:
            return "absent", None, []
        return "unreadable", None, [text.splitlines()[0] if text else type(exc).__name__]
    active = (doc.get("manifests") or {}).get(doc.get("active_manifest") or "")
    codes = [v.get("code", "?") for v in doc.get("validation_status") or []]
    failures = [c for c in codes if c != "signingCredential.untrusted"]
    if state not in ("valid", "trusted", "invalid"):
        state = "invalid" if failures else "valid"
    return state, active, codes


def _video_frames(path: Path, max_frames: int) -> Iterable[np.ndarray]:
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        total = min(stream.frames or 0, 10 * 24)  # sample the first ~10 s: decoding a whole film is not needed
        step = max(1, total // max_frames) if total else 1
        n = 0
        for i, frame in enumerate(container.decode(video=0)):
            if i % step == 0:
                yield frame.to_ndarray(format="rgb24")
                n += 1
                if n >= max_frames:
                    break


def verify_file(path: str | Path, *, trust_anchors: bytes | None = None, watermark: bool = True,
                max_video_frames: int = 12) -> FileReport:
    """Check one PNG/JPEG/MP4: manifest present and valid, what it says, watermark."""
    p = Path(path)
    state, active, codes = read_manifest(p, trust_anchors=trust_anchors)
    rep = FileReport(str(p), state, [c for c in codes if c != "signingCredential.untrusted"] if state != "unreadable" else [])
    if state == "unreadable":
        rep.error = codes[0] if codes else "unreadable"
        return rep
    if state == "valid" and "signingCredential.untrusted" in codes:
        rep.failures.append("signingCredential.untrusted")
    if active:
        sig = active.get("signature_info") or {}
        rep.signer = " / ".join(x for x in (sig.get("common_name"), sig.get("issuer")) if x)
        for a in active.get("assertions", []):
            if a.get("label", "").startswith("c2pa.actions"):
                for act in a.get("data", {}).get("actions", []):
                    rep.actions.append(act.get("action", "?"))
                    if act.get("digitalSourceType") and not rep.source_type:
                        rep.source_type = act["digitalSourceType"].rsplit("/", 1)[-1]
            elif a.get("label") == ASSERTION:
                d = a.get("data", {})
                rep.take, rep.step, rep.kind = str(d.get("take", "")), str(d.get("step", "")), str(d.get("kind", ""))
                rights = d.get("rights") or {}
                rep.records = [r.get("id", "?") for r in rights.get("records", [])]
                rep.override = rights.get("override")
    if watermark:
        try:
            if p.suffix.lower() in VIDEO_EXTS:
                rep.watermark = decode_watermark(_video_frames(p, max_video_frames))
            else:
                from .imageseq import read_image

                rep.watermark = decode_watermark(read_image(p))
        except Exception as exc:  # noqa: BLE001 - a file c2pa could parse but the decoder cannot
            rep.watermark = WatermarkResult(False, reason=f"could not decode pixels: {exc}")
        if rep.take and rep.watermark.found:
            rep.watermark_matches = rep.watermark.matches(rep.take, rep.step)
    return rep


def is_picture(path: str | Path) -> bool:
    """False for grayscale / 16-bit PNGs (masks, data passes: post steps do not disclose those)."""
    p = Path(path)
    if p.suffix.lower() != ".png":
        return True
    try:
        with open(p, "rb") as fh:
            head = fh.read(26)
    except OSError:
        return True
    if len(head) < 26 or head[:8] != b"\x89PNG\r\n\x1a\n":
        return True
    bit_depth, color_type = head[24], head[25]
    return color_type in (2, 3, 6) and bit_depth == 8


def iter_media(folder: str | Path) -> list[Path]:
    root = Path(folder)
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in MIME and not p.name.startswith("."))


def verify_path(target: str | Path, *, trust_anchors: bytes | None = None, watermark: bool = True) -> list[FileReport]:
    """One report per media file (a file, or every PNG/JPEG/MP4 under a folder)."""
    p = Path(target)
    if p.is_dir():
        return [verify_file(f, trust_anchors=trust_anchors, watermark=watermark) for f in iter_media(p)]
    if not p.exists():
        raise DisclosureError(f"{p} does not exist")
    return [verify_file(p, trust_anchors=trust_anchors, watermark=watermark)]

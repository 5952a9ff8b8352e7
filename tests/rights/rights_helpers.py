"""Helpers shared by the rights tests (importable by name; conftest fixtures stay fixtures)."""

from __future__ import annotations

import numpy as np


def variants(img: np.ndarray, n: int = 4) -> list[np.ndarray]:
    """The same face as material would show it: smaller, mirrored, re-encoded, darker, moving."""
    import cv2

    out = [cv2.resize(img, None, fx=0.6, fy=0.6), np.ascontiguousarray(img[:, ::-1])]
    ok, buf = cv2.imencode(".jpg", img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 50])
    out.append(cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1])
    out.append((img * 0.6).astype(np.uint8))
    return [np.ascontiguousarray(o) for o in out[:n]]


def bound_record(rid, identity, *, production="film", scopes=("training", "face_replacement", "lip_sync"), expires="2099-01-01",
                 subject=None, **kw):
    """A person's record bound to ``identity`` (a ``reference_identity`` block)."""
    from machinima import rights

    return rights.RightsRecord(id=rid, kind="person", subject=subject or rid, production=production, scopes=tuple(scopes),
                               expires=rights._parse_date(expires, "expires", "t"), document_sha256="a" * 64,
                               document_location="/contracts/x.pdf", granted_by=subject or rid, identity=identity, **kw)


def portrait_project(root):
    """A project folder (its own local chain, production "film") with a 3-frame clip and a
    faceset of each real portrait: (root, {"collins": image, "hopper": image})."""
    import cv2
    import matplotlib.cbook
    import skimage.data

    from faceswap.extract import extract
    from machinima.imageseq import write_image

    (root / "machinima.toml").write_text('production = "film"\n')
    hopper = cv2.imread(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))[..., ::-1]
    faces = {"collins": cv2.resize(skimage.data.astronaut(), (256, 256)), "hopper": cv2.resize(hopper, (256, 300))}
    for who, img in faces.items():
        for i in range(3):
            write_image(root / "clips" / who / f"{i:06d}.png", np.ascontiguousarray(np.roll(img, 3 * i, axis=1)))
        rep = extract(root / "clips" / who, root / "faces" / who, face_type="whole", size=128, progress=False)
        assert rep.added == 3, rep.messages()
    return root, faces


def issue_signer(chain, out_dir, *, seconds: float = 3600.0, name: str = "short-lived signer"):
    """A signing certificate issued by ``chain``'s root (built here with cryptography, not with
    our own code), valid from a day ago for ``seconds``: (cert path, key path)."""
    import datetime as dt
    from pathlib import Path

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    root = x509.load_pem_x509_certificate(Path(chain.root_cert).read_bytes())
    root_key = serialization.load_pem_private_key(Path(chain.root_key).read_bytes(), None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    org = root.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value
    usage = dict.fromkeys(("digital_signature", "content_commitment", "key_encipherment", "data_encipherment", "key_agreement",
                           "key_cert_sign", "crl_sign", "encipher_only", "decipher_only"), False)
    usage["digital_signature"] = True
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name), x509.NameAttribute(NameOID.ORGANIZATION_NAME, org)]))
            .issuer_name(root.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(seconds=seconds))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(**usage), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False)
            .sign(root_key, hashes.SHA256()))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pem = serialization.Encoding.PEM
    (out / "s.pem").write_bytes(cert.public_bytes(pem) + root.public_bytes(pem))
    (out / "s.key").write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return out / "s.pem", out / "s.key", cert.serial_number


def write_crl(chain, path, serials):
    """A revocation list issued and signed by ``chain``'s root (cryptography's builder)."""
    import datetime as dt
    from pathlib import Path

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization

    root = x509.load_pem_x509_certificate(Path(chain.root_cert).read_bytes())
    root_key = serialization.load_pem_private_key(Path(chain.root_key).read_bytes(), None)
    now = dt.datetime.now(dt.timezone.utc)
    b = x509.CertificateRevocationListBuilder().issuer_name(root.subject).last_update(now).next_update(now + dt.timedelta(days=7))
    for s in serials:
        b = b.add_revoked_certificate(x509.RevokedCertificateBuilder().serial_number(s).revocation_date(now - dt.timedelta(hours=1)).build())
    Path(path).write_bytes(b.sign(root_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))

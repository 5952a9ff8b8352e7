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

"""C2PA manifests: what they say (``build_manifest``) and how they are signed into PNG, JPEG
and MP4 bytes or files (c2pa-python, imported lazily)."""

from __future__ import annotations

import datetime as _dt
import io
import json
import os
from pathlib import Path
from typing import Any, Sequence

from ..fsutil import temp_beside
from ..rights import DisclosureError
from .certs import SigningIdentity
from .watermark import WM_SCHEME, manifest_tag, production_tag

IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"
SOURCE_TYPES = ("trainedAlgorithmicMedia", "compositeWithTrainedAlgorithmicMedia", "algorithmicMedia",
                "compositeSynthetic", "digitalCreation")
ASSERTION = "org.machinima.provenance"
MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".mp4": "video/mp4", ".mov": "video/quicktime"}
VIDEO_EXTS = (".mp4", ".mov")


def mime_of(path: str | Path) -> str | None:
    return MIME.get(Path(path).suffix.lower())


def new_manifest_id() -> str:
    """A fresh C2PA manifest label. It is chosen before the pixels are marked, so the
    watermark can carry it: a mark copied onto another file names a manifest that file lacks."""
    import uuid

    return f"urn:c2pa:{uuid.uuid4()}"


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
    manifest_id: str | None = None,
    production: str = "",
    sequence_id: str | None = None,
) -> dict[str, Any]:
    """The manifest definition c2pa signs. ``steps``: earlier post steps, each {"kind", "step_id"};
    ``label``: the visible label burned in, if any; ``manifest_id``: the manifest's own label
    (``new_manifest_id()``), which the watermark carries; ``sequence_id``: instead, the
    watermark names the step's sequence manifest (a step movie made from its QOI frames keeps
    their mark), recorded here, signed, so ``verify`` accepts that mark on this file."""
    if source_type not in SOURCE_TYPES:
        raise DisclosureError(f"unknown digital source type {source_type!r}", hint=f"use one of {', '.join(SOURCE_TYPES)}")
    from .. import __version__

    agent = {"name": "machinima", "version": __version__}
    actions: list[dict[str, Any]] = [{"action": "c2pa.created", "digitalSourceType": IPTC + source_type, "softwareAgent": agent,
                                      "when": _now()}]
    for s in list(steps) + [{"kind": step_kind, "step_id": step_id}]:
        actions.append({"action": "c2pa.edited", "digitalSourceType": IPTC + source_type, "softwareAgent": agent,
                        "parameters": {"description": f"machinima post step {s.get('kind')} ({s.get('step_id')})"}})
    rights = rights or {}
    override = rights.get("override")
    prov = {
        "production": production, "take": take_id, "step": step_id, "kind": step_kind, "params_hash": params_hash, "frame": frame,
        "source_type": source_type,
        "rights": {"records": rights.get("records", []), "override": override,  # + what later steps inherit / inherited
                   **{k: rights[k] for k in ("swap", "inherited") if rights.get(k)}},
        "override": bool(override),
        "watermark": {"scheme": WM_SCHEME, "production_tag": production_tag(production),
                      "manifest_tag": manifest_tag(sequence_id or manifest_id) if (sequence_id or manifest_id) else None,
                      **({"sequence_manifest": sequence_id} if sequence_id else {})} if watermark else None,
        "label": label,
    }
    return {
        **({"label": manifest_id} if manifest_id else {}),
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
    c2pa walks a PNG chunk by chunk through Python stream callbacks, so one chunk signs faster).
    Zero-copy slices and one join: the rewrite costs less than the signing time it saves.
    Anything unexpected returns the input unchanged."""
    import struct
    import zlib

    if png[:8] != b"\x89PNG\r\n\x1a\n":
        return png
    mv = memoryview(png)
    pos, head, idat, tail = 8, [mv[:8]], [], []
    unpack = struct.Struct(">I").unpack_from
    try:
        while pos < len(png):
            (n,) = unpack(png, pos)
            end = pos + 12 + n
            if end > len(png):
                return png
            if png[pos + 4:pos + 8] == b"IDAT":
                if tail:
                    return png  # IDAT chunks must be consecutive
                idat.append(mv[pos + 8:pos + 8 + n])
            else:
                (tail if idat else head).append(mv[pos:end])
            pos = end
    except struct.error:
        return png
    if len(idat) <= 1:
        return png
    size = sum(len(c) for c in idat)
    crc = zlib.crc32(b"IDAT")
    for c in idat:
        crc = zlib.crc32(c, crc)
    return b"".join([*head, struct.pack(">I", size), b"IDAT", *idat, struct.pack(">I", crc & 0xFFFFFFFF), *tail])


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


def sign_file(src: str | Path, manifest: dict[str, Any], identity: SigningIdentity, dst: str | Path | None = None, *,
              parent: bool = False) -> Path:
    """Sign a file (streams, so a long MP4 is not held in memory); writes ``dst`` (default:
    replaces ``src``) atomically. On any error nothing is written. ``parent=True``: the file as
    it was (with any manifest it carried) becomes the new manifest's parent ingredient, so a
    re-signed delivery keeps the manifest its watermark names."""
    import c2pa

    global _SIGN_CTX
    src = Path(src)
    dst = Path(dst) if dst is not None else src
    mime = mime_of(src)
    if mime is None:
        raise DisclosureError(f"{src.name}: cannot sign this file type", hint=f"supported: {', '.join(sorted(MIME))}")
    if _SIGN_CTX is None:
        _SIGN_CTX = _context(sign=True)
    fd, tmp = temp_beside(dst, suffix=dst.suffix)
    try:
        with os.fdopen(fd, "w+b") as out, open(src, "rb") as inp:
            builder = c2pa.Builder(json.dumps(manifest), context=_SIGN_CTX)
            if parent:
                builder.add_ingredient(json.dumps({"title": src.name, "relationship": "parentOf"}), mime, inp)
                inp.seek(0)
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

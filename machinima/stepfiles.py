"""A step folder's files: frames written atomically under per-process temporary names, the
folder's integrity as ``machinima takes verify`` checks it, and the hashes and versions its
params.json and frame keys are made of (kept apart from ``poststep``)."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

import numpy as np

from .errors import MachinimaError


def file_hash(path: str | Path, *, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while True:
            b = fh.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def write_frame_bytes(path: Path, data: bytes) -> None:
    """Atomic like ``imageseq.write_image`` (per-process temp + rename, no fsync: the ledger line is the commit)."""
    from .fsutil import frame_temp_name

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = frame_temp_name(path)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask's mode: teammates read the frames
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except OSError as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise MachinimaError(f"could not write {path}: {exc.strerror or exc}") from None


def check_step_folder(folder: str | Path) -> tuple[dict[str, Any], list[str]]:
    """A step folder's integrity without its signatures (``machinima takes verify``; the
    signatures are ``machinima verify``'s): every frame the ledger calls done exists, each QOI
    frame hashes to what its ledger line recorded, and frames under a sequence manifest have their
    ``disclosure.png``. Returns (counts, problems)."""
    from .provenance.sequence import SIDECAR

    folder = Path(folder)
    counts: dict[str, Any] = {"frames": 0, "files": 0, "qoi": 0, "sidecar": (folder / SIDECAR).is_file()}
    problems: list[str] = []
    ledger = folder / "ledger.jsonl"
    if not ledger.is_file():
        return counts, problems
    recs: dict[int, dict[str, Any]] = {}
    for line in ledger.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            rec = json.loads(line)
            recs[int(rec["frame"])] = rec
        except (ValueError, KeyError, TypeError):
            continue
    counts["frames"] = len(recs)
    sequence = False
    for f, rec in sorted(recs.items()):
        hashes = rec.get("sha256") or {}
        sequence = sequence or bool(hashes)
        for rel in rec.get("outputs", []):
            p = folder / rel
            counts["files"] += 1
            counts["qoi"] += p.suffix == ".qoi"
            if not p.is_file():
                problems.append(f"frame {f}: {rel} is missing (rerun the step to redo it)")
            elif rel in hashes and file_hash(p) != hashes[rel]:
                problems.append(f"frame {f}: {rel} changed after it was written")
    if sequence and not counts["sidecar"]:
        problems.append(f"{SIDECAR} (the signed manifest of its QOI frames) is missing: rerun the step to seal it")
    return counts, problems


def stable_hash(obj: Any) -> str:
    """A short hash of JSON-able data, independent of key order."""
    blob = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def versions() -> dict[str, str]:
    """Versions of what shaped the pixels, for params.json (only modules already imported)."""
    out = {"python": platform.python_version(), "numpy": np.__version__}
    for mod in ("torch", "diffusers", "transformers", "cv2", "mediapipe", "onnxruntime", "bpy", "av"):
        m = sys.modules.get(mod)
        if m is not None:
            out[mod] = str(getattr(m, "__version__", getattr(getattr(m, "app", None), "version_string", "?")))
    from . import __version__

    out["machinima"] = __version__
    return out

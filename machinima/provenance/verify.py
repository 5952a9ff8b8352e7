"""Reading disclosure back: manifest state, what it says, the watermark."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from ..rights import DisclosureError
from .manifest import ASSERTION, MIME, VIDEO_EXTS, _context, mime_of
from .watermark import WatermarkResult, decode_watermark

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
                from ..imageseq import read_image

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

"""One signed manifest per step for its QOI frames: the sequence manifest.

Signing a C2PA manifest into every frame costs a PNG encode and a signature per frame, and QOI
has no place for a manifest. A step's QOI frames are instead each marked with one manifest id
(the watermark names it, as in a per-frame PNG), and ``<step>/disclosure.png`` (a preview of
the step marked with the same id) carries that manifest, signed, listing the SHA-256 of every
frame. Verifying a frame checks the sidecar's signature and trust, that the frame's bytes hash
to what the manifest lists (a changed or foreign frame is ``tampered``), and that its watermark
names the manifest: the guarantees of a per-frame manifest for one signature per step.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

SIDECAR = "disclosure.png"
SEQ_ASSERTION = "org.machinima.sequence"
SEQ_EXTS = (".qoi",)


def preview_picks(names: Any) -> list[Any]:
    """Which of the step's frames the preview shows: four spread over the sorted names."""
    names = sorted(names)
    return [names[round(i * (len(names) - 1) / 3)] for i in range(4)] if len(names) > 4 else names


def _preview(hashes: dict[str, str], step_dir: Path, held: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """Up to four of the step's frames side by side (large enough to carry the watermark).
    ``held``: frames the step still has in memory, by name (the very pixels it wrote: QOI is
    lossless), so sealing need not decode them back from disk (~15 ms a 1080p frame)."""
    from ..imageseq import contact_sheet, read_image

    pick = preview_picks(hashes)
    images = []
    for rel in dict.fromkeys(pick):
        try:
            img = (held or {}).get(rel)
            images.append((img if img is not None else read_image(step_dir / rel))[..., :3])
        except Exception:  # noqa: BLE001 - a preview is a courtesy; the hashes are the guarantee
            continue
    if not images:
        return np.full((256, 256, 3), 96, np.uint8)
    sheet = contact_sheet(images, columns=2, width=640, labels=[Path(r).as_posix() for r in pick][: len(images)])
    if min(sheet.shape[:2]) < 256:  # the watermark needs room
        pad = np.zeros((max(256, sheet.shape[0]), max(256, sheet.shape[1]), 3), np.uint8)
        pad[: sheet.shape[0], : sheet.shape[1]] = sheet
        sheet = pad
    return sheet


def write_sidecar(path: Path, disclosure: Any, manifest_id: str, hashes: dict[str, str], step_dir: Path,
                  held: dict[str, np.ndarray] | None = None) -> Path:
    """Mark a preview with ``manifest_id`` and sign the sequence manifest (frame -> SHA-256) into
    it. ``held``: frames still in memory, by name (see ``_preview``)."""
    import cv2

    from ..stepfiles import write_frame_bytes as _write_bytes
    from .manifest import png_single_idat, sign_bytes

    img = np.ascontiguousarray(disclosure.mark(_preview(hashes, step_dir, held), manifest_id))
    ok, buf = cv2.imencode(".png", cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError("could not encode the sequence preview")
    manifest = disclosure.manifest(f"{disclosure.step_id}/{SIDECAR}", "image/png", manifest_id=manifest_id)
    for name, folder in sorted(disclosure.frame_sources.items()):  # the source frames, one ingredient per folder
        manifest["ingredients"].append({"title": folder, "format": "application/octet-stream", "relationship": "componentOf",
                                        "instance_id": f"machinima:{disclosure.take_id}:{folder}"})
    manifest["assertions"].append({"label": SEQ_ASSERTION, "data": {
        "frames": dict(sorted(hashes.items())), "count": len(hashes), "hash": "sha256", "format": "qoi"}})
    _write_bytes(path, sign_bytes(png_single_idat(buf.tobytes()), "image/png", manifest, disclosure.identity))
    return path


def step_dir_of(frame: Path) -> Path:
    """The step folder a frame belongs to (``<step>/<output>/NNNNNN.qoi`` or ``<step>/NNNNNN.qoi``)."""
    return next((d for d in (frame.parent, frame.parent.parent) if (d / "params.json").is_file() or (d / SIDECAR).is_file()), frame.parent)


def sequence_hashes(active: dict[str, Any] | None) -> dict[str, str] | None:
    for a in (active or {}).get("assertions", []):
        if a.get("label") == SEQ_ASSERTION:
            return dict((a.get("data") or {}).get("frames") or {})
    return None


def verify_sequence_frame(p: Path, trust: Any, *, watermark: bool = True, decision: dict[str, Any] | None = None) -> Any:
    """A ``FileReport`` for one QOI frame, judged on its step's sequence manifest."""
    from .verify import FileReport, _judge, _read_assertions, read_manifest
    from .watermark import WatermarkResult, decode_watermark

    step = step_dir_of(p)
    sidecar = step / SIDECAR
    if sidecar.is_file():
        state, active, codes = read_manifest(sidecar, trust_anchors=trust.pem() or None)
    else:
        state, active, codes = "absent", None, []
    rep = FileReport(str(p), state, [c for c in codes if c != "signingCredential.untrusted"] if state != "unreadable" else [],
                     decision=decision)
    if state == "unreadable":
        rep.error = f"{SIDECAR}: " + (codes[0] if codes else "unreadable")
        _judge(rep, codes, trust, False)
        return rep
    if state == "valid" and "signingCredential.untrusted" in codes:
        rep.failures.append("signingCredential.untrusted")
    claims_wm = _read_assertions(rep, active) if active else False
    try:
        data = p.read_bytes()
    except OSError as exc:
        rep.manifest, rep.error = "unreadable", f"cannot read: {exc.strerror or exc}"
        _judge(rep, codes, trust, False)
        return rep
    if active is not None and state != "invalid":
        listed = (sequence_hashes(active) or {}).get(p.relative_to(step).as_posix())
        if listed is None:
            rep.manifest, codes = "invalid", [*codes, "sequence.frameNotListed"]
            rep.failures.append("sequence.frameNotListed")
        elif listed != hashlib.sha256(data).hexdigest():
            rep.manifest, codes = "invalid", [*codes, "sequence.hashMismatch"]
            rep.failures.append("sequence.hashMismatch")
    if watermark:
        try:
            from ..imageseq import read_image

            rep.watermark = decode_watermark(read_image(p))
        except Exception as exc:  # noqa: BLE001 - a file the decoder cannot read
            rep.watermark = WatermarkResult(False, reason=f"could not decode pixels: {exc}")
    _judge(rep, codes, trust, claims_wm)
    if rep.status == "tampered" and "sequence.frameNotListed" in rep.failures:
        rep.reason = (f"not listed in the step's sequence manifest ({SIDECAR}): made after it was signed, or brought from "
                      "elsewhere (run the step again to seal it)")
    elif rep.status == "tampered" and "sequence.hashMismatch" in rep.failures:
        rep.reason = f"the frame changed after the step's sequence manifest ({SIDECAR}) was signed (sequence.hashMismatch)"
    return rep


class SequenceMarker:
    """Marks a step's QOI frames with its sequence id in frame order, one ``WatermarkMemory``
    per output, and copies the rest (a kernel may reuse its buffers for the next frame).

    Why in the step loop: the write-behind pool runs frames out of order, and frames marked
    there each on their own let film grain or render noise flip a still background's mark from
    frame to frame; every codec after the step (the step's movie, x264) paid for that flicker.
    One marker per run: a resumed run or a retried chunk starts a fresh memory."""

    def __init__(self, disclosure: Any, manifest_id: str, marks: Any) -> None:
        self.disclosure, self.manifest_id, self.marks = disclosure, manifest_id, marks  # marks(img) -> bool: a QOI picture
        self.memories: dict[str, Any] = {}

    def mark(self, outputs: dict[str, Any]) -> tuple[dict[str, Any], frozenset[str]]:
        """(one frame's outputs, the QOI pictures among them marked; the names marked)."""
        from .watermark import WatermarkMemory

        out: dict[str, Any] = {}
        marked: set[str] = set()
        for name, img in outputs.items():
            a = np.asarray(img)
            if self.marks(a):
                m = self.disclosure.mark(a, self.manifest_id, memory=self.memories.setdefault(name, WatermarkMemory()))
                out[name] = np.array(m, copy=True) if np.may_share_memory(m, a) else m  # too small to mark: still a copy
                marked.add(name)
            else:
                out[name] = np.array(a, copy=True)
        return out, frozenset(marked)

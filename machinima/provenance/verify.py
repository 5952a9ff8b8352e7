"""Reading disclosure back: is this file ours, unchanged, signed by someone we trust, and
does its watermark say the same as its manifest?

``verify_file(path, trust)`` returns a ``FileReport`` whose ``status`` is one of:

    ok               manifest valid, signed under the production's anchors, watermark (if any) authentic and naming it
    ok-local         the same, signed by the project's local chain (trusted by this project only)
    untrusted        the signer chains to no anchor this project trusts (a stranger's certificate)
    broken-chain     the signer claims to be issued by one of our anchors but its signature does not verify
    expired          the signing certificate had expired
    revoked          the signing certificate is on a configured revocation list
    tampered         the manifest's hash does not match the file (changed after signing; a QOI frame
                     whose SHA-256 its step's sequence manifest does not list)
    watermark-only   our watermark, no manifest (stripped, or a re-encoded copy)
    forged           a watermark whose tag does not check with the production's secret
    mismatch         the watermark names another manifest than the file carries (a step movie's mark may
                     name the step's sequence manifest: only where a manifest in its store says so)
    override         the manifest records a rights override (who, when, why are printed)
    unmarked         no manifest, no watermark
    unreadable       not a readable PNG/JPEG/MP4 (QOI frames: their step's disclosure.png)
    unwatermarked    a trusted manifest and no watermark (a frame under 128 px, or signed elsewhere)

Only ``ok``, ``ok-local`` and ``unwatermarked`` are good; every other status comes with a
one-line ``reason``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from ..rights import DisclosureError
from .manifest import ASSERTION, MIME, VIDEO_EXTS, _context, mime_of
from .sequence import SEQ_EXTS, verify_sequence_frame
from .trust import Trust
from .watermark import WatermarkResult, decode_watermark

GOOD = ("ok", "ok-local", "unwatermarked")


@dataclass
class FileReport:
    path: str
    manifest: str  # 'absent' | 'valid' | 'trusted' | 'invalid' | 'unreadable'
    failures: list[str] = field(default_factory=list)
    source_type: str = ""
    actions: list[str] = field(default_factory=list)
    production: str = ""
    take: str = ""
    step: str = ""
    kind: str = ""
    records: list[str] = field(default_factory=list)
    override: Any = None
    rights: dict[str, Any] | None = None  # the signed rights block (records, override, a merge's swap clearance)
    signer: str = ""
    issuer: str = ""
    serial: str = ""
    anchor: str = ""
    manifest_ids: list[str] = field(default_factory=list)
    # a step movie's signed claim (in its manifest, or a parent's: a delivery signed over it): its
    # mark names this step's sequence manifest
    sequence_manifests: list[str] = field(default_factory=list)
    watermark: WatermarkResult | None = None
    watermark_authentic: bool | None = None  # None: no key to check it with
    decision: dict[str, Any] | None = None  # a recorded "disclosure off" covering this file
    status: str = "ok"
    reason: str = ""
    error: str = ""

    @property
    def bad(self) -> bool:
        return self.status not in GOOD

    @property
    def watermark_matches(self) -> bool | None:
        """Does the watermark name one of the manifests this file carries, or the step's sequence
        manifest its signed manifest says the mark names (a step movie made from QOI frames)?
        None: no watermark or no manifest."""
        if self.watermark is None or not self.watermark.found or not self.manifest_ids:
            return None
        ids = [*self.manifest_ids, *self.sequence_manifests]
        return any(self.watermark.names_manifest(m) for m in ids)

    def to_doc(self) -> dict[str, Any]:
        return {"path": self.path, "status": self.status, "reason": self.reason, "manifest": self.manifest, "failures": self.failures,
                "source_type": self.source_type, "actions": self.actions, "production": self.production, "take": self.take,
                "step": self.step, "kind": self.kind, "records": self.records, "override": self.override, "signer": self.signer,
                "anchor": self.anchor, "watermark": self.watermark.to_doc() if self.watermark else None,
                **({"sequence_manifests": self.sequence_manifests} if self.sequence_manifests else {}),
                "watermark_authentic": self.watermark_authentic, "watermark_matches": self.watermark_matches,
                "decision": self.decision, "error": self.error}


def read_manifest(path: str | Path, *, trust_anchors: bytes | None = None) -> tuple[str, dict[str, Any] | None, list[str]]:
    """(state, active manifest or None, validation codes). state: absent/valid/trusted/invalid/unreadable.
    A QOI frame answers with its step's sequence manifest (``disclosure.png``; its hash check is
    ``verify_file``'s).
    The active manifest carries ``_labels``: the labels of every manifest in the file's store."""
    import c2pa

    p = Path(path)
    if p.suffix.lower() in SEQ_EXTS:  # a QOI frame's manifest is its step's sequence manifest
        from .sequence import SIDECAR, step_dir_of

        p = step_dir_of(p) / SIDECAR
        if not p.is_file():
            return "absent", None, []
    mime = mime_of(p)
    if mime is None:
        return "unreadable", None, [f"unsupported file type {p.suffix}"]
    try:
        with open(p, "rb") as fh:
            ctx = _context(sign=False, trust_anchors=trust_anchors)
            reader = c2pa.Reader(mime, fh, context=ctx) if ctx is not None else c2pa.Reader(mime, fh)
            state = (reader.get_validation_state() or "").lower()
            doc = json.loads(reader.json())
            results = reader.get_validation_results() or {}
    except OSError as exc:
        return "unreadable", None, [f"cannot read: {exc.strerror or exc}"]
    except c2pa.C2paError as exc:
        text = str(exc)
        if "ManifestNotFound" in type(exc).__name__ or "ManifestNotFound" in text or "no JUMBF" in text:
            return "absent", None, []
        return "unreadable", None, [text.splitlines()[0] if text else type(exc).__name__]
    active = dict((doc.get("manifests") or {}).get(doc.get("active_manifest") or "") or {})
    active["_labels"] = list((doc.get("manifests") or {}).keys())
    active["_label"] = doc.get("active_manifest") or ""
    active["_sequence_ids"] = _sequence_claims(doc)
    codes = [v.get("code", "?") for v in doc.get("validation_status") or []]
    codes += [v.get("code", "?") for v in (results.get("activeManifest") or {}).get("failure", []) if v.get("code") not in codes]
    if state not in ("valid", "trusted", "invalid"):
        state = "invalid" if [c for c in codes if c != "signingCredential.untrusted"] else "valid"
    return state, active, codes


def _sequence_claims(doc: dict[str, Any]) -> list[str]:
    """The sequence manifests that the manifests in a file's store say its mark names (a step
    movie keeps its QOI frames' mark; a delivery signed over it keeps that claim as its parent)."""
    out: list[str] = []
    for m in (doc.get("manifests") or {}).values():
        for a in (m or {}).get("assertions", []):
            w = (a.get("data") or {}).get("watermark") if a.get("label") == ASSERTION else None
            seq = w.get("sequence_manifest") if isinstance(w, dict) else None
            if isinstance(seq, str) and seq.startswith("urn:c2pa:") and seq not in out:
                out.append(seq)
    return out


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


def _read_assertions(rep: FileReport, active: dict[str, Any]) -> bool:
    """Fill what the manifest says; True when it claims a watermark."""
    sig = active.get("signature_info") or {}
    rep.signer = " / ".join(x for x in (sig.get("common_name"), sig.get("issuer")) if x)
    rep.issuer, rep.serial = str(sig.get("issuer") or ""), str(sig.get("cert_serial_number") or "")
    rep.manifest_ids = list(active.get("_labels") or [])
    rep.sequence_manifests = list(active.get("_sequence_ids") or [])
    claims_wm = False
    for a in active.get("assertions", []):
        if a.get("label", "").startswith("c2pa.actions"):
            for act in a.get("data", {}).get("actions", []):
                rep.actions.append(act.get("action", "?"))
                if act.get("digitalSourceType") and not rep.source_type:
                    rep.source_type = act["digitalSourceType"].rsplit("/", 1)[-1]
        elif a.get("label") == ASSERTION:
            d = a.get("data", {})
            rep.production = str(d.get("production", ""))
            rep.take, rep.step, rep.kind = str(d.get("take", "")), str(d.get("step", "")), str(d.get("kind", ""))
            rights = d.get("rights") or {}
            rep.records = [r.get("id", "?") for r in rights.get("records", [])]
            rep.rights = rights
            rep.override = rights.get("override")
            claims_wm = bool(d.get("watermark"))
    return claims_wm


def _judge(rep: FileReport, codes: list[str], trust: Trust, claims_wm: bool) -> None:
    """Set ``status`` and ``reason``, worst first."""
    wm = rep.watermark
    found = bool(wm and wm.found)

    def set_(status: str, reason: str) -> None:
        rep.status, rep.reason = status, reason

    if rep.manifest == "unreadable":
        return set_("unreadable", rep.error or "not a readable image or video")
    if rep.manifest == "absent":
        if found and trust.secrets:
            assert wm is not None
            rep.watermark_authentic = any(wm.authentic(secret) for _, secret in trust.secrets)
            if not rep.watermark_authentic:
                return set_("forged", "a machinima watermark whose tag does not check with the production's key, and no manifest: forged")
        if found:
            return set_("watermark-only", "carries a machinima watermark but no manifest (stripped, or a re-encoded copy)")
        if rep.decision:
            d = rep.decision
            return set_("unmarked", f"not disclosed: disclosure turned off by {d.get('by') or '?'} on {d.get('at')} ({d.get('reason')})")
        return set_("unmarked", "no manifest and no watermark: nothing says this file is synthetic")
    if "signingCredential.expired" in codes:
        return set_("expired", f"the signing certificate of {rep.signer or '?'} had expired")
    if rep.manifest == "invalid":
        mism = [c for c in codes if "mismatch" in c]
        return set_("tampered", "the file changed after it was signed (" + ", ".join(mism or [c for c in codes if c != "signingCredential.untrusted"]) + ")")
    if rep.manifest == "trusted":
        anchor = trust.anchor_named(rep.issuer)
        rep.anchor = anchor.name if anchor else "a configured anchor"
    else:
        claimed = trust.anchor_named(rep.issuer)
        if claimed is not None:
            return set_("broken-chain", f"the signer {rep.signer} claims to be issued by {claimed.name}, but its chain does not verify")
        where = ", ".join(a.name for a in trust.anchors) or "none configured: set [rights] trust_anchors"
        return set_("untrusted", f"signed by {rep.signer or 'an unknown certificate'}, which is not issued by a trusted anchor ({where})")
    try:
        serial = int(rep.serial)
    except ValueError:
        serial = -1
    revoked = trust.revocation(serial, rep.issuer)
    if revoked:
        return set_("revoked", f"the signing certificate {rep.signer} (serial {rep.serial}) was revoked on {revoked.date}")
    if found:
        assert wm is not None
        if trust.secrets:
            rep.watermark_authentic = any(wm.authentic(secret) for _, secret in trust.secrets)
            if not rep.watermark_authentic:
                return set_("forged", "the watermark's tag does not check with the production's key: forged or damaged")
        if rep.watermark_matches is False:
            return set_("mismatch", f"the watermark names another manifest (#{wm.manifest_tag}) than this file carries"
                        + (" or its step's sequence manifest" if rep.sequence_manifests else ""))
    if rep.override:
        ov = rep.override if isinstance(rep.override, dict) else {"reason": str(rep.override)}
        return set_("override", f"made under a rights override by {ov.get('by') or '?'} at {ov.get('at') or '?'}: {ov.get('reason')}")
    anchor = trust.anchor_named(rep.issuer)
    ok = "ok-local" if anchor is not None and anchor.local else "ok"
    if claims_wm and not found and wm is not None:
        return set_("unwatermarked", f"trusted manifest; no watermark read back ({wm.reason})")
    return set_(ok, f"signed under {rep.anchor}")


def verify_file(path: str | Path, *, trust: Trust | None = None, watermark: bool = True, max_video_frames: int = 12,
                decision: dict[str, Any] | None = None, trust_anchors: bytes | None = None) -> FileReport:
    """Check one PNG/JPEG/MP4 (or a QOI frame, on its step's ``disclosure.png``) against ``trust`` (default: the anchors of the file's project).
    ``trust_anchors`` (PEM) is a shortcut for a Trust holding just those anchors."""
    from .trust import Anchor, _organizations, trust_for

    p = Path(path)
    if trust is None:
        trust = Trust([Anchor("given anchors", trust_anchors, False, _organizations(trust_anchors))]) if trust_anchors else trust_for(p)
    if p.suffix.lower() in SEQ_EXTS:  # a QOI frame: judged on its step's sequence manifest
        return verify_sequence_frame(p, trust, watermark=watermark, decision=decision)
    state, active, codes = read_manifest(p, trust_anchors=trust.pem() or None)
    rep = FileReport(str(p), state, [c for c in codes if c != "signingCredential.untrusted"] if state != "unreadable" else [],
                     decision=decision)
    if state == "unreadable":
        rep.error = codes[0] if codes else "unreadable"
        _judge(rep, codes, trust, False)
        return rep
    if state == "valid" and "signingCredential.untrusted" in codes:
        rep.failures.append("signingCredential.untrusted")
    claims_wm = _read_assertions(rep, active) if active else False
    if watermark:
        try:
            if p.suffix.lower() in VIDEO_EXTS:
                rep.watermark = decode_watermark(_video_frames(p, max_video_frames))
            else:
                from ..imageseq import read_image

                rep.watermark = decode_watermark(read_image(p))
        except Exception as exc:  # noqa: BLE001 - a file c2pa could parse but the decoder cannot
            rep.watermark = WatermarkResult(False, reason=f"could not decode pixels: {exc}")
    _judge(rep, codes, trust, claims_wm)
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


def _skipped(p: Path, root: Path) -> bool:
    """Render passes of a take (made by Blender, not synthetic media), hidden and tool folders."""
    rel = p.relative_to(root).parts
    if any(part.startswith(".") for part in rel):
        return True
    for i, part in enumerate(rel[:-1]):
        if part == "passes" and (root.joinpath(*rel[:i]) / "take.json").is_file():
            return True
    return False


def iter_media(folder: str | Path) -> list[Path]:
    """Picture and video files under ``folder``: not masks or data passes, not a take's render passes."""
    root = Path(folder)
    return sorted(p for p in root.rglob("*") if p.is_file() and (p.suffix.lower() in MIME or p.suffix.lower() in SEQ_EXTS)
                  and not _skipped(p, root) and is_picture(p))


def verify_path(target: str | Path, *, trust: Trust | None = None, watermark: bool = True,
                trust_anchors: bytes | None = None) -> list[FileReport]:
    """One report per media file (a file, or every picture/video under a folder), each with the
    disclosure decision that covers it, if any."""
    from .decision import decision_home, read_decision
    from .trust import trust_for

    p = Path(target)
    if not p.exists():
        raise DisclosureError(f"{p} does not exist")
    if trust is None and not trust_anchors:
        trust = trust_for(p)
    files = iter_media(p) if p.is_dir() else [p]
    homes: dict[Path, Any] = {}
    out = []
    for f in files:
        step = next((d for d in (f.parent, f.parent.parent) if (d / "params.json").is_file()), f.parent)
        home = decision_home(step)
        if home not in homes:
            try:
                dec = read_decision(home, trust)
            except DisclosureError:
                dec = None
            homes[home] = dec.summary() if dec is not None and dec.honoured and not dec.disclose else None
        out.append(verify_file(f, trust=trust, watermark=watermark, decision=homes[home], trust_anchors=trust_anchors))
    return out

"""A face-swap merge's output carries the merge's clearance: later steps inherit it, verified.

A merged face is a new face: it matches neither the source person's reference photos nor the
destination actor's (the demo's is ~0.63 from both, over dlib's 0.6), so the per-face check of
a later step (lip re-sync) would refuse it although both people were cleared when it was made.
Registering a still of the swap as a person of its own is a walk-around: the records that
cleared the swap are the ones that matter. So:

- ``swap_block`` (called by the merge, once its face check passed without an override): the
  merge's records, split into ``source`` (the identities the model was trained on and puts in)
  and ``destination`` (the faces matched in the target), the swapped track ids, and the hash
  of the tracked face regions (``landmarks_used.npz``). It goes into the step's rights block,
  hence into params.json and into every signed manifest of the step's frames.
- ``require_cleared_inheriting`` (a later step reading frames): when the frames are the
  outputs of such a merge -- every frame verified against the step's signed manifest (its
  sequence manifest's SHA-256 for QOI frames, its own C2PA manifest for a PNG), signed under a
  trusted anchor, no override -- a face inside the merge's tracked region of that frame is
  cleared by the merge's records, which must still be valid (signed, this production, this
  step's scope, in date) today: an expired or out-of-scope source record still refuses. Any
  other face (a second person in the plate) goes through ``require_cleared`` as usual. The
  clearance records what was inherited, from which step and records.

Frames copied out of their step folder, changed after signing, or from a merge made under an
override inherit nothing: their faces are checked like any others. The step folder and its
files are the evidence; a typed name never is.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from .errors import NotCleared
from .faces import FaceSample, require_cleared
from .records import RightsRecord, _parse_date, today
from .require import Clearance, Problem, make_override
from .store import RightsStore

MERGE_KIND = "faceswap-merge"
REGIONS = "landmarks_used.npz"
PAD = 0.25  # a detected face counts as inside the merged region when its centre lies in the landmarks' box grown by this


def _track_names(tracks: Iterable[int] | None) -> list[str] | None:
    """["track 0", ...]: names, not numbers (a manifest's CBOR turns a list of small ints into bytes)."""
    return None if tracks is None else [f"track {int(t)}" for t in sorted(tracks)]


def _track_ids(names: Iterable[str] | None) -> set[int] | None:
    return None if names is None else {int(str(n).rsplit(" ", 1)[-1]) for n in names}


def regions_hash(per_frame: Mapping[int, Mapping[int, np.ndarray]], tracks: Iterable[int] | None = None) -> str:
    """SHA-256 over the landmarks of the swapped tracks, frame by frame (what landmarks_used.npz holds)."""
    keep = None if tracks is None else {int(t) for t in tracks}
    h = hashlib.sha256()
    for f in sorted(per_frame):
        for t in sorted(per_frame[f]):
            if keep is None or int(t) in keep:
                h.update(f"{int(f)}_{int(t)};".encode())
                h.update(np.ascontiguousarray(per_frame[f][t], np.float64).tobytes())
    return h.hexdigest()


def swap_block(clearance: Clearance, model_rights: dict[str, Any] | None, used: Mapping[int, Mapping[int, np.ndarray]],
               tracks: Iterable[int] | None, step_id: str) -> dict[str, Any] | None:
    """What the merge's output inherits (None under an override, or without a model's records)."""
    if clearance.override or not model_rights:
        return None
    swapped = None if tracks is None else {f"track {int(t)}" for t in tracks}  # the faces replaced, not the others in frame
    destination = list(dict.fromkeys(i["record"] for i in clearance.identities
                                     if swapped is None or swapped & set(i.get("groups") or [])))
    source = [r.get("id") for r in model_rights.get("records", []) if r.get("id") and r.get("id") not in destination]
    if not source and not destination:
        return None
    return {"step_id": step_id, "kind": MERGE_KIND, "scope": clearance.scope, "source": source, "destination": destination,
            "tracks": _track_names(tracks), "regions": REGIONS,
            "regions_sha256": regions_hash(used, tracks)}


@dataclass
class Inheritance:
    """A verified merge step whose frames are being read."""

    step_dir: Path
    swap: dict[str, Any]
    signer: str
    boxes: dict[int, list[tuple[float, float, float, float]]] = field(default_factory=dict)  # frame -> merged face boxes

    def covers(self, face: FaceSample) -> bool:
        """Is this face inside a merged face region of its frame?"""
        if face.frame is None or face.box is None:
            return False
        cx, cy = (face.box[0] + face.box[2]) / 2, (face.box[1] + face.box[3]) / 2
        return any(x0 <= cx <= x1 and y0 <= cy <= y1 for x0, y0, x1, y1 in self.boxes.get(int(face.frame), []))

    @property
    def record_ids(self) -> list[str]:
        return list(dict.fromkeys([*self.swap.get("source", []), *self.swap.get("destination", [])]))


def find_inheritance(frames: Mapping[int, Path], trust: Any = None) -> tuple[Inheritance | None, str]:
    """(the merge step whose signed outputs ``frames`` are, or None, why not). Every frame is
    checked: one frame that is not the merge's own (copied in, changed) and nothing is inherited."""
    from ..identity import box_of
    from ..provenance import trust_for, verify_file
    from ..provenance.sequence import SEQ_EXTS, sequence_hashes, step_dir_of
    from ..provenance.verify import GOOD, read_manifest

    if not frames:
        return None, "no frames"
    paths = [Path(p) for _, p in sorted(frames.items())]
    step = step_dir_of(paths[0])
    if not (step / REGIONS).is_file():
        return None, f"{paths[0].parent} is not the output of a face-swap merge step (no {REGIONS} beside a signed manifest)"
    trust = trust if trust is not None else trust_for(paths[0])
    first = verify_file(paths[0], trust=trust, watermark=False)
    if first.status not in GOOD:
        return None, f"{paths[0].name}: {first.status}: {first.reason}"
    swap = (first.rights or {}).get("swap")
    if first.kind != MERGE_KIND or not swap:
        return None, f"{paths[0].name} was signed by a {first.kind or '?'} step that records no face-swap clearance"
    seq = None
    for p in paths[1:]:
        if step_dir_of(p) != step:
            return None, f"{p} is not in the merge step {step}"
        if p.suffix.lower() in SEQ_EXTS:
            if seq is None:
                _, active, _ = read_manifest(p, trust_anchors=trust.pem() or None)
                seq = sequence_hashes(active) or {}
            if seq.get(p.relative_to(step).as_posix()) != hashlib.sha256(p.read_bytes()).hexdigest():
                return None, f"{p.name} is not the frame the merge step signed (changed, or brought in)"
        else:
            rep = verify_file(p, trust=trust, watermark=False)
            if rep.status not in GOOD or (rep.rights or {}).get("swap") != swap:
                return None, f"{p.name}: {rep.status}: {rep.reason or 'signed with another clearance'}"
    try:
        z = np.load(step / REGIONS, allow_pickle=False)
        per_frame: dict[int, dict[int, np.ndarray]] = {}
        for name in z.files:
            f, t = name.split("_")
            per_frame.setdefault(int(f), {})[int(t)] = z[name]
    except (OSError, ValueError) as exc:
        return None, f"{step / REGIONS} cannot be read: {exc}"
    try:
        keep = _track_ids(swap.get("tracks"))
    except (TypeError, ValueError):
        return None, "the merge's signed clearance names no readable face tracks"
    if regions_hash(per_frame, keep) != swap.get("regions_sha256"):
        return None, f"{step / REGIONS} is not the face regions the merge signed"
    boxes = {f: [box_of(lm, PAD) for t, lm in faces.items() if keep is None or t in keep] for f, faces in per_frame.items()}
    return Inheritance(step, swap, first.signer, boxes), ""


def _record_problems(st: RightsStore, inh: Inheritance, production: str, scope: str, day: _dt.date) -> tuple[list[RightsRecord], list[Problem]]:
    recs, problems = [], []
    for rid in inh.record_ids:
        rec = st.get(rid)
        role = "source" if rid in inh.swap.get("source", []) else "destination"
        why = "does not exist" if rec is None else (st.signature_of(rec).reason() or rec.status(production, scope, day))
        if why:
            problems.append(Problem(rid, "record", f"record {rid!r} (the {role} of face-swap merge {inh.step_dir.name}, whose "
                                                   f"clearance these frames inherit) {why}", rid))
        else:
            recs.append(rec)
    return recs, problems


def require_cleared_inheriting(production: str, scope: str, faces: Iterable[FaceSample], frames: Mapping[int, Path] | None, *,
                               override: str | bool | None = None, store: RightsStore | str | Path | None = None,
                               on: _dt.date | str | None = None, what: str = "the material", trust: Any = None) -> Clearance:
    """``require_cleared`` for a step reading ``frames`` (frame number -> file): faces inside a
    verified merge step's face regions are cleared by the merge's records (still valid for
    ``scope`` today); every other face must match a record itself. See the module docstring."""
    inh, why = find_inheritance(frames, trust) if frames else (None, "")
    if inh is None:
        try:
            return require_cleared(production, scope, faces, override=override, store=store, on=on, what=what)
        except NotCleared as exc:
            if why and "matches no rights record" in str(exc):
                exc.args = (f"{exc.args[0]} (no clearance inherited: {why})", *exc.args[1:])
            raise
    st = store if isinstance(store, RightsStore) else RightsStore(store)
    day = _parse_date(on, "date", "require_cleared_inheriting()") if on is not None else today()
    recs, problems = _record_problems(st, inh, production, scope, day)
    if problems and not override:
        first = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise NotCleared(f"{scope} not cleared for production {production!r} in {what}: {first.message}{more}",
                         hint=f"renew record {first.record_id!r} for {scope} (machinima rights add ... --id {first.record_id} --replace), "
                              "or pass an override reason for your own test material", problems=problems)
    inside = outside = 0
    rest: list[FaceSample] = []
    for face in faces:
        if inh.covers(face):
            inside += 1
        else:
            outside += 1
            rest.append(face)
    clearance = require_cleared(production, scope, rest, override=override, store=st, on=day, what=what)
    for r in recs:
        if r.id not in clearance.record_ids:
            clearance.records.append(r)
    if problems:  # an override went on past an invalid inherited record: say so with the rest
        ov = clearance.override or make_override(override, [])
        ov["missing"] = [*ov.get("missing", []), *({"subject": p.subject, "reason": p.reason, "message": p.message} for p in problems)]
        clearance.override = ov
    clearance.inherited.append({"from_step": str(inh.step_dir), "step_id": inh.swap.get("step_id"), "kind": MERGE_KIND,
                                "signer": inh.signer, "source": list(inh.swap.get("source", [])),
                                "destination": list(inh.swap.get("destination", [])), "scope": scope, "faces": inside,
                                "checked_on": day.isoformat()})
    return clearance

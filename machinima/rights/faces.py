"""Rights bound to the face itself: every face in the material must match a valid record.

    from machinima import rights

    clearance = rights.require_cleared(production, "face_replacement", rights.faces_in_tracks(read, tracks))
    # or raises NotCleared naming the frame (or faceset item) whose face matches no valid record

The one check that face-model training, face merging, lip re-sync and LoRA training call (the
library functions themselves, so the Python API and the CLI enforce the same rule). A face
*matches* a record when its identity embedding (``machinima.identity``) is closer than the
network's same-person threshold to one of the record's reference embeddings; the record must
also be signed by a trusted key, for this production, of this scope, and in date. Typed names
(``--subject``, folder names) only label: they clear nothing.

Faces are embedded per group, not per frame: a track of a merge, a faceset, one image of a
dataset; ``faces_in_*`` pick a few samples of each group (the first, the last, and one every
``every`` frames). A collection's embeddings are cached in the project's ``.machinima/identity/``
(not in the collection), keyed by each image's hash. ``override`` (a reason) proceeds anyway, recorded in provenance,
and ``verify``/``audit`` report it.
"""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from ..errors import MachinimaError
from .errors import NotCleared, RightsError
from .records import SCOPES, RightsRecord, _parse_date, today
from .require import Clearance, Problem, _add_hint, make_override
from .store import RightsStore

@dataclass
class FaceSample:
    """One face of the material: where it is (for messages), its group, and how to embed it."""

    where: str
    group: str
    image: Callable[[], np.ndarray] | None = None
    box: tuple[float, float, float, float] | None = None
    embedding: np.ndarray | None = None
    cache_key: str = ""
    frame: int | None = None  # the frame it is on (a merge's tracked face region there clears it by inheritance)


def _spread(n: int, every: int) -> list[int]:
    """Indices of the samples of a group of ``n``: first, last, and one every ``every``."""
    if n <= 0:
        return []
    idx = set(range(0, n, max(1, every))) | {n - 1}
    return sorted(idx)


def faces_in_tracks(read_frame: Callable[[int], np.ndarray], per_frame: dict[int, dict[int, np.ndarray]], *,
                    every: int = 48, label: str = "frame") -> list[FaceSample]:
    """Samples of every tracked face (``per_frame[frame][track] = landmarks``): per track, the
    first and last frame and one every ``every`` frames, where the face is largest nearby."""
    from ..identity import box_of

    tracks: dict[int, list[int]] = {}
    for f in sorted(per_frame):
        for t in per_frame[f]:
            tracks.setdefault(int(t), []).append(f)
    out = []
    cache: dict[int, np.ndarray] = {}

    def reader(f: int) -> Callable[[], np.ndarray]:
        def read() -> np.ndarray:
            if f not in cache:
                cache.clear()  # one frame in memory at a time
                cache[f] = read_frame(f)
            return cache[f]
        return read

    for t, frames in sorted(tracks.items()):
        for i in _spread(len(frames), every):
            window = frames[max(0, i - 2):i + 3]  # the largest face near the sample: a sharper, frontal view
            f = max(window, key=lambda g: np.ptp(np.asarray(per_frame[g][t])[:, 0]))
            out.append(FaceSample(f"{label} {f}, face track {t}", f"track {t}", reader(f), box_of(per_frame[f][t], 0.05), frame=f))
    return out


def faces_in_frames(frames: Sequence[int], read_frame: Callable[[int], np.ndarray], *, every: int = 48,
                    label: str = "frame") -> Iterator[FaceSample]:
    """Samples of every face the detector finds in frames ``every`` apart (first and last included)."""
    from ..identity import get_embedder

    emb = get_embedder()
    for i in _spread(len(frames), every):
        f = frames[i]
        img = read_frame(f)
        for k, face in enumerate(emb.find(img)):
            yield FaceSample(f"{label} {f}, face {k}", f"{label} {f}", lambda img=img: img, face.box, frame=f)


def faces_in_collection(path: str | Path, *, every: int = 50, label: str | None = None) -> list[FaceSample]:
    """Samples of the faces of a faceset or dataset (``machinima.collections``): a faceset's
    items by their landmarks (per source track: first, last, one every ``every``); a dataset's
    images, every face the detector finds in each. Embeddings come from (and go to) the
    collection's identity cache."""
    from ..collections import Collection
    from ..identity import box_of, get_embedder

    col = Collection.open(path)
    try:
        name = label or f"{col.kind} {Path(path).name}"
        items = list(col.items())
        root = Path(col.root)
        kind = col.kind
    finally:
        col.close()
    cache = _load_cache(root)
    method = get_embedder().method
    known = dict(cache.get(method, {}))
    out: list[FaceSample] = []

    def loader(file: str) -> Callable[[], np.ndarray]:
        def load() -> np.ndarray:
            from ..imageseq import read_image

            return read_image(root / file)
        return load

    det = get_embedder()
    if kind == "faceset":
        groups: dict[str, list[Any]] = {}
        for it in items:
            groups.setdefault(f"{it.source.path}#{it.meta.get('track', 0)}", []).append(it)
        for g, its in groups.items():
            for i in _spread(len(its), every):
                it = its[i]
                lm = it.meta.get("aligned_landmarks")
                if lm is None:
                    continue
                box = box_of(np.asarray(lm), 0.05)
                key = f"{it.sha256}:{','.join(f'{v:.1f}' for v in box)}"
                if key not in known:
                    try:
                        known[key] = [round(float(v), 6) for v in det.embed(loader(it.file)(), box)]
                    except MachinimaError:
                        continue  # a missing or corrupt image is not trained on (the loader says which)
                out.append(FaceSample(f"{name} item {it.id} ({it.file})", f"{name} {g}", None, box,
                                      np.asarray(known[key], np.float32), key))
    else:
        for it in items:
            key = f"{it.sha256}:faces"
            if key not in known:
                try:
                    img = loader(it.file)()
                except MachinimaError:
                    continue  # a missing or corrupt image is not trained on (the loader says which)
                known[key] = [[*f.box, *(round(float(v), 6) for v in det.embed(img, f.box))] for f in det.find(img)]
            for k, row in enumerate(known[key]):
                out.append(FaceSample(f"{name} item {it.id} ({it.file}), face {k}", f"{name} item {it.id}", None,
                                      tuple(row[:4]), np.asarray(row[4:], np.float32), key))
    cache[method] = known
    _save_cache(root, cache)
    return out


def _cache_path(root: Path) -> Path:
    """Outside the collection (its folder stays as the user made it): the project's
    ``.machinima/identity/<hash of the collection's path>.json``."""
    import hashlib

    from ..provenance import project_of

    key = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]
    return project_of(root) / ".machinima" / "identity" / f"{root.name}-{key}.json"


def _load_cache(root: Path) -> dict[str, Any]:
    try:
        doc = json.loads(_cache_path(root).read_text(encoding="utf-8"))
        return doc if isinstance(doc, dict) else {}
    except (OSError, ValueError):
        return {}


def _save_cache(root: Path, cache: dict[str, Any]) -> None:
    from ..fsutil import atomic_write_json

    try:
        atomic_write_json(_cache_path(root), cache)
    except Exception:  # noqa: BLE001 - a read-only project still checks, it just does not cache
        pass


@dataclass
class _Candidate:
    record: RightsRecord
    refs: list[list[float]]
    why_not: str  # '' when valid for this production, scope and date


def _candidates(store: RightsStore, production: str, scope: str, on: _dt.date, method: str) -> tuple[list[_Candidate], list[str]]:
    """Every record with reference embeddings of ``method``, with why it cannot clear (if so)."""
    out, notes = [], []
    for r in store.records():
        refs = r.embeddings(method)
        if not refs:
            if r.kind == "person" and r.production == production and scope in r.scopes:
                notes.append(f"record {r.id!r} has no reference photos ({method}): re-add it with --photo")
            continue
        sig = store.signature_of(r)
        why = "" if sig.ok else f"{sig.reason()}"
        why = why or r.status(production, scope, on)
        out.append(_Candidate(r, refs, why))
    return out, notes


def require_cleared(
    production: str,
    scope: str,
    faces: Iterable[FaceSample],
    *,
    override: str | bool | None = None,
    store: RightsStore | str | Path | None = None,
    on: _dt.date | str | None = None,
    records: Sequence[str] = (),
    model_rights: dict[str, Any] | None = None,
    what: str = "the material",
) -> Clearance:
    """Every face in ``faces`` must match a valid record of ``production`` and ``scope``.

    ``records``: ids that must also be valid; ``model_rights``: the rights block of a model
    (its model.json): the identities it was trained on must be valid for ``scope`` too, and a
    model trained under an override (or before identity binding) needs an override here.
    Returns a ``Clearance`` listing the records relied on and, per record, how many faces
    matched and the worst distance; raises ``NotCleared`` naming the first face that matches
    no valid record (and how many more), with the command that fixes it. ``override``: a
    reason to go on anyway, recorded (who, when, why, what was missing).
    """
    from ..identity import get_embedder

    if scope not in SCOPES:
        raise RightsError(f"unknown rights scope {scope!r}", hint=f"use one of {', '.join(SCOPES)}")
    if not production:
        raise RightsError("no production given for the rights check", hint="set production in machinima.toml or the take's slate")
    st = store if isinstance(store, RightsStore) else RightsStore(store)
    day = _parse_date(on, "date", "require_cleared()") if on is not None else today()
    emb = get_embedder()
    cands, notes = _candidates(st, production, scope, day, emb.method)
    clearance = Clearance(production, scope, [], checked_on=day.isoformat())
    problems: list[Problem] = []
    matched: dict[str, dict[str, Any]] = {}
    n_faces = 0
    for face in faces:
        n_faces += 1
        if face.embedding is None:
            if face.image is None or face.box is None:
                continue
            face.embedding = emb.embed(face.image(), face.box)
        dists = sorted(((min(emb.distance(face.embedding, ref) for ref in c.refs), i) for i, c in enumerate(cands)))
        # the nearest valid record within the threshold wins; else explain the nearest record
        valid = [(d, i) for d, i in dists if d < emb.threshold and not cands[i].why_not]
        best_d, best_i = (valid or dists or [(float("inf"), -1)])[0]
        best = cands[best_i] if best_i >= 0 else None
        if best is not None and best_d < emb.threshold and not best.why_not:
            m = matched.setdefault(best.record.id, {"record": best.record.id, "subject": best.record.subject, "faces": 0,
                                                    "max_distance": 0.0, "method": emb.method, "groups": []})
            m["faces"] += 1
            if face.group.startswith("track ") and face.group not in m["groups"]:  # which tracks of a merge are this person
                m["groups"].append(face.group)
            m["max_distance"] = round(max(m["max_distance"], best_d), 3)
            if best.record.id not in clearance.record_ids:
                clearance.records.append(best.record)
            continue
        if best is not None and best_d < emb.threshold:
            msg = f"{face.where}: the face matches record {best.record.id!r} ({best_d:.2f}), which {best.why_not}"
            problems.append(Problem(face.where, "record", msg, best.record.id))
        else:
            near = f" (nearest: {best.record.id!r} at {best_d:.2f}; same person needs < {emb.threshold})" if best else ""
            problems.append(Problem(face.where, "unknown-face", f"{face.where}: a face that matches no rights record{near}"))
    needed = list(records)
    if model_rights is not None:
        ids = [r.get("id") for r in model_rights.get("records", []) if r.get("id")]
        if model_rights.get("override") or not model_rights.get("identities"):
            ov = model_rights.get("override") or {}
            why = f"under a rights override ({ov.get('reason')})" if ov else "without identity-bound records"
            problems.append(Problem("model", "model", f"the face model was trained {why}: the face it puts in is not cleared"))
        needed += ids
    for rid in dict.fromkeys(needed):
        rec = st.get(rid)
        why = "does not exist" if rec is None else (st.signature_of(rec).reason() or rec.status(production, scope, day))
        if why:
            problems.append(Problem(rid, "record", f"record {rid!r} (the identity the model was trained on) {why}", rid))
        elif rid not in clearance.record_ids:
            clearance.records.append(rec)
    clearance.identities = list(matched.values())
    clearance.subjects = [m["subject"] for m in matched.values()]
    if problems:
        if override:
            clearance.override = make_override(override, problems)
            return clearance
        first = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        weak = " [mediapipe mesh mode: install machinima[identity] for dlib's network]" if emb.weak else ""
        extra = f"; {notes[0]}" if notes else ""
        raise NotCleared(f"{scope} not cleared for production {production!r} in {what}: {first.message}{more}{extra}{weak}",
                         hint=_add_hint(production, "NAME", scope, st) if first.reason == "unknown-face" else
                         f"renew or fix record {first.record_id!r} (machinima rights add ... --id {first.record_id} --replace), "
                         "or pass an override reason for your own test material",
                         problems=problems)
    return clearance


def reference_identity(photos: Sequence[str | Path], *, methods: Sequence[str] | None = None) -> dict[str, Any]:
    """The ``identity`` block of a person's record: each reference photo's hash and box, and its
    face's embedding by every method available here (dlib, and the mesh fallback), so the
    record clears the same face wherever it is checked. A photo must show one face: a photo
    with several is refused (crop it), since it would bind the record to a stranger too."""
    import hashlib

    from ..identity import available, get_embedder
    from ..imageseq import ImageSeqError, read_image

    methods = list(methods) if methods is not None else available()
    if not methods:
        raise RightsError("no identity network is available to bind the record to the face",
                          hint="pip install 'machinima[identity]' (dlib) or 'machinima[faces]' (mediapipe, weaker)")
    if not photos:
        raise RightsError("a person's record needs at least one reference photo of their face", hint="--photo FACE.jpg (repeat for more)")
    block: dict[str, Any] = {"photos": [], "embeddings": {m: [] for m in methods}}
    for photo in photos:
        p = Path(photo)
        try:
            img = read_image(p)
        except ImageSeqError as exc:
            raise RightsError(f"cannot read the reference photo {p}: {exc}") from None
        if img.dtype != np.uint8:
            raise RightsError(f"{p}: a reference photo must be an 8-bit picture (PNG or JPEG)")
        for m in methods:
            emb = get_embedder(m)
            faces = emb.find(img)
            if not faces:
                raise RightsError(f"no face found in the reference photo {p} ({m})", hint="use a clear, frontal photo of the person, face at least 80 px high")
            if len(faces) > 1:
                raise RightsError(f"the reference photo {p} shows {len(faces)} faces", hint="crop it to the person being cleared")
            block["embeddings"][m].append([round(float(v), 6) for v in emb.embed(img, faces[0].box)])
            if m == methods[0]:
                block["photos"].append({"name": p.name, "sha256": hashlib.sha256(p.read_bytes()).hexdigest(),
                                        "box": [round(float(v), 1) for v in faces[0].box], "method": m})
    return block

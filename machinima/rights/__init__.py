"""Rights records: only faces and material the production has cleared are used.

A *rights record* says that a person (or a dataset, faceset or piece of footage) may be used
by one production for some purposes (scopes) until a date, who granted it, and the hash of
the signed consent document. A person's record is bound to their face: it holds identity
embeddings of their reference photos (``machinima.identity``). Every record is signed with the
production's key when it is added; an edited or foreign record clears nothing. Records live as
one JSON file each in the project's rights store::

    <project>/rights/<record-id>.json      (default: <takes-root>/../rights/)
    # machinima.toml
    [rights]
    store = "rights"                         # relative to the project folder

The check every step that uses a face calls (face-model training, face merge, lip re-sync,
LoRA training; inside the library functions, so Python and the CLI enforce the same rule)::

    from machinima import rights

    clearance = rights.require_cleared(production, "face_replacement", rights.faces_in_tracks(read, tracks))
    # -> Clearance(records=[...], identities=[...]); raises rights.NotCleared naming the frame
    #    whose face matches no valid record, and the command that fixes it
    step.set_rights(clearance)            # listed in params.json and every output's manifest

    # one's own test material: say so; it is written into the provenance and every manifest,
    # and `verify` and `rights audit` report (and fail on) it
    clearance = rights.require_cleared(production, "training", faces, override="my own face, test run")

``require`` / ``require_items`` check by record id or subject name: for material that is not
a face (a dataset of styles, footage rights); a typed name never clears a face.

Scopes: ``training`` (train a face model or LoRA on the subject), ``face_replacement`` (merge
the face into footage), ``voice`` (use or synthesize the voice), ``lip_sync`` (re-sync the
mouth).

Stored type: ``{"schema": "machinima.rights-record", "version": 2, ...}``; upgrades are
registered steps (``records._UPGRADES``; version 1 records upgrade to unsigned records
without an identity, which clear no face).

Errors (all ``RightsError``, a ``MachinimaError``)::

    RightsError
    ├── NotCleared          a face or subject without a valid record (says which, where and why)
    ├── RecordFormatError   a record file that cannot be read (names the file and field)
    └── DisclosureError     signing / watermark / certificate problems (machinima.provenance)

A face-swap merge's output carries the merge's clearance (``inherit``): a later step reading
the merge step's signed frames (``rights.require_cleared_inheriting``) accepts the faces inside
the merge's tracked face regions by the merge's records (still valid for its own scope today),
and records that it inherited them; frames copied elsewhere inherit nothing.

Modules: ``records`` (the record), ``store`` (the folder, signing), ``require`` (by id),
``faces`` (by face), ``inherit`` (a merge's clearance, passed on to the steps reading it). Only the standard library and numpy are imported here; dlib, mediapipe
and cryptography load when a check runs.
"""

from __future__ import annotations

from .errors import DisclosureError, NotCleared, RecordFormatError, RightsError
from .faces import FaceSample, faces_in_collection, faces_in_frames, faces_in_tracks, reference_identity, require_cleared
from .inherit import find_inheritance, require_cleared_inheriting, swap_block
from .records import KINDS, SCHEMA, SCOPES, VERSION, RightsRecord, _parse_date, document_hash, today, upgrade
from .require import Clearance, Problem, continued_override, free_record_id, make_override, merge_provenance, provenance_of, require, require_items
from .store import RightsStore, default_store_dir

__all__ = [
    "KINDS", "SCHEMA", "SCOPES", "VERSION", "Clearance", "continued_override", "DisclosureError", "FaceSample", "NotCleared", "Problem",
    "RecordFormatError", "RightsError", "RightsRecord", "RightsStore", "default_store_dir", "document_hash", "faces_in_collection",
    "faces_in_frames", "faces_in_tracks", "free_record_id", "make_override", "merge_provenance", "provenance_of", "require",
    "reference_identity", "require_items", "require_cleared", "today", "upgrade", "_parse_date", "find_inheritance",
    "require_cleared_inheriting", "swap_block",
]

"""Is the merged face the source person, and no longer the destination? dlib's face embeddings
(``faceswap.identity.IdentityMeter``; same person below 0.6) of each merged frame, taken at the
destination face's own landmarks, against the source's mean embedding and against the same
frame before the merge.

Beside a trained model, two trivial merges give the scale in the same run: no swap at all
(distance to the destination 0, to the source what the two people differ by) and pasting the
source's own photo, aligned (``faceswap.truth.FixedFace``), through the same merge.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .errors import NoFaceError


@dataclass
class IdentityFigures:
    to_source: float
    to_destination: float
    per_frame: list[tuple[float, float]] = field(default_factory=list)

    def to_doc(self) -> dict[str, float]:
        return {"to_source": round(self.to_source, 4), "to_destination": round(self.to_destination, 4)}


def _biggest_landmarks(backend, image: np.ndarray, what: str) -> np.ndarray:
    faces = backend.detect(image)
    if not faces:
        raise NoFaceError(f"no face found in {what}")
    return max(faces, key=lambda f: f.size).landmarks


def source_embedding(meter, backend, images: list[np.ndarray]) -> np.ndarray:
    """The mean dlib embedding of the biggest face in each source image."""
    return np.mean([meter.embedding(img, _biggest_landmarks(backend, img, f"source image {i}")) for i, img in enumerate(images)], axis=0)


def identity_figures(meter, backend, merged: list[np.ndarray], originals: list[np.ndarray], source: np.ndarray) -> IdentityFigures:
    """Mean distances merged -> source and merged -> destination (the frame before the merge)."""
    rows = []
    for i, (m, o) in enumerate(zip(merged, originals)):
        lm = _biggest_landmarks(backend, o, f"destination frame {i}")
        em = meter.embedding(m, lm)
        rows.append((meter.distance(em, source), meter.distance(em, meter.embedding(o, lm))))
    arr = np.array(rows)
    return IdentityFigures(float(arr[:, 0].mean()), float(arr[:, 1].mean()), [tuple(map(float, r)) for r in rows])


def merge_and_measure(clip, out, meter, backend, source: np.ndarray, *, model=None, swapper=None, options=None,
                      override: str, rights_store) -> IdentityFigures:
    """Merge ``model`` (or ``swapper``) into the image folder ``clip`` -> ``out`` and measure the
    merged frames against the source embedding and against the frames of ``clip``."""
    from machinima.imageseq import list_frames, read_image

    from .merge import merge

    merge(clip, model, out=out, options=options, swapper=swapper, override=override, production="identity-check",
          rights_store=rights_store, video=False, progress=False)
    merged = [read_image(p) for _, p in sorted(list_frames(out / "rgb").items())]
    originals = [read_image(p) for _, p in sorted(list_frames(clip).items())]
    return identity_figures(meter, backend, merged, originals, source)

"""A post step's disclosure outside its frame loop: which disclosure a step folder has (the live
``PostStep``'s, else the one its params.json describes), its movie and stills disclosed like its
frames, and which outputs get a watermark and a manifest. Kept apart from ``poststep`` (the loop)
to keep both small; ``poststep`` re-exports all of it.
"""

from __future__ import annotations

import json
import weakref
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from .imageseq import write_image
from .stepfiles import write_frame_bytes as _write_bytes


_live: "weakref.WeakValueDictionary[Path, Any]" = weakref.WeakValueDictionary()  # out_dir -> the live PostStep

# x264 preset of every step movie, disclosed or not (a review copy of the step's frames, which
# are the step's output; deliveries have their own settings in ``delivery``). Why not x264's
# default (medium): at medium, coding the watermark's texture cost x264 +25-30 % on the
# composite's frames (the demo set at 1080p, crf 18), the largest part of disclosure's overhead
# on the whole step; at faster a marked movie costs x264 no more than an unmarked one, the
# unmarked movie costs what it did at medium, and the mark read back from the coded movie is
# within 0.01 confidence of medium's at 256, 512 and 1080 px. Not veryfast: it loses 0.1-0.15
# confidence on small frames (a 256-px lip-sync clip fell under the threshold).
# Figures: docs/performance.md, issue 24.
MOVIE_PRESET = "faster"


def sequence_manifest_id(disclosure: Any, step_id: str) -> str:
    """The manifest id every QOI frame of step ``step_id`` is marked with (same params, same id),
    and the id its movie's mark keeps."""
    return disclosure.frame_manifest_id(f"{step_id}/sequence")


def _disclosure_of(folder: Path) -> Any:
    """The disclosure of the step whose folder is ``folder``: the live ``PostStep``'s, else the
    one its params.json describes; None under a recorded "off" decision."""
    step = _live.get(folder.resolve())
    if step is not None:
        return step.disclosure
    from . import provenance

    try:
        doc = json.loads((folder / "params.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        doc = {}
    decision = provenance.read_decision(provenance.decision_home(folder))
    if decision is not None and not decision.disclose and decision.honoured:
        return None
    d = provenance.disclosure_for_step(folder, str(doc.get("step") or "picture"), rights=doc.get("rights"), inputs=doc.get("inputs"))
    d.params_hash = str(doc.get("params_hash") or "")
    if (doc.get("frames") or {}).get("rgb8") == "qoi":
        d.sequence_id = sequence_manifest_id(d, folder.name)
    return d


def write_video(path: str | Path, frames: Iterable[np.ndarray], fps: float | str = 24, *, crf: int = 18,
                before_signing: Callable[[Path], None] | None = None) -> Path:
    """A post step's movie (``<step folder>/<name>.mp4``), disclosed like the step's frames: the
    drop-in for ``imageseq.write_video`` at the end of every post step."""
    return _video(_disclosure_of(Path(path).parent), path, frames, fps, crf, before_signing)


def _video(disclosure: Any, path: str | Path, frames: Iterable[np.ndarray], fps: float | str, crf: int,
           before_signing: Callable[[Path], None] | None) -> Path:
    if disclosure is not None:
        return disclosure.write_video(path, frames, fps, crf=crf, before_signing=before_signing, preset=MOVIE_PRESET)
    from .imageseq import write_video as encode  # a recorded "off" decision: plain (the same coding)

    out = encode(path, frames, fps, options={"crf": str(crf), "preset": MOVIE_PRESET})
    if before_signing is not None:
        before_signing(out)
    return out


def write_still(path: str | Path, image: np.ndarray) -> Path:
    """A picture a step writes beside its frames (a QC contact sheet, a preview), disclosed like
    them: the drop-in for ``imageseq.write_image`` there. Masks and float data pass unchanged."""
    path = Path(path)
    d = _disclosure_of(path.parent)
    if d is None or not _discloses(image) or path.suffix.lower() not in (".png", ".jpg", ".jpeg"):
        return write_image(path, image)
    _write_bytes(path, d.encode(image, path.name, ext=path.suffix.lower()))
    return path


def _discloses(img: Any) -> bool:
    """Outputs that get watermark + manifest: 8-bit RGB(A) pictures (not masks, not EXR data)."""
    a = np.asarray(img)
    return a.dtype == np.uint8 and a.ndim == 3 and a.shape[2] in (3, 4)

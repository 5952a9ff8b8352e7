"""Flicker QC of a finished stylize step: warp error between consecutive outputs + contact sheet.

For each pair of consecutive output frames inside one segment (never across a cut; with passes
every Nth frame, consecutive frames that exist, N apart), the
previous output is warped into the current frame with the flow of the *input* frames, and the
mean absolute difference over pixels visible in both is that frame's flicker (0..255). The
report gives mean and p95 per shot and overall, and the same measure on the input itself for
reference (what the footage's own motion leaves after warping). Written to ``qc.json`` and
``contact.png`` in the step folder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from machinima.fsutil import atomic_write_json
from machinima.imageseq import contact_sheet, list_frames, read_image
from machinima.poststep import write_still  # the QC sheet is synthetic pictures too: disclosed
from machinima.sparse import describe, step_of

from . import flow as F
from .errors import StylizeError
from .sources import FolderSource, PassSource, Source

OUTPUT = "frames"


def _source(doc: dict[str, Any]) -> Source:
    src = doc.get("inputs", {}).get("source", {})
    if src.get("kind") == "passes":
        return PassSource(src["path"])
    if src.get("kind") == "folder":
        return FolderSource(src["path"])
    raise StylizeError(f"this step's source ({src.get('kind', '?')}) cannot be reopened for QC")


def flicker(outputs: dict[int, np.ndarray] | Any, inputs: Any, segments: list[list[int]], *, frames: list[int] | None = None) -> dict[str, Any]:
    """Flicker stats from callables/dicts ``outputs[f]`` and ``inputs[f]`` over segments [[a, b]...].

    ``frames``: the frames that exist (default: every frame of each segment). With passes every
    Nth frame the pairs are consecutive frames that exist (``gap`` frames apart), never across a cut.
    """
    per_shot, all_err, all_in, gaps = [], [], [], set()
    for a, b in segments:
        errs, ins = [], []
        seg = [f for f in frames if a <= f <= b] if frames is not None else list(range(a, b + 1))
        for f0, f1 in zip(seg, seg[1:]):
            try:
                o0, o1, i0, i1 = outputs[f0], outputs[f1], inputs[f0], inputs[f1]
            except KeyError:
                continue
            errs.append(F.warp_error(o0, o1, i0, i1))
            ins.append(F.warp_error(i0, i1, i0, i1))
            gaps.add(f1 - f0)
        if errs:
            per_shot.append({"frames": [a, b], "pairs": len(errs), "mean": round(float(np.mean(errs)), 3),
                             "p95": round(float(np.percentile(errs, 95)), 3), "input_mean": round(float(np.mean(ins)), 3)})
            all_err += errs
            all_in += ins
    return {"pairs": len(all_err), "mean": round(float(np.mean(all_err)), 3) if all_err else None,
            "p95": round(float(np.percentile(all_err, 95)), 3) if all_err else None,
            "input_mean": round(float(np.mean(all_in)), 3) if all_in else None, "shots": per_shot,
            "gap": max(gaps) if gaps else None}


def _join_strided(segs: list[list[int]], frames: list[int], shots: list[dict[str, Any]]) -> list[list[int]]:
    """The planner splits segments wherever frames skip; passes every Nth frame skip everywhere.
    Segments N apart (the frames' own step) are one stretch of footage again, except across a
    shot of the look."""
    stride = step_of(frames)
    if not stride or stride == 1 or not segs:
        return segs
    starts = {int(s["frames"][0]) for s in shots}
    out = [list(segs[0])]
    for a, b in segs[1:]:
        if a - out[-1][1] == stride and not any(out[-1][1] < s <= a for s in starts):
            out[-1][1] = b
        else:
            out.append([a, b])
    return out


class _Lazy(dict):
    def __init__(self, getter: Any, keys: list[int]) -> None:
        super().__init__()
        self._get, self._keys = getter, set(keys)

    def __missing__(self, k: int) -> np.ndarray:
        if k not in self._keys:
            raise KeyError(k)
        if len(self) > 4:
            self.pop(next(iter(self)))
        v = self._get(k)
        self[k] = v
        return v


def qc_step(step_dir: str | Path, *, sheet_frames: int = 12) -> dict[str, Any]:
    step_dir = Path(step_dir)
    pj = step_dir / "params.json"
    if not pj.exists():
        raise StylizeError(f"no stylize step at {step_dir} (no params.json)", hint="give the step folder, e.g. TAKE/post/stylize-mylook")
    doc = json.loads(pj.read_text())
    try:
        files = list_frames(step_dir / OUTPUT)
    except Exception:
        files = {}
    if not files:
        raise StylizeError(f"{step_dir} has no finished frames yet", hint="run `machinima stylize run TAKE --look LOOK` first")
    source = _source(doc)
    segs = doc.get("inputs", {}).get("plan", {}).get("segments") or [[min(files), max(files)]]
    keyframes = set(doc.get("inputs", {}).get("plan", {}).get("keyframe_list", []))
    outs = _Lazy(lambda f: read_image(files[f]), list(files))
    have = set(source.frames)
    existing = sorted(f for f in files if f in have)
    segs = _join_strided(segs, existing, doc.get("inputs", {}).get("shots", []))
    ins = _Lazy(source.image, existing)
    report = flicker(outs, ins, segs, frames=existing)
    report["frames_note"] = describe(existing)  # e.g. every 2nd frame: pairs are 2 frames apart
    shots = doc.get("inputs", {}).get("shots", [])
    for seg in report["shots"]:  # name each segment after the look's shot it lies in
        a = seg["frames"][0]
        seg["shot"] = next((s["name"] for s in shots if s["frames"][0] <= a <= s["frames"][1]), "")
    report["step"] = step_dir.name
    report["engine"] = doc.get("params", {}).get("engine", {}).get("engine")
    frames = sorted(files)
    pick = sorted({frames[i] for i in np.linspace(0, len(frames) - 1, min(sheet_frames, len(frames))).round().astype(int)})
    sheet = contact_sheet([read_image(files[f])[..., :3] for f in pick], columns=4, width=1280,
                          labels=[f"{f}{' K' if f in keyframes else ''}" for f in pick])
    write_still(step_dir / "contact.png", sheet)
    report["contact_sheet"] = str(step_dir / "contact.png")
    atomic_write_json(step_dir / "qc.json", report)
    return report

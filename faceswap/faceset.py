"""Facesets: aligned face images in a ``machinima.collections`` folder (kind ``faceset``).

Collection info: ``face_type``, ``size``. Each item's ``meta``::

    landmarks          (68, 2) in the source frame's pixels
    aligned_landmarks  (68, 2) in the aligned image's pixels
    transform          2x3, source pixels -> aligned pixels
    face_type, size, yaw, pitch (rough, [-1, 1]), blur (variance of the Laplacian), dhash, track

Curating is most of the work, so: ``sort_faceset(path, by="blur"|"yaw"|"pitch"|"dupes")``
ranks faces (and tags the worst / the duplicates), ``filter_faceset`` drops them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from machinima.collections import Collection, CollectionError, Problem

from .errors import FacesetError

KIND = "faceset"
SORT_KEYS = ("blur", "yaw", "pitch", "dupes")
FEW_FACES = 20  # below this a model learns the pictures, not the face: training warns, sort --remove asks for --force


def create_faceset(path: str | Path, *, face_type: str, size: int) -> Collection:
    p = Path(path)
    try:
        col = Collection.create(p, KIND, info={"face_type": face_type, "size": int(size)}, exist_ok=True)
    except CollectionError as exc:
        raise FacesetError(str(exc)) from None
    info = col.info
    if info.get("face_type") != face_type or int(info.get("size", size)) != int(size):
        col.close()
        raise FacesetError(f"{p} holds {info.get('face_type')} faces at {info.get('size')} px, not {face_type} at {size}",
                           hint="extract into another folder, or use the same --face-type/--size")
    return col


def open_faceset(path: str | Path) -> Collection:
    try:
        col = Collection.open(path)
    except CollectionError as exc:
        raise FacesetError(str(exc), hint="make one with `machinima faceswap extract SRC --out FACESET`") from None
    if col.kind != KIND:
        col.close()
        raise FacesetError(f"{path} is a {col.kind!r} collection, not a faceset")
    return col


def blur_score(img: np.ndarray) -> float:
    """Sharpness: variance of the Laplacian of the grey image (higher = sharper)."""
    import cv2

    g = cv2.cvtColor(np.asarray(img, np.uint8), cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(g, cv2.CV_64F).var())


def dhash(img: np.ndarray, bits: int = 8) -> int:
    """64-bit difference hash: near-identical faces differ in a few bits."""
    import cv2

    g = cv2.cvtColor(np.asarray(img, np.uint8), cv2.COLOR_RGB2GRAY)
    s = cv2.resize(g, (bits + 1, bits), interpolation=cv2.INTER_AREA)
    diff = (s[:, 1:] > s[:, :-1]).reshape(-1)
    return int(sum(1 << i for i, v in enumerate(diff) if v))


@dataclass
class SortResult:
    by: str
    order: list[tuple[int, float]] = field(default_factory=list)  # (item id, value), best first
    flagged: list[int] = field(default_factory=list)  # tagged (blurry / extreme pose / dupe)
    problems: list[Problem] = field(default_factory=list)


def sort_faceset(path: str | Path, by: str = "blur", *, dupe_bits: int = 6, blur_quantile: float = 0.1,
                 pose_limit: float = 0.6) -> SortResult:
    """Rank the faceset and tag what to look at: ``blurry`` (the blurriest ``blur_quantile``),
    ``extreme-pose`` (|yaw| or |pitch| above ``pose_limit``), ``dupe`` (dhash within
    ``dupe_bits`` of an earlier, sharper face). Writes ``meta.rank_<by>``; files stay."""
    if by not in SORT_KEYS:
        raise FacesetError(f"cannot sort by {by!r}", hint=f"use one of {', '.join(SORT_KEYS)}")
    col = open_faceset(path)
    res = SortResult(by)
    try:
        vals: dict[int, dict[str, Any]] = {}
        for it, img in col.iter_images(problems=res.problems):
            m = dict(it.meta)
            if "blur" not in m:
                m["blur"] = blur_score(img)
            if "dhash" not in m:
                m["dhash"] = str(dhash(img))
            vals[it.id] = m
        tag = {"blur": "blurry", "yaw": "extreme-pose", "pitch": "extreme-pose", "dupes": "dupe"}[by]
        if by == "blur":
            order = sorted(vals, key=lambda i: -vals[i]["blur"])
            res.order = [(i, vals[i]["blur"]) for i in order]
            n_bad = int(np.floor(len(order) * blur_quantile))
            res.flagged = order[len(order) - n_bad:] if n_bad else []
        elif by in ("yaw", "pitch"):
            order = sorted(vals, key=lambda i: vals[i].get(by, 0.0))
            res.order = [(i, float(vals[i].get(by, 0.0))) for i in order]
            res.flagged = [i for i in order if abs(float(vals[i].get(by, 0.0))) > pose_limit]
        else:
            order = sorted(vals, key=lambda i: -vals[i]["blur"])  # keep the sharpest of each group
            kept: list[int] = []
            for i in order:
                h = int(vals[i]["dhash"])
                if any(bin(h ^ int(vals[k]["dhash"])).count("1") <= dupe_bits for k in kept):
                    res.flagged.append(i)
                else:
                    kept.append(i)
            res.order = [(i, float(vals[i]["blur"])) for i in kept + res.flagged]
        for rank, (i, _v) in enumerate(res.order):
            it = col.get(i)
            tags = [t for t in it.tags if t != tag] + ([tag] if i in res.flagged else [])
            col.update(i, tags=tags, meta={f"rank_{by}": rank, "blur": vals[i]["blur"], "dhash": vals[i]["dhash"]})
    finally:
        col.close()
    return res


def filter_faceset(path: str | Path, tags: tuple[str, ...] = ("dupe", "blurry")) -> int:
    """Remove items carrying any of ``tags`` (their files too). Returns how many."""
    col = open_faceset(path)
    try:
        gone = [it.id for it in col.items() if set(it.tags) & set(tags)]
        for i in gone:
            col.remove(i)
        return len(gone)
    finally:
        col.close()


@dataclass
class TrainingSet:
    images: np.ndarray  # (N, res, res, 3) uint8
    landmarks: np.ndarray  # (N, 68, 2) in res pixels
    face_type: str
    item_ids: list[int]
    problems: list[Problem]


def load_training_set(path: str | Path, res: int, *, min_items: int = 1) -> TrainingSet:
    """Every readable face resized to ``res``; missing/corrupt files are listed in ``problems``
    and skipped (the run goes on); fewer than ``min_items`` readable faces is an error."""
    import cv2

    col = open_faceset(path)
    try:
        face_type = col.info.get("face_type", "whole")
        imgs, lms, ids, problems = [], [], [], []
        for it, img in col.iter_images(problems=problems):
            alm = it.meta.get("aligned_landmarks")
            if alm is None:
                problems.append(Problem("corrupt", it.file, it.id, "no aligned_landmarks in the index"))
                continue
            s = res / img.shape[0]
            if img.shape[:2] != (res, res):
                img = cv2.resize(img, (res, res), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
            imgs.append(img[..., :3])
            lms.append(np.asarray(alm, np.float64) * s)
            ids.append(it.id)
    finally:
        col.close()
    if len(imgs) < min_items:
        raise FacesetError(f"{path} has {len(imgs)} readable faces (need {min_items})" + (f"; {len(problems)} bad: {problems[0]}" if problems else ""),
                           hint="extract more faces or fix the files `verify` lists")
    return TrainingSet(np.stack(imgs), np.stack(lms), face_type, ids, problems)

"""Micro-datasets: import, filter and caption images in the hub's collection format.

A dataset is a ``machinima.collections`` folder of kind ``"dataset"``::

    <dataset>/
      index.sqlite            items: file, sha256, size, source (file | video + frame | take + pass + frame),
                              crop box, tags, caption, rights record ids, meta (sharpness, brightness, dhash)
      images/000001.png       the images
      images/000001.txt       kohya side-car caption (what trainers, A1111 and ComfyUI tools read)

The side-car ``.txt`` is the caption of record (edit it with any editor; ``machinima dataset
caption --sync`` copies edits back into the index); the index keeps a copy for search.

Import (``import_folder``, ``import_video``, ``import_take``) runs every candidate image through
``Filters``: too blurry (variance of the Laplacian at 256 px), badly exposed (mean luma or clipped
share), or a near-duplicate (64-bit difference hash within ``dup_distance`` bits of an image
already kept, in this import or earlier ones). Each refusal is reported with its reason.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from machinima.collections import Collection, CollectionError, Item, Source
from machinima.fsutil import atomic_write_text

from .errors import CaptionerError, DatasetError, ImportSourceError

KIND = "dataset"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".exr")
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v")
DEFAULT_TEMPLATE = "photo of {trigger}, {caption}"


# --- opening ----------------------------------------------------------------------------------

def open_dataset(path: str | Path, *, create: bool = False, trigger: str | None = None) -> Collection:
    """Open (or create) a dataset folder; ``trigger`` is stored in the collection info."""
    path = Path(path)
    try:
        if create:
            ds = Collection.create(path, KIND, exist_ok=True, info={"trigger": trigger} if trigger else None)
        else:
            ds = Collection.open(path)
    except CollectionError as exc:
        raise DatasetError(str(exc.args[0]), hint="make one with `machinima dataset import SOURCE --out DATASET`"
                           if "not a collection" in str(exc.args[0]) else exc.hint) from None
    if ds.kind != KIND:
        kind = ds.kind
        ds.close()
        raise DatasetError(f"{path} is a {kind!r} collection, not a dataset")
    if trigger and ds.info.get("trigger") != trigger:
        ds.set_info(trigger=trigger)
    return ds


# --- measures and filters ---------------------------------------------------------------------

def _gray256(img: np.ndarray) -> np.ndarray:
    import cv2

    img = np.asarray(img)
    if img.dtype != np.uint8:
        img = np.clip(img * 255.0, 0, 255).astype(np.uint8)
    g = cv2.cvtColor(np.ascontiguousarray(img[..., :3]), cv2.COLOR_RGB2GRAY) if img.ndim == 3 else img
    h, w = g.shape
    s = 256.0 / min(h, w)
    if s < 1.0:
        g = cv2.resize(g, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    return g


def sharpness(img: np.ndarray) -> float:
    """Variance of the Laplacian on the image scaled to 256 px short side (higher = sharper)."""
    import cv2

    return float(cv2.Laplacian(_gray256(img), cv2.CV_64F).var())


def dhash(img: np.ndarray) -> int:
    """64-bit difference hash (9x8 gray thumbnail, left-right gradients)."""
    import cv2

    small = cv2.resize(_gray256(img), (9, 8), interpolation=cv2.INTER_AREA).astype(np.int16)
    bits = (small[:, 1:] > small[:, :-1]).flatten()
    return int(sum(1 << i for i, b in enumerate(bits) if b))


def measure(img: np.ndarray) -> dict[str, Any]:
    g = _gray256(img)
    return {"sharpness": round(sharpness(img), 3), "brightness": round(float(g.mean()) / 255.0, 4),
            "clipped": round(float(((g <= 3) | (g >= 252)).mean()), 4), "dhash": f"{dhash(img):016x}"}


@dataclass
class Filters:
    """Import filters; ``None`` turns one off."""

    min_sharpness: float | None = 40.0     # variance of the Laplacian at 256 px
    min_brightness: float | None = 0.08    # mean luma 0..1
    max_brightness: float | None = 0.92
    max_clipped: float | None = 0.5        # share of pixels at black or white
    dup_distance: int | None = 6           # Hamming distance of the 64-bit dhash

    def reason(self, m: dict[str, Any], kept_hashes: Iterable[int]) -> str | None:
        if self.min_brightness is not None and m["brightness"] < self.min_brightness:
            return f"too dark (brightness {m['brightness']:.2f} < {self.min_brightness})"
        if self.max_brightness is not None and m["brightness"] > self.max_brightness:
            return f"too bright (brightness {m['brightness']:.2f} > {self.max_brightness})"
        if self.max_clipped is not None and m["clipped"] > self.max_clipped:
            return f"badly exposed ({m['clipped']:.0%} of pixels clipped)"
        if self.min_sharpness is not None and m["sharpness"] < self.min_sharpness:
            return f"blurry (sharpness {m['sharpness']:.1f} < {self.min_sharpness})"
        if self.dup_distance is not None:
            h = int(m["dhash"], 16)
            for k in kept_hashes:
                d = bin(h ^ k).count("1")
                if d <= self.dup_distance:
                    return f"near-duplicate (dhash distance {d} <= {self.dup_distance})"
        return None


@dataclass
class ImportReport:
    added: list[Item] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (what, why)

    def to_doc(self) -> dict[str, Any]:
        return {"added": len(self.added), "skipped": [{"source": s, "reason": r} for s, r in self.skipped]}


def _kept_hashes(ds: Collection) -> list[int]:
    return [int(it.meta["dhash"], 16) for it in ds.items() if it.meta.get("dhash")]


def _fit(img: np.ndarray, max_side: int | None) -> np.ndarray:
    import cv2

    img = np.asarray(img)
    if img.dtype != np.uint8:
        img = np.clip(img * 255.0, 0, 255).astype(np.uint8)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    img = np.ascontiguousarray(img[..., :3])
    if max_side and max(img.shape[:2]) > max_side:
        s = max_side / max(img.shape[:2])
        img = cv2.resize(img, (max(1, round(img.shape[1] * s)), max(1, round(img.shape[0] * s))), interpolation=cv2.INTER_AREA)
    return img


class FaceCropper:
    """Square crop around the most confident face (mediapipe's full-range face detector, inside
    the wheel), ``margin`` x the face's size, clipped to the image."""

    def __init__(self, margin: float = 2.2, min_score: float = 0.5) -> None:
        import mediapipe as mp

        self.margin = margin
        self._det = mp.solutions.face_detection.FaceDetection(model_selection=1, min_detection_confidence=min_score)

    def box(self, img: np.ndarray) -> tuple[list[int], float] | None:
        h, w = img.shape[:2]
        res = self._det.process(np.ascontiguousarray(img[..., :3]))
        if not res.detections:
            return None
        d = max(res.detections, key=lambda d: d.score[0])
        bb = d.location_data.relative_bounding_box
        cx, cy = (bb.xmin + bb.width / 2) * w, (bb.ymin + bb.height / 2) * h
        side = min(max(bb.width * w, bb.height * h) * self.margin, w, h)
        x0 = int(round(min(max(cx - side / 2, 0), w - side)))
        y0 = int(round(min(max(cy - side / 2, 0), h - side)))
        return [x0, y0, x0 + int(side), y0 + int(side)], float(d.score[0])

    def close(self) -> None:
        self._det.close()


def import_images(ds: Collection, candidates: Iterable[tuple[str, np.ndarray, Source]], *, filters: Filters | None = None,
                  rights: Iterable[str] = (), tags: Iterable[str] = (), max_side: int | None = 1536, crop: str | None = None,
                  crop_margin: float = 2.2, progress: Callable[[str], None] | None = None) -> ImportReport:
    """Add ``(label, image, source)`` candidates that pass the filters; report the rest.
    ``crop="face"``: keep a square around the face (its box in source pixels goes to the index);
    images without a face are skipped."""
    if crop not in (None, "face"):
        raise DatasetError(f"unknown crop {crop!r}", hint="use --crop face, or no crop")
    filters = filters or Filters()
    kept = _kept_hashes(ds)
    rep = ImportReport()
    rights, tags = list(rights), list(tags)
    cropper = FaceCropper(crop_margin) if crop == "face" else None
    try:
        for label, img, src in candidates:
            box = None
            meta: dict[str, Any] = {}
            if cropper is not None:
                found = cropper.box(_fit(img, None))
                if found is None:
                    rep.skipped.append((label, "no face found (--crop face)"))
                    continue
                box, meta["face_score"] = found
                img = np.asarray(img)[box[1]:box[3], box[0]:box[2]]
            img = _fit(img, max_side)
            m = measure(img)
            why = filters.reason(m, kept)
            if progress:
                progress(label)
            if why:
                rep.skipped.append((label, why))
                continue
            item = ds.add(img, source=src, box=box, tags=tags, rights=rights, meta={**m, **meta})
            kept.append(int(m["dhash"], 16))
            rep.added.append(item)
    finally:
        if cropper is not None:
            cropper.close()
    return rep


def folder_candidates(folder: str | Path) -> Iterator[tuple[str, np.ndarray, Source]]:
    """Images of a folder (sorted, recursive); an unreadable one raises ``ImportSourceError``."""
    from machinima.imageseq import ImageSeqError, read_image

    folder = Path(folder)
    if not folder.is_dir():
        raise ImportSourceError(f"{folder} is not a folder of images")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise ImportSourceError(f"no images in {folder}", hint=f"expected files ending in {', '.join(IMAGE_SUFFIXES)}")
    for p in files:
        try:
            img = read_image(p)
        except ImageSeqError:
            raise ImportSourceError(f"{p} is not a readable image (corrupt or truncated?)",
                                    hint="remove or re-export it and import again; nothing was added after the last good image") from None
        yield p.name, img, Source(kind="file", path=str(p.resolve()))


def _hist(img: np.ndarray) -> np.ndarray:
    import cv2

    hsv = cv2.cvtColor(cv2.resize(img, (64, 64), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2HSV)
    h = cv2.calcHist([hsv], [0, 1], None, [16, 8], [0, 180, 0, 256]).flatten()
    return h / max(1.0, h.sum())


def video_candidates(path: str | Path, *, every_s: float | None = 1.0, scene: float | None = None,
                     max_frames: int | None = None) -> Iterator[tuple[str, np.ndarray, Source]]:
    """Frames of a video: one every ``every_s`` seconds, or (``scene`` set) the first frame after
    each change whose colour-histogram distance (0..1, half the L1) passes ``scene``."""
    import av

    path = Path(path)
    if not path.is_file():
        raise ImportSourceError(f"video {path} does not exist")
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as exc:
        raise ImportSourceError(f"{path} is not a readable video: {exc}") from None
    with container:
        if not container.streams.video:
            raise ImportSourceError(f"{path} has no video stream")
        stream = container.streams.video[0]
        rate = float(stream.average_rate or stream.guessed_rate or 24)
        last_t: float | None = None
        last_h: np.ndarray | None = None
        n = 0
        for i, frame in enumerate(container.decode(stream)):
            t = float(frame.time) if frame.time is not None else i / rate
            img = frame.to_ndarray(format="rgb24")
            if scene is not None:
                h = _hist(img)
                take = last_h is None or 0.5 * float(np.abs(h - last_h).sum()) >= scene
                if take:
                    last_h = h
            else:
                take = last_t is None or t - last_t >= (every_s or 0) - 0.5 / rate
                if take:
                    last_t = t
            if take:
                yield f"{path.name}@{i}", img, Source(kind="video", path=str(path.resolve()), frame=i)
                n += 1
                if max_frames and n >= max_frames:
                    return


def take_candidates(take_dir: str | Path, *, pass_name: str = "rgb", every: int = 1) -> Iterator[tuple[str, np.ndarray, Source]]:
    """Frames of one pass of a take (``passes/<pass>/``), every Nth frame."""
    from machinima.imageseq import list_frames, read_image
    from machinima.take import Take

    try:
        take = Take.open(take_dir)
    except Exception as exc:  # noqa: BLE001 - TakeError and friends
        raise ImportSourceError(f"{take_dir} is not a readable take: {exc}") from None
    try:
        folder = Path(take.passes_dir(pass_name))
        take_id = str(getattr(take, "id", Path(take_dir).name))
    finally:
        close = getattr(take, "close", None)
        if close:
            close()
    frames = list_frames(folder) if folder.is_dir() else {}
    if not frames:
        raise ImportSourceError(f"take {take_dir} has no frames in pass {pass_name!r} ({folder})", hint="render the pass first")
    for f in sorted(frames)[:: max(1, every)]:
        yield f"{take_id}/{pass_name}@{f}", read_image(frames[f]), Source(kind="take", path=str(Path(take_dir).resolve()),
                                                                           frame=f, take=take_id, pass_name=pass_name)


# --- captions ---------------------------------------------------------------------------------

def caption_path(ds: Collection, item: Item) -> Path:
    return (ds.root / item.file).with_suffix(".txt")


def read_caption(ds: Collection, item: Item) -> str | None:
    p = caption_path(ds, item)
    return p.read_text(encoding="utf-8").strip() if p.exists() else None


def write_caption(ds: Collection, item: Item, text: str) -> None:
    text = " ".join(text.split())
    atomic_write_text(caption_path(ds, item), text + "\n")
    ds.update(item.id, caption=text)


def render_caption(template: str, *, trigger: str = "", caption: str = "", tags: Iterable[str] = ()) -> str:
    """Fill ``{trigger}``, ``{caption}``, ``{tags}``; empty parts leave no stray commas."""
    try:
        text = template.format(trigger=trigger, caption=caption, tags=", ".join(tags))
    except (KeyError, IndexError) as exc:
        raise DatasetError(f"caption template {template!r} uses an unknown field {exc}", hint="use {trigger}, {caption} and {tags}") from None
    text = re.sub(r"\s*,\s*(,\s*)+", ", ", text)
    return re.sub(r"\s+", " ", text).strip(" ,")


def caption_dataset(ds: Collection, *, template: str = DEFAULT_TEMPLATE, trigger: str | None = None, overwrite: bool = False,
                    captioner: Callable[[np.ndarray], str] | None = None) -> list[Item]:
    """Write side-car captions from the template (and the captioning model, if any) for items that
    have none (all items with ``overwrite``). Returns the items written."""
    trigger = trigger if trigger is not None else str(ds.info.get("trigger") or "")
    if "{trigger}" in template and not trigger:
        raise DatasetError("the caption template uses {trigger} but no trigger word is set",
                           hint="pass --trigger WORD (a rare token such as 'ohwx person')")
    done = []
    for it in list(ds.items()):
        if not overwrite and read_caption(ds, it) is not None:
            continue
        if not overwrite and it.caption:  # the index still has it (side-car deleted): restore, do not re-template
            write_caption(ds, it, it.caption)
            done.append(it)
            continue
        cap = ""
        if captioner is not None:
            cap = captioner(ds.load(it))
        tags = [t for t in it.tags if t not in ("src", "dst")]
        write_caption(ds, it, render_caption(template, trigger=trigger, caption=cap, tags=tags))
        done.append(it)
    if trigger:
        ds.set_info(trigger=trigger, template=template)
    return done


def sync_captions(ds: Collection) -> int:
    """Copy side-car edits back into the index; returns how many changed."""
    n = 0
    for it in ds.items():
        cap = read_caption(ds, it)
        if cap is not None and cap != it.caption:
            ds.update(it.id, caption=cap)
            n += 1
    return n


def load_captioner(path: str | Path, *, max_new_tokens: int = 40) -> Callable[[np.ndarray], str]:
    """A transformers image-to-text model from a local folder (BLIP, GIT, Florence...). Never downloads."""
    path = Path(path)
    if not (path / "config.json").exists():
        raise CaptionerError(f"no captioning model at {path} (no config.json)",
                             hint="put a transformers image-to-text model folder there (e.g. a BLIP captioning model); nothing is downloaded")
    try:
        from PIL import Image
        from transformers import AutoModelForImageTextToText, AutoProcessor

        processor = AutoProcessor.from_pretrained(str(path), local_files_only=True)
        model = AutoModelForImageTextToText.from_pretrained(str(path), local_files_only=True).eval()
    except Exception as exc:  # noqa: BLE001 - any loader failure is the model folder's problem
        raise CaptionerError(f"cannot load the captioning model at {path}: {str(exc)[:200]}") from None

    def caption(img: np.ndarray) -> str:
        import torch

        inputs = processor(images=Image.fromarray(np.asarray(img)[..., :3]), return_tensors="pt")
        with torch.no_grad():
            out = model.generate(**inputs, max_new_tokens=max_new_tokens)
        return processor.batch_decode(out, skip_special_tokens=True)[0].strip()

    return caption


# --- checks before training -------------------------------------------------------------------

@dataclass
class TrainEntry:
    item: Item
    path: Path
    caption: str


def training_entries(ds: Collection, *, decode: bool = True) -> list[TrainEntry]:
    """Every item with its image path and side-car caption; raises ``DatasetError`` listing every
    problem (corrupt or missing image, image without caption, caption without image). Reads only."""
    from machinima.imageseq import ImageSeqError, read_image

    problems: list[str] = []
    entries: list[TrainEntry] = []
    known = set()
    for it in ds.items():
        p = ds.root / it.file
        known.add(p.with_suffix(".txt").resolve())
        if not p.exists():
            problems.append(f"{it.file}: image file is missing")
            continue
        if decode:
            try:
                read_image(p)
            except ImageSeqError:
                problems.append(f"{it.file}: not a readable image (corrupt or truncated)")
                continue
        cap = read_caption(ds, it)
        if cap is None or not cap.strip():
            problems.append(f"{it.file}: image has no caption ({Path(it.file).with_suffix('.txt').as_posix()} missing or empty)")
            continue
        entries.append(TrainEntry(it, p, cap))
    for txt in sorted((ds.root / "images").rglob("*.txt")):
        if txt.resolve() not in known:
            problems.append(f"{txt.relative_to(ds.root).as_posix()}: caption file has no image in the dataset")
    if problems:
        shown = "; ".join(problems[:6]) + (f"; and {len(problems) - 6} more" if len(problems) > 6 else "")
        raise DatasetError(f"dataset {ds.root} is not ready for training: {shown}", problems=problems,
                           hint="run `machinima dataset caption DATASET` for missing captions; remove stray .txt files or "
                                "corrupt images (`machinima dataset report --check` lists them); nothing was changed")
    if not entries:
        raise DatasetError(f"dataset {ds.root} is empty", hint="import images with `machinima dataset import SOURCE --out DATASET`")
    return entries


def dataset_hash(entries: Iterable[TrainEntry]) -> str:
    """SHA-256 over (image sha256, caption) pairs in file order: changes when any image or caption does."""
    h = hashlib.sha256()
    for e in sorted(entries, key=lambda e: e.item.file):
        h.update(json.dumps([e.item.file, e.item.sha256, e.caption]).encode())
    return h.hexdigest()

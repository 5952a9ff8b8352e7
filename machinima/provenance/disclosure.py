"""What a post step applies to each output: label, watermark, signed manifest.

Every output gets a fresh manifest id (``new_manifest_id``) before its pixels are marked, so the
watermark names the manifest signed into the same file; a video gets one id, and every frame
of it is marked with that id when it is encoded, except a step movie made from QOI frames: it
keeps their mark (the step's sequence manifest id) and its signed manifest says so
(``Disclosure.write_video``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from ..rights import DisclosureError
from .certs import SigningIdentity
from .manifest import MIME, build_manifest, mime_of, new_manifest_id, png_single_idat, sign_bytes, sign_file
from .watermark import WM_SCHEME, WM_STRENGTH, WatermarkMemory, can_watermark, embed_watermark, production_tag


def burn_label(img: np.ndarray, text: str = "AI-modified") -> np.ndarray:
    """A visible label in the lower right corner (white on a dark box), scaled to the frame."""
    import cv2

    out = np.ascontiguousarray(np.array(img, copy=True))
    h, w = out.shape[:2]
    scale = max(0.4, min(w, h) / 900)
    thick = max(1, int(round(scale * 2)))
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    pad = int(8 * scale) + 2
    x0, y0 = max(0, w - tw - 3 * pad), max(0, h - th - base - 3 * pad)
    x1, y1 = min(w, x0 + tw + 2 * pad), min(h, y0 + th + base + 2 * pad)
    roi = out[y0:y1, x0:x1, :3]
    out[y0:y1, x0:x1, :3] = (roi.astype(np.float32) * 0.35).astype(np.uint8)
    color = (255, 255, 255) if out.dtype == np.uint8 else (1.0, 1.0, 1.0)
    cv2.putText(out, text, (x0 + pad, y1 - pad - base // 2), cv2.FONT_HERSHEY_SIMPLEX, scale, color, thick, cv2.LINE_AA)
    return out


@dataclass
class Disclosure:
    """Watermark + label + signed manifest for one post step's outputs.

    ``PostStep`` makes one for every step (``disclosure_for_step``: the project's production
    certificate, else its local chain); ``Disclosure.for_step(out_dir, kind, identity)`` makes
    one by hand. ``secret`` keys the watermark's tag (default: derived from the signing key).
    """

    identity: SigningIdentity
    take_id: str
    step_id: str
    step_kind: str
    source_type: str = "compositeWithTrainedAlgorithmicMedia"
    rights: dict[str, Any] | None = None
    ingredients: list[dict[str, Any]] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)
    watermark: bool = True
    label: str | None = None
    strength: float = WM_STRENGTH
    params_hash: str = ""
    frame_sources: dict[str, str] = field(default_factory=dict)  # input name -> frame folder in the take
    production: str = ""
    secret: bytes = b""
    signer_note: str = ""  # "local chain of ..." or the production certificate, for params.json
    # the id the step's QOI frames are marked with (its sequence manifest, ``disclosure.png``):
    # set by PostStep; the step's movie keeps that mark instead of re-marking every frame
    sequence_id: str = ""

    def __post_init__(self) -> None:
        if not self.secret and self.identity is not None:
            self.secret = self.identity.watermark_secret()

    @classmethod
    def for_step(cls, out_dir: str | Path, kind: str, identity: SigningIdentity, *, rights: Any = None,
                 inputs: dict[str, Any] | None = None, **kw: Any) -> "Disclosure":
        """Fill take id, production, ingredients (take.json + the step's inputs) from ``<take>/post/<step-id>``."""
        out_dir = Path(out_dir)
        take_dir = out_dir.parent.parent
        take_id, ingredients = take_dir.name, []
        manifest = take_dir / "take.json"
        if manifest.exists():
            try:
                doc = json.loads(manifest.read_text(encoding="utf-8"))
                take_id = str(doc.get("id") or take_id)
                kw.setdefault("production", str((doc.get("slate") or {}).get("production") or ""))
            except (OSError, ValueError, AttributeError):
                pass
            try:
                take_sha = hashlib.sha256(manifest.read_bytes()).hexdigest()
            except OSError:
                take_sha = ""
            ingredients.append({"title": f"take {take_id} (take.json)", "format": "application/json", "relationship": "componentOf",
                                "instance_id": f"machinima:take:{take_id}",
                                "metadata": {"dataTypes": [{"type": "machinima.take"}], "sha256": take_sha}})
        steps: list[dict[str, Any]] = []
        frame_sources: dict[str, str] = {}
        for name, value in sorted((inputs or {}).items()):
            ingredients.append({"title": f"{name}: {value}"[:200], "format": "application/octet-stream", "relationship": "componentOf",
                                "instance_id": f"machinima:input:{name}:{hashlib.sha256(str(value).encode()).hexdigest()[:16]}"})
            steps.extend(_earlier_steps(take_dir, value, steps))
            if isinstance(value, (str, Path)):  # a frame folder of this take (a pass, an earlier step's output)
                p = Path(str(value))
                p = p if p.is_absolute() else take_dir / p
                try:
                    if p.is_dir() and p.resolve().is_relative_to(take_dir.resolve()):
                        frame_sources[name] = str(p.resolve().relative_to(take_dir.resolve()))
                except OSError:
                    pass
        kw.setdefault("steps", steps)
        kw.setdefault("frame_sources", frame_sources)
        return cls(identity=identity, take_id=take_id, step_id=out_dir.name, step_kind=kind,
                   rights=_rights_doc(rights), ingredients=ingredients, **kw)

    def fingerprint(self) -> dict[str, Any]:
        """What changes the pixels (goes into the frame keys of PostStep)."""
        return {"wm": WM_SCHEME if self.watermark else None, "strength": self.strength, "label": self.label,
                "take": self.take_id, "step": self.step_id, "production": self.production}

    def mark(self, img: np.ndarray, manifest_id: str, *, label: bool = True, memory: WatermarkMemory | None = None) -> np.ndarray:
        """Label (if asked) then watermark naming ``manifest_id``; images too small for a
        watermark pass unchanged (they still get a manifest). ``memory``: one per sequence of
        frames carrying the same id (a video), so a still picture keeps a still mark."""
        out = np.asarray(img)
        if self.label and label:
            out = burn_label(out, self.label)
        if self.watermark and can_watermark(out):
            out = embed_watermark(out, self.production, manifest_id, self.secret, strength=self.strength, memory=memory)
        return out

    def manifest(self, title: str, mime: str, frame: int | None = None, manifest_id: str | None = None,
                 sequence_id: str | None = None) -> dict[str, Any]:
        ingredients = list(self.ingredients)
        if frame is not None:  # the source frames this frame was made from
            for name, folder in sorted(self.frame_sources.items()):
                ingredients.append({"title": f"{folder}/{frame:06d}", "format": "image/png", "relationship": "componentOf",
                                    "instance_id": f"machinima:{self.take_id}:{folder}/{frame:06d}"})
        return build_manifest(title=title, mime=mime, take_id=self.take_id, step_id=self.step_id, step_kind=self.step_kind,
                              source_type=self.source_type, steps=self.steps, ingredients=ingredients, rights=self.rights,
                              params_hash=self.params_hash, frame=frame, watermark=self.watermark, label=self.label,
                              manifest_id=manifest_id, production=self.production, sequence_id=sequence_id)

    def encode(self, img: np.ndarray, title: str, *, frame: int | None = None, ext: str = ".png",
               jpeg_quality: int = 95) -> bytes:
        """Mark, encode (PNG or JPEG) and sign one RGB(A) frame; returns the file's bytes."""
        import cv2

        mid = self.frame_manifest_id(title) if self.params_hash else new_manifest_id()
        a = np.ascontiguousarray(self.mark(img, mid))
        if a.ndim == 3 and a.shape[2] in (3, 4):  # one OpenCV pass, not a numpy reversal and a copy
            a = cv2.cvtColor(a, cv2.COLOR_RGB2BGR if a.shape[2] == 3 else cv2.COLOR_RGBA2BGRA)
        params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality] if ext in (".jpg", ".jpeg") else []
        ok, buf = cv2.imencode(ext, a, params)
        if not ok:
            raise DisclosureError(f"could not encode {title}")
        data = png_single_idat(buf.tobytes()) if ext == ".png" else buf.tobytes()
        return sign_bytes(data, MIME[ext], self.manifest(title, MIME[ext], frame, mid), self.identity)

    def frame_manifest_id(self, title: str) -> str:
        """A post step's frame gets the same manifest id (and so the same pixels) each time it is
        made with the same params: a redone frame, a Ray retry, a resumed run are identical."""
        import uuid

        seed = hashlib.sha256(f"machinima:{self.production}:{self.take_id}:{self.params_hash}:{title}".encode()).digest()[:16]
        return f"urn:c2pa:{uuid.UUID(bytes=seed, version=4)}"  # c2pa takes version-4 ids only

    def sign_file(self, path: str | Path, dst: str | Path | None = None, *, parent: bool = True) -> Path:
        """Sign a file made elsewhere from disclosed frames (a delivery): its pixels are left as
        they are; the file as it was becomes the parent ingredient (``parent``), so the manifest
        its watermark names stays in the file."""
        p = Path(path)
        return sign_file(p, self.manifest(p.name, mime_of(p) or "", manifest_id=new_manifest_id()), self.identity, dst, parent=parent)

    def write_video(self, path: str | Path, frames: Iterable[np.ndarray], fps: float | str = 24, *, crf: int = 18,
                    label: bool = False, before_signing: Callable[[Path], Any] | None = None, preset: str | None = None) -> Path:
        """Encode ``frames`` to an MP4, every frame marked, then sign it. ``before_signing`` may
        rewrite the encoded file first (mux audio in) as long as the pixels stay. ``preset``:
        x264's (None: its default; step movies pass ``stepdisclosure.MOVIE_PRESET``).

        What the movie's mark names: a step with a sequence manifest (QOI frames,
        ``sequence_id``) keeps its frames' mark, the sequence manifest's id; frames that already
        carry it pass unchanged, pixel for pixel (``WatermarkMemory(settle=True)``), any other
        frame is marked with it; the movie's own signed manifest records that id
        (``sequence_manifest``), and ``verify`` accepts that mark on this file only because the
        signed manifest says so. Why: re-marking every frame with a per-movie id made x264 code
        a second mark over the first (+15% of the composite step). Other steps (PNG frames,
        one id each): every frame is marked with the movie's own manifest id, with memory."""
        from ..imageseq import write_video

        path = Path(path)
        mid = new_manifest_id()
        seq = self.sequence_id or None
        memory = WatermarkMemory(settle=bool(seq))  # a still background keeps a still mark: the codec need not code a flicker
        write_video(path, (self.mark(f, seq or mid, label=label, memory=memory) for f in frames), fps, crf=crf,
                    options={"crf": str(crf), **({"preset": preset} if preset else {})})
        if before_signing is not None:
            before_signing(path)
        return sign_file(path, self.manifest(path.name, mime_of(path) or "", manifest_id=mid, sequence_id=seq), self.identity)

    def summary(self) -> dict[str, Any]:
        """For params.json."""
        return {"signer": self.identity.summary(), "signed_with": self.signer_note, "source_type": self.source_type,
                "watermark": WM_SCHEME if self.watermark else None, "production": self.production,
                "production_tag": production_tag(self.production), "label": self.label,
                "per": "frame (PNG/JPEG); file (MP4)", "steps": self.steps}


def _earlier_steps(take_dir: Path, value: Any, known: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """An input inside ``<take>/post/<step-id>/``: that step (and the steps it recorded) came first."""
    if not isinstance(value, (str, Path)):
        return []
    parts = Path(str(value)).parts
    if "post" not in parts:
        return []
    i = len(parts) - 1 - parts[::-1].index("post")
    if i + 1 >= len(parts):
        return []
    step_id = parts[i + 1]
    if any(k.get("step_id") == step_id for k in known):
        return []
    try:
        doc = json.loads((take_dir / "post" / step_id / "params.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [*(doc.get("disclosure") or {}).get("steps", []), {"kind": str(doc.get("step", "?")), "step_id": step_id}]


def _rights_doc(rights: Any) -> dict[str, Any] | None:
    from ..rights import provenance_of

    return provenance_of(rights)


def disclosure_for_step(out_dir: str | Path, kind: str, *, rights: Any = None, inputs: dict[str, Any] | None = None,
                        cfg: Any = None) -> Disclosure:
    """The Disclosure every post step gets: signed with its project's production certificate
    (else the project's local chain), labelled as ``[rights] label`` says."""
    from .trust import config_of, signing_for

    cfg = cfg or config_of(out_dir)
    signing = signing_for(out_dir, cfg=cfg)
    sec = cfg.section("rights")
    label = sec.get("label")
    d = Disclosure.for_step(out_dir, kind, signing.identity, rights=rights, inputs=inputs,
                            source_type=str(sec.get("source_type", "compositeWithTrainedAlgorithmicMedia")),
                            label=("AI-modified" if label is True else (str(label) if label else None)), secret=signing.secret,
                            signer_note=signing.describe())
    if not d.production:
        d.production = signing.production
    return d


disclosure_from_config = disclosure_for_step  # the name before disclosure became the default


def write_disclosed_video(path: str | Path, frames: Iterable[np.ndarray], disclosure: Disclosure, fps: float | str = 24,
                          *, crf: int = 18, label: bool = True) -> Path:
    """Encode frames to MP4, each labelled (if the disclosure says so) and marked with the
    video's manifest id, and sign the file."""
    return disclosure.write_video(path, frames, fps, crf=crf, label=label)

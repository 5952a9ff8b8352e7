"""Detection + landmark backends, found by name.

A backend has two calls::

    detect(image) -> list[Face]            every face in an RGB uint8 image, with 68 landmarks
    landmarks(image, box) -> Face | None   the face near ``box`` (tracking: last frame's box)

Built in: ``mediapipe`` (face detection + face mesh models shipped inside the mediapipe 0.10.21
wheel; nothing is downloaded) and ``onnx`` (your own models by path, run by onnxruntime).
More backends register under the entry-point group ``machinima.faceswap.backends`` as
``name = "package.module:Class"``; they are imported only when asked for by name.

ONNX model contract (``OnnxBackend(detector=..., landmarks=...)``):

* detector: input float32 ``1x3xHxW`` RGB in [0, 1] (H, W from the model, or ``det_size`` when
  dynamic; the image is resized, not letterboxed); first output ``(N, 5)`` or ``(1, N, 5)``:
  x0, y0, x1, y1 in input pixels and a score. (S3FD/SCRFD exports need their box decoding
  baked into the graph.)
* landmarks: input float32 ``1x3xSxS`` RGB in [0, 1] of a square crop ``roi_scale`` times the
  box around its centre; first output 68 (x, y) pairs in [0, 1] of the crop, any shape with 136
  values (2DFAN heatmap models need their arg-max baked in).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np

from machinima.faces import rgb_u8

from .errors import BackendError
from .landmarks import Face, box_of, from_mesh

ENTRY_POINT_GROUP = "machinima.faceswap.backends"


class Backend(Protocol):
    name: str

    def detect(self, image: np.ndarray) -> list[Face]: ...

    def landmarks(self, image: np.ndarray, box: np.ndarray) -> Face | None: ...


class _BoxesThenLandmarks:
    """Detection as two stages every backend shares: face boxes, then landmarks inside each.

    The landmarks of a new face run twice: on the detector's box, then on the box of those
    landmarks, which is how every later frame of its track is cropped (``FaceFinder`` passes the
    last landmarks' box); a track whose first frame was cropped differently jumps by about a
    pixel when the tracking starts and at every re-detection."""

    def detect(self, image: np.ndarray) -> list[Face]:
        faces = []
        for box, score in self.boxes(image):  # type: ignore[attr-defined]
            f = self.landmarks(image, box)  # type: ignore[attr-defined]
            if f is None:
                continue
            again = self.landmarks(image, f.box)  # type: ignore[attr-defined]
            f = again if again is not None else f
            f.score = score
            faces.append(f)
        return faces


class MediapipeBackend(_BoxesThenLandmarks):
    """mediapipe's BlazeFace detector (full range) + 468-point face mesh, mapped to 68 points,
    through ``machinima.faces.FaceSearch``: faces are found at every shot size (tiles when they
    are small), and the mesh runs on a crop around the face resized to ``roi_size`` pixels, so a
    face in a 4K frame costs the same as one in a thumbnail."""

    name = "mediapipe"

    def __init__(self, *, min_confidence: float = 0.5, max_faces: int = 8, roi_scale: float = 1.7, roi_size: int = 256,
                 min_face: float = 24.0) -> None:
        from machinima.faces import FaceError, FaceSearch

        try:
            self.search = FaceSearch(min_confidence=min_confidence, max_faces=max_faces, min_face=min_face, mesh_size=roi_size,
                                     roi_scale=roi_scale)
        except FaceError as exc:
            raise BackendError(str(exc)) from None

    def boxes(self, image: np.ndarray) -> list[tuple[np.ndarray, float]]:
        return self.search.boxes(image)

    def landmarks(self, image: np.ndarray, box: np.ndarray) -> Face | None:
        mesh = self.search.mesh(image, box)
        if mesh is None:
            return None
        lm = from_mesh(mesh[:, :2])
        return Face(box=box_of(lm), landmarks=lm, score=1.0)

    def close(self) -> None:
        self.search.close()


class OnnxBackend(_BoxesThenLandmarks):
    """Your own detector / landmark models (ONNX, run by onnxruntime); see the module docstring.

    Without a detector, ``detect`` falls back to mediapipe's boxes; without a landmark model,
    ``landmarks`` falls back to mediapipe's mesh.
    """

    name = "onnx"

    def __init__(self, *, detector: str | Path | None = None, landmarks: str | Path | None = None, det_size: int = 640,
                 min_confidence: float = 0.5, roi_scale: float = 1.4, providers: list[str] | None = None) -> None:
        self.det = _session(detector, "detector", providers) if detector else None
        self.lmk = _session(landmarks, "landmark model", providers) if landmarks else None
        if self.det is None and self.lmk is None:
            raise BackendError("the onnx backend needs --detector and/or --landmarks model paths",
                               hint="pass the .onnx files of your detector (S3FD/SCRFD export) and landmark model (2DFAN-like)")
        self.det_size = det_size
        self.min_confidence = min_confidence
        self.roi_scale = roi_scale
        self._fallback: MediapipeBackend | None = None

    def _mp(self) -> MediapipeBackend:
        if self._fallback is None:
            self._fallback = MediapipeBackend(min_confidence=self.min_confidence)
        return self._fallback

    def boxes(self, image: np.ndarray) -> list[tuple[np.ndarray, float]]:
        import cv2

        if self.det is None:
            return self._mp().boxes(image)
        inp = self.det.get_inputs()[0]
        h_in = inp.shape[2] if isinstance(inp.shape[2], int) else self.det_size
        w_in = inp.shape[3] if isinstance(inp.shape[3], int) else self.det_size
        img = rgb_u8(image)
        x = cv2.resize(img, (w_in, h_in)).astype(np.float32).transpose(2, 0, 1)[None] / 255.0
        out = np.asarray(self.det.run(None, {inp.name: x})[0], np.float64).reshape(-1, 5)
        sx, sy = img.shape[1] / w_in, img.shape[0] / h_in
        res = [(r[:4] * [sx, sy, sx, sy], float(r[4])) for r in out if r[4] >= self.min_confidence]
        return sorted(res, key=lambda t: -t[1])

    def landmarks(self, image: np.ndarray, box: np.ndarray) -> Face | None:
        import cv2

        if self.lmk is None:
            return self._mp().landmarks(image, box)
        img = rgb_u8(image)
        inp = self.lmk.get_inputs()[0]
        size = inp.shape[2] if isinstance(inp.shape[2], int) else 256
        box = np.asarray(box, float)
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        half = max(box[2] - box[0], box[3] - box[1]) * self.roi_scale / 2
        if half < 2:
            return None
        s = size / (2 * half)
        m = np.array([[s, 0, -(cx - half) * s], [0, s, -(cy - half) * s]])
        crop = cv2.warpAffine(img, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        x = crop.astype(np.float32).transpose(2, 0, 1)[None] / 255.0
        out = np.asarray(self.lmk.run(None, {inp.name: x})[0], np.float64)
        if out.size != 136:
            raise BackendError(f"landmark model returned {out.size} values, expected 68 (x, y) pairs (136)")
        lm = out.reshape(68, 2) * (2 * half) + [cx - half, cy - half]
        return Face(box=box_of(lm), landmarks=lm, score=1.0)

    def close(self) -> None:
        if self._fallback is not None:
            self._fallback.close()


def _session(path: str | Path | None, what: str, providers: list[str] | None):
    p = Path(str(path)).expanduser()
    if not p.exists():
        raise BackendError(f"{what} not found at {p}", hint="put your .onnx file there or pass its path; nothing is downloaded")
    try:
        import onnxruntime as ort

        return ort.InferenceSession(str(p), providers=providers or _providers())
    except Exception as exc:  # noqa: BLE001
        raise BackendError(f"{what} {p} cannot be loaded by onnxruntime: {exc}") from None


def _providers() -> list[str]:
    import onnxruntime as ort

    avail = ort.get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in avail]


BUILTIN = {"mediapipe": MediapipeBackend, "onnx": OnnxBackend}


def get_backend(name: str = "mediapipe", **options: Any) -> Backend:
    """A backend by name: built in, or registered under ``machinima.faceswap.backends``."""
    cls = BUILTIN.get(name)
    if cls is None:
        from importlib.metadata import entry_points

        for ep in entry_points(group=ENTRY_POINT_GROUP):
            if ep.name == name:
                try:
                    cls = ep.load()
                except Exception as exc:  # noqa: BLE001
                    raise BackendError(f"face backend {name!r} failed to load: {exc}") from None
                break
    if cls is None:
        raise BackendError(f"unknown face backend {name!r}", hint=f"built in: {', '.join(BUILTIN)}; others register under {ENTRY_POINT_GROUP}")
    return cls(**options)

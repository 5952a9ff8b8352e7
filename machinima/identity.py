"""Who is this face: identity embeddings for rights checks and face-swap measures.

Two embedders, one interface (``find`` faces, ``embed`` one, ``distance`` between two):

- ``dlib-resnet-v1`` (the default; extra ``identity``): dlib's ResNet face recognition network
  (128-D descriptors, 99.38% on LFW) with dlib's HOG face detector and 68-point shape predictor,
  all from the ``face-recognition-models`` package (nothing downloaded). Two faces are the same
  person when their distance is under 0.6, dlib's threshold.
- ``mediapipe-mesh-v1`` (the fallback when dlib is not installed; a **weaker** mode): the
  geometry of mediapipe's 468-point face mesh, aligned (Procrustes) and scaled; two faces are
  the same person when the RMS distance of their aligned meshes is under 0.04. It tells clearly
  different face shapes apart, but not look-alikes, and a real change of expression or a
  stretched image can push the same person over the threshold: it fails closed more often and
  can be fooled more easily. Records made with one method are matched with that method only.

    emb = get_embedder()                       # dlib if installed, else the mesh (emb.weak)
    for face in emb.find(image):               # boxes (x0, y0, x1, y1) in pixels, with a score
        v = emb.embed(image, face.box)
    emb.distance(v, w) < emb.threshold         # same person

Images are uint8 RGB. The models are loaded once per process (``get_embedder`` caches).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .errors import MachinimaError

DLIB = "dlib-resnet-v1"
MESH = "mediapipe-mesh-v1"
THRESHOLDS = {DLIB: 0.6, MESH: 0.04}
MIN_SCORE = 0.3  # HOG detections scoring lower are not faces we check (a patch on a spacesuit scores 0.12)
MIN_FACE = 40  # px: a smaller face cannot be identified reliably


class IdentityError(MachinimaError):
    """No embedder available, or an image the embedder cannot use."""


@dataclass
class Face:
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels
    score: float = 1.0

    @property
    def size(self) -> float:
        return float(min(self.box[2] - self.box[0], self.box[3] - self.box[1]))


def box_of(points: np.ndarray, pad: float = 0.0) -> tuple[float, float, float, float]:
    """The box around landmarks (any count), grown by ``pad`` of its size on each side."""
    p = np.asarray(points, np.float64)[:, :2]
    x0, y0 = p.min(axis=0)
    x1, y1 = p.max(axis=0)
    dx, dy = (x1 - x0) * pad, (y1 - y0) * pad
    return float(x0 - dx), float(y0 - dy), float(x1 + dx), float(y1 + dy)


def _rgb(image: np.ndarray) -> np.ndarray:
    a = np.asarray(image)
    if a.dtype != np.uint8:
        raise IdentityError(f"identity needs 8-bit images, got {a.dtype}")
    if a.ndim == 2:
        a = np.stack([a] * 3, axis=-1)
    return np.ascontiguousarray(a[..., :3])


class Embedder:
    """``find`` faces, ``embed`` one face, ``distance`` between embeddings."""

    method = ""
    threshold = 0.0
    weak = False

    def find(self, image: np.ndarray, *, min_score: float = MIN_SCORE) -> list[Face]:
        raise NotImplementedError

    def embed(self, image: np.ndarray, box: Sequence[float]) -> np.ndarray:
        raise NotImplementedError

    def distance(self, a: Any, b: Any) -> float:
        return distance(a, b, self.method)

    def same(self, a: Any, b: Any) -> bool:
        return self.distance(a, b) < self.threshold


class DlibEmbedder(Embedder):
    method = DLIB
    threshold = THRESHOLDS[DLIB]

    def __init__(self) -> None:
        try:
            import dlib

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # face_recognition_models imports pkg_resources
                import face_recognition_models as frm
        except Exception as exc:  # noqa: BLE001 - ImportError, or a broken native build
            raise IdentityError(f"dlib's identity network is not available ({exc})", hint="pip install 'machinima[identity]'") from None
        self._dlib = dlib
        self.detector = dlib.get_frontal_face_detector()
        self.shape = dlib.shape_predictor(frm.pose_predictor_model_location())
        self.net = dlib.face_recognition_model_v1(frm.face_recognition_model_location())

    def find(self, image: np.ndarray, *, min_score: float = MIN_SCORE, max_side: int = 2000) -> list[Face]:
        """Faces by dlib's HOG detector, upsampled once (it then finds faces from ~40 px);
        pictures over ``max_side`` are scaled down first (a 12 MP photo stays quick)."""
        img = _rgb(image)
        scale = min(1.0, max_side / max(img.shape[:2]))
        if scale < 1.0:
            import cv2

            img = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        rects, scores, _ = self.detector.run(img, 1, 0.0)
        faces = [Face((r.left() / scale, r.top() / scale, r.right() / scale, r.bottom() / scale), float(s))
                 for r, s in zip(rects, scores) if s >= min_score]
        return sorted(faces, key=lambda f: -f.score)

    def embed(self, image: np.ndarray, box: Sequence[float]) -> np.ndarray:
        img = _rgb(image)
        x0, y0, x1, y1 = (int(round(v)) for v in box)
        rect = self._dlib.rectangle(x0, y0, x1, y1)
        return np.asarray(self.net.compute_face_descriptor(img, self.shape(img, rect)), np.float32)


class MeshEmbedder(Embedder):
    method = MESH
    threshold = THRESHOLDS[MESH]
    weak = True

    def __init__(self) -> None:
        try:
            import mediapipe as mp
        except Exception as exc:  # noqa: BLE001
            raise IdentityError(f"neither dlib nor mediapipe is installed ({exc})",
                                hint="pip install 'machinima[identity]' (dlib, the strong mode) or 'machinima[faces]'") from None
        self._mesh = mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1, refine_landmarks=False)
        self._det = mp.solutions.face_detection.FaceDetection(model_selection=1, min_detection_confidence=0.5)

    def find(self, image: np.ndarray, *, min_score: float = MIN_SCORE) -> list[Face]:
        img = _rgb(image)
        h, w = img.shape[:2]
        res = self._det.process(img)
        out = []
        for d in res.detections or []:
            b = d.location_data.relative_bounding_box
            score = float(d.score[0]) if d.score else 0.0
            if score >= max(min_score, 0.5):
                out.append(Face((b.xmin * w, b.ymin * h, (b.xmin + b.width) * w, (b.ymin + b.height) * h), score))
        return sorted(out, key=lambda f: -f.score)

    def embed(self, image: np.ndarray, box: Sequence[float]) -> np.ndarray:
        img = _rgb(image)
        h, w = img.shape[:2]
        x0, y0, x1, y1 = box
        m = 0.35 * max(x1 - x0, y1 - y0)
        cx0, cy0 = int(max(0, x0 - m)), int(max(0, y0 - m))
        cx1, cy1 = int(min(w, x1 + m)), int(min(h, y1 + m))
        crop = np.ascontiguousarray(img[cy0:cy1, cx0:cx1])
        res = self._mesh.process(crop)
        if not res.multi_face_landmarks:
            raise IdentityError(f"no face mesh found in the box {tuple(int(v) for v in box)}")
        ch, cw = crop.shape[:2]
        pts = np.array([(p.x * cw, p.y * ch, p.z * cw) for p in res.multi_face_landmarks[0].landmark], np.float64)
        pts -= pts.mean(axis=0)
        return (pts / np.sqrt((pts ** 2).sum(axis=1).mean())).reshape(-1).astype(np.float32)

    def distance(self, a: Any, b: Any) -> float:
        return mesh_distance(a, b)


def mesh_distance(a: Any, b: Any) -> float:
    """RMS distance after the best rotation of mesh ``b`` onto mesh ``a`` (both centred and scaled)."""
    pa = np.asarray(a, np.float64).reshape(-1, 3)
    pb = np.asarray(b, np.float64).reshape(-1, 3)
    if pa.shape != pb.shape:
        return float("inf")
    u, _, vt = np.linalg.svd(pb.T @ pa)
    d = np.sign(np.linalg.det(u @ vt))
    rot = u @ np.diag([1.0, 1.0, d]) @ vt
    return float(np.sqrt(((pb @ rot - pa) ** 2).sum(axis=1).mean()))


_cache: dict[str, Embedder] = {}


def available() -> list[str]:
    """Methods that can run here, strongest first."""
    out = []
    for method in (DLIB, MESH):
        try:
            get_embedder(method)
            out.append(method)
        except IdentityError:
            pass
    return out


def get_embedder(method: str | None = None) -> Embedder:
    """The embedder for ``method`` (None: dlib when installed, else the mesh fallback), loaded once."""
    if method is None:
        try:
            return get_embedder(DLIB)
        except IdentityError:
            return get_embedder(MESH)
    if method not in _cache:
        if method == DLIB:
            _cache[method] = DlibEmbedder()
        elif method == MESH:
            _cache[method] = MeshEmbedder()
        else:
            raise IdentityError(f"unknown identity method {method!r}", hint=f"one of {DLIB}, {MESH}")
    return _cache[method]


def distance(a: Any, b: Any, method: str = DLIB) -> float:
    """Distance between two embeddings of ``method`` (no model is loaded)."""
    if method == MESH:
        return mesh_distance(a, b)
    return float(np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64)))

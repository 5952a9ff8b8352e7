"""Faces at every shot size: find them on the whole frame at the size the detector needs, then
follow them from frame to frame. Shared by face swap (extract, merge, live), lip sync's mouth
finder and the LoRA coverage report, so a face that one step finds, every step finds.

Why tiles: mediapipe's full-range BlazeFace sees the frame through a 192x192 input. A face
narrower than about ``DETECTOR_MIN_PX`` (16) pixels of that input is not found, so on a 1080p
frame nothing under ~150 px wide is seen -- a medium shot (face ~10% of the frame) or a wide shot
goes blank. ``FaceSearch.boxes`` looks at the whole frame first, then at overlapping square
tiles half the size of the level before (each face smaller than half a tile lies whole inside
one tile), down to tiles in which a ``min_face`` pixel face is ``DETECTOR_MIN_PX`` wide; it
stops early once every face found is well above the last level's limit (a close-up costs the
whole frame and one level of tiles). Boxes found in several tiles are merged (IoU).

The face mesh (478 points with iris refinement, 468 without) then runs on a square crop around
each box, resized to ``mesh_size`` pixels (up for a small face, down for a big one), and the
points are mapped back to image pixels (z in the same pixel scale, negative towards the camera).
``find`` runs the mesh twice on a new face: once on the detector's box, once on the box of the
mesh itself, so the first frame of a track is cropped the way every later frame is (the crop
moves the mesh's answer by about a pixel; a track that starts on another crop jumps).

``FaceFollower`` follows faces over consecutive frames: the mesh around each face's predicted
box (last box moved by the last frame's motion, so a moving face stays centred in its crop; run
again around the face's own box when it was not where predicted), a full search every
``redetect_every`` frames or when a face is lost.

Everything ships inside the ``mediapipe`` wheel; nothing is downloaded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import MachinimaError

DETECTOR_INPUT = 192  # BlazeFace full range: square input, the image letterboxed into it
DETECTOR_MIN_PX = 16  # faces narrower than this in the detector's input are missed (measured: 10 px missed, 15 px found)


class FaceError(MachinimaError):
    """No face where one was asked for, or the face models cannot run."""


@dataclass
class Found:
    """One face in one image: ``box`` x0, y0, x1, y1 (image pixels), detector ``score``, and the
    face mesh (N, 3) in image pixels (None when the mesh model found no face in the crop)."""

    box: np.ndarray
    score: float
    mesh: np.ndarray | None = None

    @property
    def size(self) -> float:
        return float(max(self.box[2] - self.box[0], self.box[3] - self.box[1]))


def box_of(points: np.ndarray) -> np.ndarray:
    p = np.asarray(points)[:, :2]
    return np.array([p[:, 0].min(), p[:, 1].min(), p[:, 0].max(), p[:, 1].max()], np.float64)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def square_roi(image_shape: tuple[int, ...], box: np.ndarray, scale: float) -> tuple[int, int, int, int]:
    """A square region ``scale`` times the box's longer side around its centre, clipped to the image."""
    h, w = image_shape[:2]
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    half = max(box[2] - box[0], box[3] - box[1]) * scale / 2
    x0, y0 = int(max(0, np.floor(cx - half))), int(max(0, np.floor(cy - half)))
    x1, y1 = int(min(w, np.ceil(cx + half))), int(min(h, np.ceil(cy + half)))
    return x0, y0, x1, y1


def tile_levels(width: int, height: int, min_face: float) -> list[list[tuple[int, int, int]]]:
    """Search levels after the whole frame: per level, square tiles (x0, y0, side) overlapping
    by half a tile; the last level's tiles show a ``min_face`` face ``DETECTOR_MIN_PX`` wide."""
    short = min(width, height)
    smallest_full = max(width, height) * DETECTOR_MIN_PX / DETECTOR_INPUT
    levels: list[list[tuple[int, int, int]]] = []
    side = short
    reach = smallest_full
    while reach > min_face and side >= 32:
        stride = side // 2
        xs = _starts(width, side, stride)
        ys = _starts(height, side, stride)
        levels.append([(x, y, side) for y in ys for x in xs])
        reach = side * DETECTOR_MIN_PX / DETECTOR_INPUT
        side //= 2
    return levels


def _starts(length: int, side: int, stride: int) -> list[int]:
    if side >= length:
        return [0]
    out = list(range(0, length - side, max(1, stride)))
    out.append(length - side)
    return sorted(set(out))


def overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over the smaller box: 1 when one box lies inside the other."""
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    small = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return float(inter / small) if small > 0 else 0.0


def merge_boxes(found: list[tuple[np.ndarray, float]], max_overlap: float = 0.5) -> list[tuple[np.ndarray, float]]:
    """Greedy non-maximum suppression: the best-scoring box of each overlapping group (a box
    mostly inside a better one -- part of a face seen in a small tile -- goes too)."""
    keep: list[tuple[np.ndarray, float]] = []
    for box, score in sorted(found, key=lambda t: -t[1]):
        if all(overlap(box, k) < max_overlap for k, _ in keep):
            keep.append((box, score))
    return keep


def predicted_box(box: np.ndarray, previous: np.ndarray | None, steps: int = 1) -> np.ndarray:
    """``box`` moved on by the motion since ``previous`` (constant velocity, ``steps`` frames on)."""
    if previous is None:
        return np.asarray(box, np.float64)
    b, p = np.asarray(box, np.float64), np.asarray(previous, np.float64)
    shift = ((b[:2] + b[2:]) - (p[:2] + p[2:])) / 2 * steps
    return b + np.concatenate([shift, shift])


def off_centre(expected: np.ndarray, found: np.ndarray, tolerance: float = 0.02) -> bool:
    """Whether a face found in a crop around ``expected`` lies more than ``tolerance`` of its size
    off it (a sudden start or stop): its points are then found again around its own box, since
    an off-centre crop moves the mesh's answer (about a pixel for a 15 px/frame start)."""
    e, f = np.asarray(expected, np.float64), np.asarray(found, np.float64)
    size = max(f[2] - f[0], f[3] - f[1], 1e-6)
    return bool(np.abs((e[:2] + e[2:]) / 2 - (f[:2] + f[2:]) / 2).max() > tolerance * size)


class FaceSearch:
    """Face boxes on the whole frame at every shot size (tiles when the faces are small) and the
    face mesh on a crop around a box. ``min_face``: the narrowest face (pixels) searched for."""

    def __init__(self, *, min_confidence: float = 0.5, max_faces: int = 8, min_face: float = 20.0, refine: bool = False,
                 mesh_size: int = 256, roi_scale: float = 1.5) -> None:
        try:
            import mediapipe as mp
        except Exception as exc:  # noqa: BLE001
            raise FaceError(f"mediapipe cannot be imported ({exc})", hint="pip install 'mediapipe==0.10.21' (it ships the models)") from None
        self._mp = mp
        self.min_confidence = min_confidence
        self.max_faces = max_faces
        self.min_face = float(min_face)
        self.refine = refine
        self.mesh_size = int(mesh_size)
        self.roi_scale = roi_scale
        self._det = None
        self._mesh = None
        self.detector_calls = 0

    # --- boxes ----------------------------------------------------------------------------------
    def _detector(self):
        if self._det is None:
            self._det = self._mp.solutions.face_detection.FaceDetection(model_selection=1, min_detection_confidence=self.min_confidence)
        return self._det

    def _detect(self, img: np.ndarray, x0: int = 0, y0: int = 0) -> list[tuple[np.ndarray, float]]:
        h, w = img.shape[:2]
        self.detector_calls += 1
        res = self._detector().process(np.ascontiguousarray(img))
        out = []
        for d in res.detections or []:
            b = d.location_data.relative_bounding_box
            out.append((np.array([b.xmin * w + x0, b.ymin * h + y0, (b.xmin + b.width) * w + x0, (b.ymin + b.height) * h + y0]),
                        float(d.score[0])))
        return out

    def boxes(self, image: np.ndarray) -> list[tuple[np.ndarray, float]]:
        """(box, score) of each face, best first: the whole frame, then finer tiles until every face
        found is at least twice the smallest the last level can see (a face found near a level's
        limit was found by luck, and another of its size may have been missed)."""
        img = rgb_u8(image)
        h, w = img.shape[:2]
        found = self._detect(img)
        reach = max(w, h) * DETECTOR_MIN_PX / DETECTOR_INPUT
        for level in tile_levels(w, h, self.min_face):
            if found and min(max(b[2] - b[0], b[3] - b[1]) for b, _ in found) >= 2 * reach:
                break
            reach = level[0][2] * DETECTOR_MIN_PX / DETECTOR_INPUT
            for x, y, side in level:
                for box, score in self._detect(img[y:y + side, x:x + side], x, y):
                    inside = box[0] > x + 1 and box[1] > y + 1 and box[2] < x + side - 1 and box[3] < y + side - 1
                    found.append((box, score if inside or side >= min(w, h) else score * 0.5))  # a cut face loses to a whole one
            found = merge_boxes(found)
        found = [(np.clip(b, 0, [w, h, w, h]), s) for b, s in found]
        return sorted(found, key=lambda t: -t[1])[: self.max_faces]

    # --- mesh -----------------------------------------------------------------------------------
    def _mesher(self):
        if self._mesh is None:
            self._mesh = self._mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1, refine_landmarks=self.refine,
                                                               min_detection_confidence=0.3)
        return self._mesh

    def mesh(self, image: np.ndarray, box: np.ndarray, roi_scale: float | None = None) -> np.ndarray | None:
        """(N, 3) face mesh in image pixels from a crop ``roi_scale`` times the box, or None."""
        import cv2

        img = rgb_u8(image)
        x0, y0, x1, y1 = square_roi(img.shape, np.asarray(box, float), roi_scale or self.roi_scale)
        if x1 - x0 < 8 or y1 - y0 < 8:
            return None
        crop = img[y0:y1, x0:x1]
        s = self.mesh_size / max(crop.shape[:2])
        if abs(s - 1) > 1e-3:
            interp = cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC
            crop = cv2.resize(crop, (max(1, round(crop.shape[1] * s)), max(1, round(crop.shape[0] * s))), interpolation=interp)
        ch, cw = crop.shape[:2]
        sx, sy = (x1 - x0) / cw, (y1 - y0) / ch
        res = self._mesher().process(np.ascontiguousarray(crop))
        if not res.multi_face_landmarks:
            return None
        pts = np.array([[p.x * cw, p.y * ch, p.z * cw] for p in res.multi_face_landmarks[0].landmark], np.float64)
        return pts * [sx, sy, sx] + [x0, y0, 0.0]

    def find(self, image: np.ndarray) -> list[Found]:
        """Every face with its mesh (faces whose crop the mesh model rejects are left out)."""
        out = []
        for box, score in self.boxes(image):
            m = self.mesh(image, box)
            if m is None:
                continue
            again = self.mesh(image, box_of(m))  # crop it as every later frame of a track is cropped
            m = again if again is not None else m
            if all(overlap(box_of(m), f.box) < 0.5 for f in out):  # two boxes, one face
                out.append(Found(box_of(m), score, m))
        return out

    def biggest(self, image: np.ndarray) -> Found | None:
        """The biggest face with its mesh (the subject of a single-person shot), or None."""
        found = self.find(image)
        return max(found, key=lambda f: f.size) if found else None

    def close(self) -> None:
        for o in (self._det, self._mesh):
            if o is not None:
                o.close()
        self._det = self._mesh = None

    def __enter__(self) -> "FaceSearch":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FaceFollower:
    """Faces over consecutive frames of one shot: ``follower(image) -> [Found]``, biggest first.

    The mesh runs around each face's predicted box; a full ``FaceSearch.find`` runs on the first
    frame, every ``redetect_every`` frames and whenever a face is lost."""

    def __init__(self, search: FaceSearch | None = None, *, redetect_every: int = 30, **search_options) -> None:
        self.search = search or FaceSearch(**search_options)
        self.redetect_every = max(1, int(redetect_every))
        self._faces: list[tuple[np.ndarray, np.ndarray | None]] = []  # (box, previous box)
        self._since = 0
        self.searches = 0

    def __call__(self, image: np.ndarray) -> list[Found]:
        self._since += 1
        if self._faces and self._since < self.redetect_every:
            out = []
            for box, prev in self._faces:
                guess = predicted_box(box, prev)
                m = self.search.mesh(image, guess)
                if m is None:
                    break
                if off_centre(guess, box_of(m)):
                    again = self.search.mesh(image, box_of(m))
                    m = again if again is not None else m
                out.append(Found(box_of(m), 1.0, m))
            else:
                self._faces = [(f.box, b) for f, (b, _) in zip(out, self._faces)]
                return out
        self.searches += 1
        self._since = 0
        found = sorted(self.search.find(image), key=lambda f: -f.size)
        self._faces = [(f.box, None) for f in found]
        return found

    def reset(self) -> None:
        self._faces = []

    def close(self) -> None:
        self.search.close()


def rgb_u8(image: np.ndarray) -> np.ndarray:
    """Any image array -> contiguous uint8 RGB (grey expanded, alpha dropped, floats scaled from 0..1)."""
    img = np.asarray(image)
    if img.dtype != np.uint8:
        img = np.clip(img * 255 if img.dtype.kind == "f" else img, 0, 255).astype(np.uint8)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return np.ascontiguousarray(img[..., :3])

"""Tracking faces across frames so each person keeps one id (several people in a shot).

``Tracker.update(frame, faces)`` matches this frame's faces to live tracks by box IoU and
landmark distance (Hungarian assignment), starts new tracks for the rest and retires tracks
not seen for ``max_gap`` frames. ``interpolate(track)`` fills the frames a track missed (a
detector blink) by linear interpolation of the landmarks, up to ``max_gap`` frames.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from machinima.faces import off_centre, predicted_box

from .landmarks import Face, box_of, eye_distance, iou


@dataclass
class Track:
    id: int
    frames: dict[int, np.ndarray] = field(default_factory=dict)  # frame -> (68, 2) landmarks
    last_frame: int = -1
    interpolated: set[int] = field(default_factory=set)

    @property
    def last(self) -> np.ndarray:
        return self.frames[self.last_frame]

    def box(self) -> np.ndarray:
        return box_of(self.last)

    def predicted_box(self, frame: int) -> np.ndarray:
        """Where the face's box will be at ``frame``: the last box moved on by the last frame's
        motion, so a moving face sits centred in the crop its landmarks are found in (a face
        off-centre by a frame's motion comes out shifted by about half a pixel, against it)."""
        prev = self.frames.get(self.last_frame - 1)
        return predicted_box(self.box(), None if prev is None else box_of(prev), frame - self.last_frame)


class Tracker:
    def __init__(self, *, min_iou: float = 0.2, max_gap: int = 12) -> None:
        self.min_iou = min_iou
        self.max_gap = max_gap
        self.tracks: dict[int, Track] = {}
        self._next = 0

    def live(self, frame: int) -> list[Track]:
        return [t for t in self.tracks.values() if 0 < frame - t.last_frame <= self.max_gap]

    def update(self, frame: int, faces: list[Face]) -> list[Face]:
        """Assign track ids to ``faces`` (in place) and record them; returns the faces."""
        from scipy.optimize import linear_sum_assignment

        live = self.live(frame)
        faces = [f for f in faces if f.landmarks is not None]
        if live and faces:
            cost = np.ones((len(live), len(faces)))
            for i, t in enumerate(live):
                tb, tl = t.box(), t.last
                scale = max(eye_distance(tl), 1e-6)
                for j, f in enumerate(faces):
                    ov = iou(tb, f.box)
                    d = np.linalg.norm(tl - f.landmarks, axis=1).mean() / scale
                    cost[i, j] = (1 - ov) + 0.1 * min(d, 10) if ov >= self.min_iou else 10.0
            rows, cols = linear_sum_assignment(cost)
            for i, j in zip(rows, cols):
                if cost[i, j] < 10.0:
                    faces[j].track = live[i].id
        for f in faces:
            if f.track is None:
                f.track = self._next
                self.tracks[self._next] = Track(self._next)
                self._next += 1
            t = self.tracks[f.track]
            t.frames[frame] = np.asarray(f.landmarks, np.float64)
            t.last_frame = max(t.last_frame, frame)
        return faces


def interpolate(track: Track, max_gap: int = 12) -> Track:
    """Fill gaps of at most ``max_gap`` frames between seen frames (in place)."""
    seen = sorted(track.frames)
    for a, b in zip(seen, seen[1:]):
        if 1 < b - a <= max_gap + 1:
            la, lb = track.frames[a], track.frames[b]
            for f in range(a + 1, b):
                w = (f - a) / (b - a)
                track.frames[f] = (1 - w) * la + w * lb
                track.interpolated.add(f)
    return track


class FaceFinder:
    """Faces per frame, cheaply: full detection on the first frame, when a face is lost, and
    every ``redetect_every`` frames (to catch people walking in); in between only landmarks on
    the region around each tracked face's predicted box. Returns faces with track ids."""

    def __init__(self, backend, *, redetect_every: int = 30, max_gap: int = 12, min_iou: float = 0.2) -> None:
        self.backend = backend
        self.redetect_every = max(1, int(redetect_every))
        self.tracker = Tracker(min_iou=min_iou, max_gap=max_gap)
        self._last_detect: int | None = None
        self.detections = 0

    def __call__(self, frame: int, image: np.ndarray) -> list[Face]:
        live = self.tracker.live(frame)
        due = self._last_detect is None or frame - self._last_detect >= self.redetect_every or frame < self._last_detect
        if live and not due:
            faces = [self._follow(image, t.predicted_box(frame)) for t in live]
            if all(f is not None for f in faces):
                return self.tracker.update(frame, faces)  # type: ignore[arg-type]
        faces = self.backend.detect(image)
        self._last_detect = frame
        self.detections += 1
        return self.tracker.update(frame, faces)

    def _follow(self, image: np.ndarray, box: np.ndarray) -> Face | None:
        """Landmarks around the predicted box; again around the face's own box when it was not
        where predicted (a sudden start or stop), so every frame's crop is centred the same way."""
        face = self.backend.landmarks(image, box)
        if face is not None and off_centre(box, face.box):
            again = self.backend.landmarks(image, face.box)
            face = again if again is not None else face
        return face

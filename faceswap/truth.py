"""Tracking truth: a real portrait moved over a plate along known paths, so where its face is on
every frame is known exactly (the picture is moved by the program, to a fraction of a pixel).

Paths (image pixels per frame, at 1080p):

* ``still``: a still shot with sub-pixel camera shake (two slow sines of 0.3 px and a 0.05 px
  tremor): the smoothing should remove the detector's noise, not follow it;
* ``steady``: constant motion at ``speed`` px/frame (5-20): a smoothing that lags shows here;
* ``start-stop``: still, a sudden move at ``speed``, a sudden stop: overshoot and rounded corners.

The true landmarks are ``reference + offset``, where ``reference`` is the detector's own answer
for the picture at rest (its mean over the still path, shake removed), so the detector's fixed
bias is not counted as error; what is counted is noise, lag and overshoot.

``figures`` turns an estimate into the numbers the issue asks for: jitter (RMS, px, about each
landmark's own mean), lag (frames, on steady motion), overshoot (px past where the face starts
or stops, along the motion) and the worst frame's RMS error (px).

``FixedFace`` is a swap "network" that returns one aligned face whatever it is given. With the
plate face at rest it is a perfect network for placement checks: pasted where the smoothed
landmarks say, it shows the face exactly where the actor's face is only if tracking and
smoothing are right. With the source's photo it is the trivial face swap (paste the source's
face, aligned) that a trained model must beat.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PLATE = (1920, 1080)
ORIGIN = (120.0, 40.0)  # where the portrait's corner sits at offset (0, 0)
SCALE = 2.0  # the portrait's scale on the plate (scikit-image's astronaut: a ~210 px face)


@dataclass
class Path:
    name: str
    kind: str  # still | steady | start-stop
    offsets: np.ndarray  # (T, 2) px
    speed: float = 0.0  # px/frame while moving
    direction: tuple[float, float] = (1.0, 0.0)

    def __len__(self) -> int:
        return len(self.offsets)

    @property
    def unit(self) -> np.ndarray:
        d = np.asarray(self.direction, np.float64)
        return d / np.linalg.norm(d)


def still_shake(n: int = 24, amplitude: float = 0.3, fps: float = 24.0, seed: int = 1) -> Path:
    t = np.arange(n) / fps
    rng = np.random.default_rng(seed)
    off = amplitude * np.stack([np.sin(2 * np.pi * 1.1 * t), np.cos(2 * np.pi * 0.7 * t + 1)], 1) + rng.normal(0, 0.05, (n, 2))
    return Path("still", "still", off)


def steady(speed: float, n: int = 24, direction: tuple[float, float] = (1.0, 0.25)) -> Path:
    d = np.asarray(direction, np.float64) / np.linalg.norm(direction)
    return Path(f"steady-{speed:g}", "steady", np.arange(n)[:, None] * speed * d, speed, direction)


def start_stop(speed: float = 15.0, still: int = 8, moving: int = 12, direction: tuple[float, float] = (1.0, 0.2)) -> Path:
    d = np.asarray(direction, np.float64) / np.linalg.norm(direction)
    s = np.concatenate([np.zeros(still), np.arange(1, moving + 1) * speed, np.full(still, moving * speed)])
    return Path(f"start-stop-{speed:g}", "start-stop", s[:, None] * d, speed, direction)


def portrait() -> np.ndarray:
    """scikit-image's astronaut (Eileen Collins, public domain), shipped in the wheel."""
    import skimage.data

    return np.ascontiguousarray(skimage.data.astronaut())


def background(size: tuple[int, int] = PLATE) -> np.ndarray:
    """A plate without a face: scikit-image's coffee photo, stretched to the plate."""
    import cv2
    import skimage.data

    return np.ascontiguousarray(cv2.resize(skimage.data.coffee(), size, interpolation=cv2.INTER_CUBIC))


def render(picture: np.ndarray, plate: np.ndarray, offset: np.ndarray, *, origin: tuple[float, float] = ORIGIN,
           scale: float = SCALE) -> np.ndarray:
    """The plate with the picture pasted at ``origin + offset`` (sub-pixel exact, bilinear)."""
    import cv2

    m = np.float32([[scale, 0, origin[0] + offset[0]], [0, scale, origin[1] + offset[1]]])
    out = plate.copy()
    cv2.warpAffine(picture, m, (plate.shape[1], plate.shape[0]), dst=out, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_TRANSPARENT)
    return out


def reference(still_raw: np.ndarray, still_offsets: np.ndarray) -> np.ndarray:
    """The detector's landmarks for the picture at offset (0, 0): its mean over a still path."""
    return (np.asarray(still_raw, np.float64) - np.asarray(still_offsets, np.float64)[:, None, :]).mean(0)


def truth(ref: np.ndarray, path: Path) -> np.ndarray:
    return np.asarray(ref, np.float64)[None] + path.offsets[:, None, :]


def figures(est: np.ndarray, true: np.ndarray, path: Path, *, settle: int = 4) -> dict[str, float]:
    """The issue's figures for one estimate (T, 68, 2) against the truth (T, 68, 2), in pixels.

    ``worst_px``: the worst frame's RMS error over the landmarks; ``jitter_px`` (still): RMS of
    each landmark's error about its own mean; ``lag_frames`` (steady): the mean error against the
    motion over the interior frames (``settle`` frames left out at each end), over the speed;
    ``overshoot_px`` (start-stop): how far the face's centre goes past its start or stop position.
    """
    est, true = np.asarray(est, np.float64), np.asarray(true, np.float64)
    err = est - true
    out = {"worst_px": float(np.sqrt((err ** 2).sum(-1).mean(-1)).max())}
    if path.kind == "still":
        out["jitter_px"] = float(np.sqrt(((err - err.mean(0)) ** 2).sum(-1).mean()))
    elif path.kind == "steady":
        inner = err.mean(1)[settle:len(err) - settle] if len(err) > 2 * settle + 2 else err.mean(1)
        out["lag_frames"] = float(-(inner @ path.unit).mean() / path.speed)
    else:
        c, tc = est.mean(1) @ path.unit, true.mean(1) @ path.unit
        out["overshoot_px"] = float(max(0.0, c.max() - tc.max(), tc.min() - c.min()))
    return out


class FixedFace:
    """(N, 3, res, res) -> (N, 4, res, res): always the face of ``frame`` aligned by ``landmarks``,
    with a full mask."""

    def __init__(self, frame: np.ndarray, landmarks: np.ndarray, face_type: str = "whole", res: int = 256) -> None:
        from .align import align

        face, _ = align(frame, landmarks, face_type, res)
        self.face = face.astype(np.float32).transpose(2, 0, 1) / 255.0
        self.res = res

    def __call__(self, x: np.ndarray) -> np.ndarray:
        out = np.ones((len(x), 4, self.res, self.res), np.float32)
        out[:, :3] = self.face
        return out


def track(frames, backend=None) -> np.ndarray:
    """(T, 68, 2) landmarks of the one face in ``frames``, found and tracked as merge does."""
    from .backends import get_backend
    from .tracker import FaceFinder

    be = backend or get_backend("mediapipe")
    finder = FaceFinder(be)
    out = []
    try:
        for i, img in enumerate(frames):
            faces = finder(i, img)
            if not faces:
                from .errors import NoFaceError

                raise NoFaceError(f"no face found on frame {i} of the truth path")
            out.append(max(faces, key=lambda f: f.size).landmarks)
    finally:
        if backend is None:
            be.close()
    return np.stack(out)

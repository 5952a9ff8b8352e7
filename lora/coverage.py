"""Coverage: what an image set contains and what it lacks, measured per image and drawn as one PNG.

Per image (``Row``): head pose (yaw, pitch, roll in degrees, from the 478-point face mesh in the
mediapipe wheel: the face's right axis runs between the outer eye corners, its up axis from chin
to forehead, forward is their cross product), expression (mouth openness = lip gap / mouth width;
eye openness = lid gap / eye width), light (mean luma of the face box; direction = angle of the
left-right and top-bottom luma difference across the face, 0° = light from the image's right,
90° = from above), sharpness (variance of the Laplacian at 256 px), resolution (short side, face
size in pixels).

Two sets (``compare_sets(source, destination)``): a destination image is *uncovered* when no
source image is near it in one of three groups, each measured in tolerance units:

    pose        yaw / pose_tol, pitch / pose_tol, roll / pose_tol        (default 15°)
    expression  mouth / 0.15, eyes / 0.12
    light       brightness / 0.15, light direction (unit vector x strength) / 0.5

(nearest source farther than 1.0 = uncovered). Histogram bins that hold destination images and
no source image are drawn red: that is what to shoot or collect next.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

# face mesh landmark indices
_EYE_OUT_L, _EYE_OUT_R = 33, 263       # image-left eye outer corner, image-right eye outer corner
_EYE_IN_L, _EYE_IN_R = 133, 362
_LID_L, _LID_L2, _LID_R, _LID_R2 = 159, 145, 386, 374
_LIP_TOP, _LIP_BOT, _MOUTH_L, _MOUTH_R = 13, 14, 61, 291
_FOREHEAD, _CHIN = 10, 152


@dataclass
class Row:
    label: str
    face: bool = False
    yaw: float = float("nan")
    pitch: float = float("nan")
    roll: float = float("nan")
    mouth: float = float("nan")
    eyes: float = float("nan")
    brightness: float = 0.0
    light_angle: float = float("nan")
    light_strength: float = 0.0
    width: int = 0
    height: int = 0
    face_px: float = 0.0
    sharpness: float = 0.0
    short_side: int = 0


@dataclass
class Analysis:
    name: str
    rows: list[Row] = field(default_factory=list)
    thumbs: list[np.ndarray] = field(default_factory=list)

    def to_doc(self) -> dict[str, Any]:
        return {"name": self.name, "rows": [asdict(r) for r in self.rows]}


class FaceMesher:
    """The 478-point face mesh of the biggest face, at every shot size (``machinima.faces``)."""

    def __init__(self) -> None:
        from machinima.faces import FaceSearch

        self._search = FaceSearch(refine=True, min_confidence=0.4)

    def landmarks(self, img: np.ndarray) -> np.ndarray | None:
        """(478, 3) pixel coordinates (z in pixels, negative = towards the camera) or None."""
        face = self._search.biggest(img)
        return None if face is None else face.mesh

    def close(self) -> None:
        self._search.close()


def head_pose(lm: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees from face mesh points; 0,0,0 = facing the camera upright.
    Yaw > 0: the face turns towards the image's right; pitch > 0: looking up; roll > 0: the head
    tilts clockwise in the image."""
    right = lm[_EYE_OUT_R] - lm[_EYE_OUT_L]
    up = lm[_FOREHEAD] - lm[_CHIN]
    right /= np.linalg.norm(right) + 1e-9
    up = up - right * float(up @ right)
    up /= np.linalg.norm(up) + 1e-9
    fwd = np.cross(right, up)  # towards the camera for a frontal face: (0, 0, -1)
    yaw = math.degrees(math.atan2(fwd[0], -fwd[2]))
    pitch = math.degrees(math.atan2(-fwd[1], math.hypot(fwd[0], fwd[2])))
    roll = math.degrees(math.atan2(right[1], right[0]))
    return yaw, pitch, roll


def _dist(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a[:2] - b[:2]))


def analyze_image(img: np.ndarray, label: str, mesher: FaceMesher | None) -> Row:
    import cv2

    from .dataset import sharpness

    img = np.ascontiguousarray(np.asarray(img)[..., :3])
    h, w = img.shape[:2]
    gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
    row = Row(label, width=w, height=h, sharpness=round(sharpness(img), 2), short_side=min(w, h))
    box = (0, 0, w, h)
    lm = mesher.landmarks(img) if mesher else None
    if lm is not None:
        row.face = True
        row.yaw, row.pitch, row.roll = (round(v, 2) for v in head_pose(lm))
        row.mouth = round(_dist(lm[_LIP_TOP], lm[_LIP_BOT]) / (_dist(lm[_MOUTH_L], lm[_MOUTH_R]) + 1e-9), 4)
        row.eyes = round(0.5 * (_dist(lm[_LID_L], lm[_LID_L2]) / (_dist(lm[_EYE_OUT_L], lm[_EYE_IN_L]) + 1e-9)
                                + _dist(lm[_LID_R], lm[_LID_R2]) / (_dist(lm[_EYE_OUT_R], lm[_EYE_IN_R]) + 1e-9)), 4)
        x0, y0 = np.clip(lm[:, :2].min(0), 0, [w - 1, h - 1]).astype(int)
        x1, y1 = np.clip(lm[:, :2].max(0), 1, [w, h]).astype(int)
        box = (x0, y0, max(x1, x0 + 2), max(y1, y0 + 2))
        row.face_px = round(float(min(x1 - x0, y1 - y0)), 1)
    x0, y0, x1, y1 = box
    face = gray[y0:y1, x0:x1]
    row.brightness = round(float(face.mean()), 4)
    hh, ww = face.shape
    lr = float(face[:, ww // 2:].mean() - face[:, : ww // 2].mean())
    tb = float(face[: hh // 2].mean() - face[hh // 2:].mean())
    row.light_strength = round(math.hypot(lr, tb) / (row.brightness + 1e-6), 4)
    row.light_angle = round(math.degrees(math.atan2(tb, lr)), 1)
    return row


def _thumb(img: np.ndarray, size: int = 96) -> np.ndarray:
    import cv2

    h, w = img.shape[:2]
    s = size / max(h, w)
    return cv2.resize(np.ascontiguousarray(img[..., :3]), (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)


def analyze_images(images: Iterable[tuple[str, np.ndarray]], name: str = "set", *, faces: bool = True) -> Analysis:
    mesher = FaceMesher() if faces else None
    out = Analysis(name)
    try:
        for label, img in images:
            out.rows.append(analyze_image(img, label, mesher))
            out.thumbs.append(_thumb(img))
    finally:
        if mesher:
            mesher.close()
    return out


def analyze_collection(col: Any, *, faces: bool = True) -> Analysis:
    """Every readable image of a ``machinima.collections`` folder (unreadable ones are skipped)."""
    return analyze_images(((it.file, img) for it, img in col.iter_images()), name=Path(col.root).name, faces=faces)


# --- two sets ------------------------------------------------------------------------------------

@dataclass
class Gaps:
    uncovered: list[tuple[Row, list[str]]] = field(default_factory=list)   # destination row, reasons
    empty_bins: dict[str, list[tuple[float, float]]] = field(default_factory=dict)  # per measure: bins only dst fills
    no_face: list[str] = field(default_factory=list)                        # destination images without a face

    def summary(self) -> list[str]:
        lines = [f"{r.label}: {'; '.join(why)}" for r, why in self.uncovered]
        for k, bins in self.empty_bins.items():
            if bins:
                lines.append(f"{k}: nothing in the source at " + ", ".join(f"{lo:g}..{hi:g}" for lo, hi in bins))
        return lines

    def to_doc(self) -> dict[str, Any]:
        return {"uncovered": [{"label": r.label, "reasons": why} for r, why in self.uncovered],
                "empty_bins": self.empty_bins, "no_face": self.no_face}


HIST = {  # measure -> (bins, label)
    "yaw": (np.arange(-90, 91, 15), "head yaw (deg)"),
    "pitch": (np.arange(-60, 61, 15), "head pitch (deg)"),
    "roll": (np.arange(-90, 91, 15), "head roll (deg)"),
    "mouth": (np.linspace(0, 0.8, 9), "mouth openness"),
    "eyes": (np.linspace(0, 0.6, 7), "eye openness"),
    "brightness": (np.linspace(0, 1, 11), "brightness (face)"),
    "light_angle": (np.arange(-180, 181, 45), "light from (deg, 0=right, 90=top)"),
    "sharpness": (None, "sharpness (Laplacian var)"),
    "face_px": (None, "face size (px)"),
    "short_side": (None, "resolution (short side, px)"),
}
GAP_MEASURES = ("yaw", "pitch", "roll", "mouth", "eyes", "brightness")


def _vec(rows: list[Row], group: str, pose_tol: float) -> np.ndarray:
    if group == "pose":
        return np.array([[r.yaw / pose_tol, r.pitch / pose_tol, r.roll / pose_tol] for r in rows]).reshape(-1, 3)
    if group == "expression":
        return np.array([[r.mouth / 0.15, r.eyes / 0.12] for r in rows]).reshape(-1, 2)
    return np.array([[r.brightness / 0.15, math.cos(math.radians(r.light_angle or 0)) * r.light_strength / 0.5,
                      math.sin(math.radians(r.light_angle or 0)) * r.light_strength / 0.5] for r in rows]).reshape(-1, 3)


def compare_sets(source: Analysis, destination: Analysis, *, pose_tol: float = 15.0) -> Gaps:
    """Where ``source`` does not cover ``destination`` (see the module docstring)."""
    gaps = Gaps()
    s_face = [r for r in source.rows if r.face]
    d_face = [r for r in destination.rows if r.face]
    gaps.no_face = [r.label for r in destination.rows if not r.face]
    groups = {"pose": "pose", "expression": "expression", "light": "light"}
    vecs = {g: (_vec(s_face, g, pose_tol), _vec(d_face, g, pose_tol)) for g in groups}
    for j, r in enumerate(d_face):
        why = []
        for g in groups:
            s, d = vecs[g]
            if len(s) == 0:
                why.append(f"{g}: the source has no faces")
                continue
            dist = np.linalg.norm(s - d[j], axis=1)
            k = int(np.argmin(dist))
            if dist[k] > 1.0:
                if g == "pose":
                    why.append(f"pose yaw {r.yaw:.0f}, pitch {r.pitch:.0f}, roll {r.roll:.0f} deg: nearest source "
                               f"{s_face[k].label} is {dist[k] * pose_tol:.0f} deg away")
                elif g == "expression":
                    why.append(f"expression mouth {r.mouth:.2f}, eyes {r.eyes:.2f}: nearest source {s_face[k].label} "
                               f"(mouth {s_face[k].mouth:.2f}, eyes {s_face[k].eyes:.2f})")
                else:
                    why.append(f"light brightness {r.brightness:.2f} from {r.light_angle:.0f} deg: nearest source "
                               f"{s_face[k].label} (brightness {s_face[k].brightness:.2f} from {s_face[k].light_angle:.0f} deg)")
        if why:
            gaps.uncovered.append((r, why))
    for m in GAP_MEASURES:
        bins = HIST[m][0]
        sv = np.array([getattr(r, m) for r in (s_face if m != "brightness" else source.rows)], float)
        dv = np.array([getattr(r, m) for r in (d_face if m != "brightness" else destination.rows)], float)
        sh, _ = np.histogram(sv[np.isfinite(sv)], bins)
        dh, _ = np.histogram(dv[np.isfinite(dv)], bins)
        gaps.empty_bins[m] = [(float(bins[i]), float(bins[i + 1])) for i in range(len(dh)) if dh[i] > 0 and sh[i] == 0]
    return gaps


# --- the picture ---------------------------------------------------------------------------------

def write_report(path: str | Path, a: Analysis, b: Analysis | None = None, gaps: Gaps | None = None, *, title: str = "") -> Path:
    """The report PNG (and the numbers as JSON beside it, same name with .json)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from machinima.fsutil import atomic_write_json
    from machinima.imageseq import contact_sheet

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sets = [a] + ([b] if b is not None else [])
    fig = plt.figure(figsize=(14, 10 + 3 * len(sets)), dpi=80)
    n_sheet = len(sets)
    gs = fig.add_gridspec(n_sheet + 3, 4, height_ratios=[2.2] * n_sheet + [1, 1, 1])
    for i, s in enumerate(sets):
        ax = fig.add_subplot(gs[i, :])
        thumbs = s.thumbs[:48] or [np.zeros((8, 8, 3), np.uint8)]
        sq = [_pad(t, 96) for t in thumbs]
        ax.imshow(contact_sheet(sq, columns=min(12, len(sq)), width=96 * min(12, len(sq))))
        faces = sum(r.face for r in s.rows)
        ax.set_title(f"{'source' if b is not None and i == 0 else 'destination' if i == 1 else 'set'} {s.name}: "
                     f"{len(s.rows)} images, {faces} with a face" + (f" (first 48 shown)" if len(s.thumbs) > 48 else ""))
        ax.axis("off")
    measures = ["yaw", "pitch", "roll", "mouth", "eyes", "brightness", "light_angle", "sharpness", "face_px", "short_side"]
    cells = [(n_sheet + k // 4, k % 4) for k in range(len(measures))]
    for m, (r_, c_) in zip(measures, cells):
        ax = fig.add_subplot(gs[r_, c_])
        bins, label = HIST[m]
        vals = [np.array([getattr(r, m) for r in s.rows], float) for s in sets]
        vals = [v[np.isfinite(v)] for v in vals]
        if bins is None:
            allv = np.concatenate(vals) if any(len(v) for v in vals) else np.array([0.0, 1.0])
            lo, hi = float(allv.min()), float(allv.max())
            if hi - lo < 1e-3 * max(1.0, abs(hi)):
                pad = max(1.0, 0.05 * abs(hi))
                lo, hi = lo - pad, hi + pad
            bins = np.linspace(lo, hi, 11)
        for v, s, col in zip(vals, sets, ("tab:blue", "tab:orange")):
            ax.hist(v, bins=bins, alpha=0.55, color=col, label=s.name)
        if gaps is not None:
            for lo, hi in gaps.empty_bins.get(m, []):
                ax.axvspan(lo, hi, color="red", alpha=0.25)
        ax.set_title(label, fontsize=9)
        ax.tick_params(labelsize=7)
        if m == "yaw" and b is not None:
            ax.legend(fontsize=7)
    ax = fig.add_subplot(gs[n_sheet + 2, 2:])
    for s, col in zip(sets, ("tab:blue", "tab:orange")):
        fr = [r for r in s.rows if r.face]
        ax.scatter([r.yaw for r in fr], [r.pitch for r in fr], c=col, s=24, alpha=0.7, label=s.name)
    if gaps is not None:
        ax.scatter([r.yaw for r, _ in gaps.uncovered], [r.pitch for r, _ in gaps.uncovered], facecolors="none", edgecolors="red",
                   s=120, label="not covered")
    ax.set_xlim(-90, 90)
    ax.set_ylim(-60, 60)
    ax.set_xlabel("yaw", fontsize=8)
    ax.set_ylabel("pitch", fontsize=8)
    ax.set_title("head pose" + (f": {len(gaps.uncovered)} destination image(s) not covered (red)" if gaps else ""), fontsize=9)
    ax.legend(fontsize=7)
    fig.suptitle(f"coverage {title}".strip())
    fig.tight_layout()
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)
    atomic_write_json(path.with_suffix(".json"), {"schema": "machinima.coverage", "version": 1, "sets": [s.to_doc() for s in sets],
                                                  "gaps": gaps.to_doc() if gaps else None})
    return path


def _pad(img: np.ndarray, size: int) -> np.ndarray:
    out = np.zeros((size, size, 3), np.uint8)
    h, w = img.shape[:2]
    y0, x0 = (size - h) // 2, (size - w) // 2
    out[y0:y0 + h, x0:x0 + w] = img[:size, :size]
    return out


def rows_json(a: Analysis) -> str:
    return json.dumps(a.to_doc())

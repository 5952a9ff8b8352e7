"""Green/blue screen keyer: colour-difference matte, soft edges unmixed, spill suppression.

Pure array logic on uint8 RGB with OpenCV primitives that release the GIL. The first matte is the
classic colour difference ``d = S - max(other two)`` (S = the screen channel) mapped through a
256-entry lookup table between two clip points given as fractions of the screen's own
difference. With ``edges="unmix"`` (the default) it only tells screen, actor and the band
between: in the band, ``edges.unmix`` measures each pixel's coverage on the line from the local
screen colour to the local actor colour and returns the actor's own colour there
(unpremultiplied, despilled), so ``alpha * fg + (1 - alpha) * bg`` is the exact over. With
``edges="classic"`` the clipped matte is the matte and spill suppression pulls S towards
``max(other two)`` by ``spill``. ``softness`` is a Gaussian blur of the final matte (sigma in
pixels) after an optional choke (erode > 0, dilate < 0).

``key_roi`` keys a coarse 1/4 size copy first to find the actor's bounding box and then keys
full resolution only inside it: most of a 1080p frame is screen, so this is where speed comes
from.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .errors import PlateError, SettingsError

SCREENS = {"green": 1, "blue": 2}
EDGES = ("unmix", "classic")
CLASSIC_SOFTNESS = 1.0  # px: the clipped matte's blur where unmixing falls back to it
DEFAULT_SCREEN_RGB = {"green": (40, 190, 60), "blue": (30, 60, 200)}
Rect = tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive)


def _cv2():
    import machinima.imageseq  # noqa: F401  (sets OPENCV_IO_ENABLE_OPENEXR before cv2 loads)
    import cv2

    return cv2


@dataclass(frozen=True)
class KeySettings:
    screen: str = "green"
    screen_rgb: tuple[int, int, int] | None = None  # None: estimated from the plate's border
    clip_black: float = 0.25  # difference below clip_black * screen difference: solid actor
    clip_white: float = 0.75  # above clip_white * screen difference: pure screen
    spill: float = 1.0  # 0 = no spill suppression, 1 = full
    softness: float = 0.0  # extra Gaussian blur of the matte edge in pixels (the unmixed matte is as soft as the plate)
    choke: int = 0  # pixels to erode (>0) or dilate (<0) the matte before softening
    edges: str = "unmix"  # unmix: coverage and colour of soft edges measured against screen and actor; classic: clip + clamp

    def __post_init__(self) -> None:
        if self.screen not in SCREENS:
            raise SettingsError(f"key screen must be one of {sorted(SCREENS)}, not {self.screen!r}")
        if not 0.0 <= self.clip_black < self.clip_white <= 1.5:
            raise SettingsError(f"key clip points need 0 <= clip_black < clip_white <= 1.5, got {self.clip_black}, {self.clip_white}")
        if not 0.0 <= self.spill <= 1.0:
            raise SettingsError(f"spill must be in [0, 1], got {self.spill}")
        if self.softness < 0 or abs(self.choke) > 50:
            raise SettingsError("softness must be >= 0 and |choke| <= 50 px")
        if self.edges not in EDGES:
            raise SettingsError(f"key edges must be one of {EDGES}, not {self.edges!r}")

    def to_doc(self) -> dict[str, Any]:
        return asdict(self)


def estimate_screen(rgb: np.ndarray, screen: str = "green", border: float = 0.08) -> tuple[int, int, int]:
    """The screen colour: median of screen-dominant pixels in the frame's outer border."""
    c = SCREENS[screen]
    h, w = rgb.shape[:2]
    b = max(1, int(min(h, w) * border))
    ring = np.concatenate([rgb[:b].reshape(-1, 3), rgb[-b:].reshape(-1, 3), rgb[:, :b].reshape(-1, 3), rgb[:, -b:].reshape(-1, 3)]).astype(np.int16)
    others = np.delete(ring, c, axis=1).max(axis=1)
    sel = ring[ring[:, c] - others > 20]
    if len(sel) < 16:
        return DEFAULT_SCREEN_RGB[screen]
    return tuple(int(v) for v in np.median(sel, axis=0))


class Keyer:
    """A keyer with its lookup table built once; ``key`` and ``key_roi`` are per frame."""

    def __init__(self, settings: KeySettings, screen_rgb: tuple[int, int, int] | None = None) -> None:
        self.s = settings
        self.c = SCREENS[settings.screen]
        self.o1, self.o2 = [i for i in range(3) if i != self.c]
        rgb = screen_rgb or settings.screen_rgb or DEFAULT_SCREEN_RGB[settings.screen]
        self.screen_rgb = tuple(int(v) for v in rgb)
        d_screen = self.screen_rgb[self.c] - max(self.screen_rgb[self.o1], self.screen_rgb[self.o2])
        if d_screen < 10:
            raise SettingsError(f"screen colour {self.screen_rgb} is not {settings.screen} enough to key", hint="pass --screen-rgb R,G,B")
        self.d_screen = d_screen
        lo, hi = settings.clip_black * d_screen, settings.clip_white * d_screen
        d = np.arange(256, dtype=np.float32)
        transparency = np.clip((d - lo) / max(hi - lo, 1e-6), 0.0, 1.0)
        self.lut = np.round(255.0 * (1.0 - transparency)).astype(np.uint8)
        self._cv2 = _cv2()
        cv2 = self._cv2
        self._choke_kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * abs(settings.choke) + 1,) * 2) if settings.choke else None

    @property
    def margin(self) -> int:
        """Pixels the matte can grow beyond the coarse bounding box."""
        return int(3 * self.s.softness + max(0, -self.s.choke) + (16 if self.s.edges == "unmix" else 10))

    def key(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(alpha uint8 HxW, the actor's colour uint8 RGB HxWx3: despilled, and unpremultiplied on soft edges with edges="unmix")."""
        cv2 = self._cv2
        if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] < 3:
            raise PlateError(f"the keyer needs uint8 RGB frames, got {rgb.shape} {rgb.dtype}")
        rgb = rgb[..., :3]
        ch = list(cv2.split(rgb))
        limit = cv2.max(ch[self.o1], ch[self.o2])
        diff = cv2.subtract(ch[self.c], limit)  # saturating: 0 where the screen channel is not dominant
        alpha = cv2.LUT(diff, self.lut)
        if self.s.edges == "unmix":
            from .edges import unmix

            classic = cv2.GaussianBlur(alpha, (0, 0), CLASSIC_SOFTNESS)  # for pixels the unmixing cannot explain
            alpha, colour = unmix(rgb, alpha, self.c, spill=self.s.spill, fallback=classic, classic=self._despill(ch, diff))
            return self._soften(alpha), colour
        return self._soften(alpha), self._despill(ch, diff)

    def _despill(self, ch: list[np.ndarray], diff: np.ndarray) -> np.ndarray:
        """The classic spill suppression: the screen channel pulled towards max(other two) by ``spill``."""
        cv2 = self._cv2
        ch = list(ch)
        if self.s.spill > 0:
            ch[self.c] = cv2.subtract(ch[self.c], diff) if self.s.spill >= 1.0 else cv2.addWeighted(ch[self.c], 1.0, diff, -self.s.spill, 0.0)
        return cv2.merge(ch)

    def _soften(self, alpha: np.ndarray) -> np.ndarray:
        cv2 = self._cv2
        if self._choke_kernel is not None:
            alpha = (cv2.erode if self.s.choke > 0 else cv2.dilate)(alpha, self._choke_kernel)
        if self.s.softness > 0:
            alpha = cv2.GaussianBlur(alpha, (0, 0), self.s.softness)
        return alpha

    def coarse_rect(self, rgb: np.ndarray, factor: int = 4) -> Rect | None:
        """Bounding box of the actor from a 1/factor key (None: no actor in the frame)."""
        cv2 = self._cv2
        h, w = rgb.shape[:2]
        small = cv2.resize(rgb[..., :3], (max(1, w // factor), max(1, h // factor)), interpolation=cv2.INTER_NEAREST)
        ch = cv2.split(small)
        diff = cv2.subtract(ch[self.c], cv2.max(ch[self.o1], ch[self.o2]))
        fg = cv2.compare(cv2.LUT(diff, self.lut), 0, cv2.CMP_GT)
        x, y, bw, bh = cv2.boundingRect(fg)
        if bw == 0 or bh == 0:
            return None
        sx, sy = w / small.shape[1], h / small.shape[0]
        m = self.margin
        return (max(0, int(x * sx) - m), max(0, int(y * sy) - m), min(w, int((x + bw) * sx + sx) + m), min(h, int((y + bh) * sy + sy) + m))

    def key_roi(self, rgb: np.ndarray) -> tuple[Rect, np.ndarray, np.ndarray] | None:
        """Key only around the actor: (rect, alpha, despilled RGB) in plate pixels, or None."""
        rect = self.coarse_rect(rgb)
        if rect is None:
            return None
        x0, y0, x1, y1 = rect
        alpha, fg = self.key(rgb[y0:y1, x0:x1])
        return rect, alpha, fg


def alpha_rect(alpha: np.ndarray, margin: int = 2) -> Rect | None:
    """Bounding box of the non-zero part of a matte, grown by ``margin`` (None when empty)."""
    cv2 = _cv2()
    x, y, w, h = cv2.boundingRect(cv2.compare(alpha, 0, cv2.CMP_GT))
    if w == 0 or h == 0:
        return None
    H, W = alpha.shape[:2]
    return max(0, x - margin), max(0, y - margin), min(W, x + w + margin), min(H, y + h + margin)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boolean mattes."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0

"""Temporal tools on arrays: optical flow, warping, occlusion, propagation, colour, cuts, cadence.

Flow convention: ``flow(a, b)`` is ``F`` with ``a(x) ~ b(x + F(x))`` (OpenCV DIS, dense, no
weights; ``stylize.motion`` gives the same convention from the render's exact motion or RAFT). ``warp(img_b, F)`` brings ``b`` into ``a``'s frame (backward warping). A pixel is
*occluded* when the forward and backward flows disagree by more than ``occlusion_px``.

Propagation (EbSynth-like, between two stylized keyframes): each in-between frame is the
stylized keyframes warped into it, blended with weights = temporal distance x visibility x
photometric agreement of the *input* frames, so a pixel hidden in one keyframe comes from the
other.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FLOW_MAX_SIDE = 512  # flow is computed at most this wide, then scaled up


def _cv2():
    import machinima.imageseq  # noqa: F401
    import cv2

    return cv2


_DIS: dict[int, object] = {}


def _dis(preset: int):
    cv2 = _cv2()
    if preset not in _DIS:
        _DIS[preset] = cv2.DISOpticalFlow_create(preset)
    return _DIS[preset]


def _gray(img: np.ndarray) -> np.ndarray:
    cv2 = _cv2()
    img = np.asarray(img)
    if img.dtype != np.uint8:
        img = np.clip(img * (255.0 if img.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
    return cv2.cvtColor(np.ascontiguousarray(img[..., :3]), cv2.COLOR_RGB2GRAY) if img.ndim == 3 else img


def flow(a: np.ndarray, b: np.ndarray, *, max_side: int = FLOW_MAX_SIDE, quality: str = "medium") -> np.ndarray:
    """Dense flow (HxWx2 float32, pixels) with ``a(x) ~ b(x + F(x))``."""
    cv2 = _cv2()
    ga, gb = _gray(a), _gray(b)
    h, w = ga.shape
    s = min(1.0, max_side / max(h, w))
    if s < 1.0:
        size = (max(8, int(round(w * s))), max(8, int(round(h * s))))
        ga = cv2.resize(ga, size, interpolation=cv2.INTER_AREA)
        gb = cv2.resize(gb, size, interpolation=cv2.INTER_AREA)
    preset = {"fast": cv2.DISOPTICAL_FLOW_PRESET_FAST, "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
              "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST}[quality]
    f = _dis(preset).calc(ga, gb, None)
    if s < 1.0:
        f = cv2.resize(f, (w, h), interpolation=cv2.INTER_LINEAR) / s
    return f.astype(np.float32)


def warp(img: np.ndarray, f: np.ndarray) -> np.ndarray:
    """Sample ``img`` at ``x + f(x)`` (border replicated); keeps dtype."""
    cv2 = _cv2()
    h, w = f.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    src = np.asarray(img)
    out = cv2.remap(src.astype(np.float32) if src.dtype != np.float32 else src, gx + f[..., 0], gy + f[..., 1],
                    interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    if src.dtype == np.uint8:
        return np.clip(out + 0.5, 0, 255).astype(np.uint8)
    return out


def visibility(f_ab: np.ndarray, f_ba: np.ndarray, occlusion_px: float = 1.5) -> np.ndarray:
    """HxW float32 in {0, 1}: 1 where the pixel of ``a`` is seen in ``b`` (flows agree)."""
    back = warp(f_ba, f_ab)
    err = np.linalg.norm(f_ab + back, axis=2)
    mag = np.linalg.norm(f_ab, axis=2) + np.linalg.norm(back, axis=2)
    return ((err <= occlusion_px + 0.05 * mag) & (inside(f_ab) > 0)).astype(np.float32)


@dataclass
class Link:
    """How keyframe ``k`` maps into frame ``t``: the flow t->k and where it can be trusted."""

    flow: np.ndarray
    weight: np.ndarray  # HxW float32 in [0, 1]: visibility x photometric agreement


def link(frame_t: np.ndarray, frame_k: np.ndarray, *, occlusion_px: float = 1.5, sigma: float = 24.0,
         flows: tuple[np.ndarray, np.ndarray] | None = None) -> Link:
    """``flows`` = (t->k, k->t) when known (the render's motion, RAFT); else DIS of the frames."""
    f_tk, f_kt = flows if flows is not None else (flow(frame_t, frame_k), flow(frame_k, frame_t))
    vis = visibility(f_tk, f_kt, occlusion_px)
    diff = np.abs(warp(frame_k, f_tk).astype(np.float32) - np.asarray(frame_t, np.float32))
    diff = diff.mean(axis=2) if diff.ndim == 3 else diff
    return Link(f_tk, vis * np.exp(-diff / sigma).astype(np.float32))


def propagate(frame_t: np.ndarray, key0: tuple[np.ndarray, np.ndarray], key1: tuple[np.ndarray, np.ndarray] | None,
              alpha: float, *, occlusion_px: float = 1.5, flows0: tuple[np.ndarray, np.ndarray] | None = None,
              flows1: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Fill frame ``t`` from stylized keyframes: ``keyN = (input keyframe, stylized keyframe)``.

    ``alpha`` is t's position between key0 (0) and key1 (1). Occlusion-aware: each pixel comes
    mostly from the keyframe that sees it. With ``key1=None`` it warps from key0 alone.
    ``flowsN`` = (t->keyN, keyN->t) when the motion is known; else DIS of the input frames.
    """
    l0 = link(frame_t, key0[0], occlusion_px=occlusion_px, flows=flows0)
    s0 = warp(key0[1], l0.flow).astype(np.float32)
    if key1 is None:
        return np.clip(s0 + 0.5, 0, 255).astype(np.uint8)
    l1 = link(frame_t, key1[0], occlusion_px=occlusion_px, flows=flows1)
    s1 = warp(key1[1], l1.flow).astype(np.float32)
    a = (1.0 - alpha) * l0.weight + 1e-4 * (1.0 - alpha)
    b = alpha * l1.weight + 1e-4 * alpha
    out = (s0 * a[..., None] + s1 * b[..., None]) / (a + b)[..., None]
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def inside(f: np.ndarray) -> np.ndarray:
    """HxW float32: 1 where ``x + f(x)`` falls inside the frame (the warp has a real source)."""
    h, w = f.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    tx, ty = gx + f[..., 0], gy + f[..., 1]
    return ((tx >= 0) & (tx <= w - 1) & (ty >= 0) & (ty <= h - 1)).astype(np.float32)


def warp_error(prev_out: np.ndarray, out: np.ndarray, prev_in: np.ndarray | None = None, cur_in: np.ndarray | None = None, *,
               occlusion_px: float = 1.5, motion: np.ndarray | None = None) -> float:
    """Flicker of one frame pair: mean |out - warp(prev_out)| over visible pixels (0..255).

    ``motion``: the exact backward motion cur -> prev (the render's motion pass, or the motion
    a test constructed); pixels whose source lies outside the previous frame are left out.
    Without it, DIS flow of the input frames, with a forward-backward visibility test.
    """
    if motion is not None:
        f = np.asarray(motion, np.float32)
        vis = inside(f)
    else:
        f = flow(cur_in, prev_in)
        vis = visibility(f, flow(prev_in, cur_in), occlusion_px)
    d = np.abs(np.asarray(out, np.float32) - warp(prev_out, f).astype(np.float32))
    d = d.mean(axis=2) if d.ndim == 3 else d
    n = float(vis.sum())
    return float((d * vis).sum() / n) if n > 0 else float(d.mean())


def warp_noise(noise: np.ndarray, f: np.ndarray, fresh: np.ndarray) -> np.ndarray:
    """Carry a keyframe's diffusion noise (C x h x w, latent grid) along the motion ``f``
    (H x W x 2 pixels, t -> k as ``flow``) into frame t, nearest sample per latent pixel, so every
    value is still an exact N(0, 1) draw; latent pixels whose source left the frame take
    ``fresh`` noise. With the noise fixed on the screen, textures a diffusion model grows from it
    stay on the screen while the picture moves (flicker); carried, they move with the picture.
    """
    cv2 = _cv2()
    c, h, w = noise.shape
    H, W = f.shape[:2]
    fl = cv2.resize(np.asarray(f, np.float32), (w, h), interpolation=cv2.INTER_AREA)
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    # latent pixel centres in image pixels, moved, back to latent pixels
    sx = np.rint(((gx + 0.5) * W / w + fl[..., 0]) * w / W - 0.5).astype(np.int64)
    sy = np.rint(((gy + 0.5) * H / h + fl[..., 1]) * h / H - 0.5).astype(np.int64)
    ok = (sx >= 0) & (sx < w) & (sy >= 0) & (sy < h)
    out = np.array(fresh, dtype=noise.dtype, copy=True)
    out[:, ok] = noise[:, sy[ok], sx[ok]]
    return out


# --- colour --------------------------------------------------------------------------------
def color_stats(img: np.ndarray) -> np.ndarray:
    """(2, 3): mean and std of the image in Lab."""
    cv2 = _cv2()
    lab = cv2.cvtColor(np.ascontiguousarray(img[..., :3]), cv2.COLOR_RGB2LAB).reshape(-1, 3).astype(np.float32)
    return np.stack([lab.mean(0), lab.std(0) + 1e-3])


def match_color(img: np.ndarray, target: list[np.ndarray], amount: float = 1.0) -> np.ndarray:
    """Shift ``img``'s Lab mean/std toward the average stats of ``target`` (a keyframe window)."""
    if not target:
        return img
    cv2 = _cv2()
    tgt = np.mean(np.stack(target), axis=0)
    src = color_stats(img)
    lab = cv2.cvtColor(np.ascontiguousarray(img[..., :3]), cv2.COLOR_RGB2LAB).astype(np.float32)
    matched = (lab - src[0]) / src[1] * tgt[1] + tgt[0]
    lab = lab + amount * (matched - lab)
    return cv2.cvtColor(np.clip(lab + 0.5, 0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB)


# --- cuts and cadence -----------------------------------------------------------------------
def histogram(img: np.ndarray) -> np.ndarray:
    cv2 = _cv2()
    hsv = cv2.cvtColor(np.ascontiguousarray(img[..., :3]), cv2.COLOR_RGB2HSV)
    h = cv2.calcHist([hsv], [0, 1], None, [16, 8], [0, 180, 0, 256]).astype(np.float32)
    return h / max(float(h.sum()), 1.0)


def cut_distance(h0: np.ndarray, h1: np.ndarray) -> float:
    """Bhattacharyya distance between two frame histograms (0 same .. 1 disjoint)."""
    cv2 = _cv2()
    return float(cv2.compareHist(h0, h1, cv2.HISTCMP_BHATTACHARYYA))


def mean_motion(a: np.ndarray, b: np.ndarray) -> float:
    """Mean flow magnitude a->b in pixels of the full frame (computed small, for planning)."""
    return float(np.linalg.norm(flow(a, b, max_side=160, quality="ultrafast"), axis=2).mean())


def segments(frames: list[int], shot_breaks: set[int], cuts: set[int], step: int = 1) -> list[list[int]]:
    """Split an ordered frame list where a shot starts, a cut was detected, or frames skip.

    ``step``: the source's own frame step (2 for passes rendered every 2nd frame): frames that
    far apart are neighbours, so a take rendered with ``--step 2`` keeps its cadence and keyframe
    init instead of becoming one-frame segments (independent frames, the flicker back)."""
    out: list[list[int]] = []
    for f in frames:
        if not out or f in shot_breaks or f in cuts or not 0 < f - out[-1][-1] <= step:
            out.append([f])
        else:
            out[-1].append(f)
    return out


def plan_keyframes(seg: list[int], mode: str, *, every: int = 4, adaptive: bool = False,
                   motion: dict[int, float] | None = None, motion_px: float = 12.0, max_gap: int = 12) -> list[int]:
    """Keyframes of one segment. ``motion[f]`` = mean motion from frame f-1 to f (adaptive only).

    every: all frames. hold: every N (or adaptive). propagate: as hold, plus the segment's last
    frame, so every in-between frame has keyframes on both sides.
    """
    if mode == "every" or not seg:
        return list(seg)
    keys = [seg[0]]
    acc = 0.0
    for f in seg[1:]:
        gap = f - keys[-1]
        if adaptive:
            acc += (motion or {}).get(f, 0.0)
            if acc >= motion_px or gap >= max_gap:
                keys.append(f)
                acc = 0.0
        elif gap >= every:
            keys.append(f)
    if mode == "propagate" and keys[-1] != seg[-1]:
        keys.append(seg[-1])
    return keys

"""Colour transfer: make the swapped face take the colours of the face it replaces.

All functions take float32 RGB images in [0, 1] (HxWx3) and optional masks (HxW, > 0.5 =
use this pixel for the statistics) and return the recoloured ``src``::

    rct   Reinhard: mean and std per channel in L*a*b* (fast, the usual default)
    lct   linear: match the RGB covariance (Cholesky-free, symmetric square roots)
    mkl   Monge-Kantorovich linear: the optimal-transport linear map between the two Gaussians
    idt   iterative distribution transfer (Pitie 2005): random rotations + 1-D histogram matching
    sot   sliced optimal transport: move along random directions by sorted-projection differences
    none  unchanged

idt and sot use a fixed seed, so the same frame always gets the same colours.
"""

from __future__ import annotations

import numpy as np

MODES = ("none", "rct", "lct", "mkl", "idt", "sot")


def _pixels(img: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    px = img.reshape(-1, 3)
    if mask is not None:
        sel = np.asarray(mask).reshape(-1) > 0.5
        if sel.sum() >= 16:
            return px[sel]
    return px


def _sqrtm(c: np.ndarray, inv: bool = False) -> np.ndarray:
    w, v = np.linalg.eigh(c)
    w = np.clip(w, 1e-8, None)
    return (v * (w ** (-0.5 if inv else 0.5))) @ v.T


def rct(src, ref, src_mask=None, ref_mask=None):
    import cv2

    s = cv2.cvtColor(np.clip(src, 0, 1).astype(np.float32), cv2.COLOR_RGB2LAB)
    r = cv2.cvtColor(np.clip(ref, 0, 1).astype(np.float32), cv2.COLOR_RGB2LAB)
    ps, pr = _pixels(s, src_mask), _pixels(r, ref_mask)
    ms, ss = ps.mean(0), ps.std(0) + 1e-6
    mr, sr = pr.mean(0), pr.std(0) + 1e-6
    out = (s - ms) * (sr / ss) + mr
    out[..., 0] = np.clip(out[..., 0], 0, 100)
    out[..., 1:] = np.clip(out[..., 1:], -127, 127)
    return np.clip(cv2.cvtColor(out.astype(np.float32), cv2.COLOR_LAB2RGB), 0, 1)


def lct(src, ref, src_mask=None, ref_mask=None):
    ps, pr = _pixels(src, src_mask).astype(np.float64), _pixels(ref, ref_mask).astype(np.float64)
    ms, mr = ps.mean(0), pr.mean(0)
    cs, cr = np.cov(ps.T) + np.eye(3) * 1e-5, np.cov(pr.T) + np.eye(3) * 1e-5
    t = _sqrtm(cr) @ _sqrtm(cs, inv=True)
    out = (src.reshape(-1, 3) - ms) @ t.T + mr
    return np.clip(out.reshape(src.shape), 0, 1).astype(np.float32)


def mkl(src, ref, src_mask=None, ref_mask=None):
    ps, pr = _pixels(src, src_mask).astype(np.float64), _pixels(ref, ref_mask).astype(np.float64)
    ms, mr = ps.mean(0), pr.mean(0)
    cs, cr = np.cov(ps.T) + np.eye(3) * 1e-5, np.cov(pr.T) + np.eye(3) * 1e-5
    cs_h, cs_ih = _sqrtm(cs), _sqrtm(cs, inv=True)
    t = cs_ih @ _sqrtm(cs_h @ cr @ cs_h) @ cs_ih
    out = (src.reshape(-1, 3) - ms) @ t.T + mr
    return np.clip(out.reshape(src.shape), 0, 1).astype(np.float32)


def _random_rotations(n: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        q, r = np.linalg.qr(rng.normal(size=(3, 3)))
        out.append(q * np.sign(np.diag(r)))
    return out


def _match_1d(x: np.ndarray, ref_sorted: np.ndarray, bins: int = 256) -> np.ndarray:
    """Map x's quantiles onto the reference distribution's quantiles."""
    qs = np.linspace(0, 1, bins)
    xq = np.quantile(x, qs)
    rq = np.quantile(ref_sorted, qs)
    xq, idx = np.unique(xq, return_index=True)
    return np.interp(x, xq, rq[idx])


def _sample_idx(sel: np.ndarray | None, n_all: int, limit: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of at most ``limit`` pixels (inside the mask when there is one): statistics on a
    sample, the mapping applied to every pixel."""
    idx = np.arange(n_all) if sel is None else np.flatnonzero(sel)
    return idx if len(idx) <= limit else rng.choice(idx, limit, replace=False)


def idt(src, ref, src_mask=None, ref_mask=None, iterations: int = 10, seed: int = 0, sample: int = 8192):
    rng = np.random.default_rng(seed)
    pr = _pixels(ref, ref_mask).astype(np.float64)
    pr = pr[rng.choice(len(pr), min(len(pr), sample), replace=False)]
    sel = None if src_mask is None else (np.asarray(src_mask).reshape(-1) > 0.5)
    if sel is not None and sel.sum() < 16:
        sel = None
    allpx = src.reshape(-1, 3).astype(np.float64).copy()
    pick = _sample_idx(sel, len(allpx), sample, rng)
    for rot in _random_rotations(iterations, seed):
        ps = allpx[pick]
        a = (ps @ rot.T)
        b = (pr @ rot.T)
        full = allpx @ rot.T
        for k in range(3):
            qs = np.linspace(0, 1, 256)
            aq, idx = np.unique(np.quantile(a[:, k], qs), return_index=True)
            bq = np.quantile(b[:, k], qs)[idx]
            full[:, k] = np.interp(full[:, k], aq, bq)
        allpx = full @ rot
    return np.clip(allpx.reshape(src.shape), 0, 1).astype(np.float32)


def sot(src, ref, src_mask=None, ref_mask=None, iterations: int = 20, directions: int = 6, seed: int = 0, sample: int = 4096):
    rng = np.random.default_rng(seed)
    sel = None if src_mask is None else (np.asarray(src_mask).reshape(-1) > 0.5)
    if sel is not None and sel.sum() < 16:
        sel = None
    allpx = src.reshape(-1, 3).astype(np.float64).copy()
    pr = _pixels(ref, ref_mask).astype(np.float64)
    pr = pr[rng.choice(len(pr), min(len(pr), sample), replace=False)]
    pick = _sample_idx(sel, len(allpx), sample, rng)
    qs = np.linspace(0, 1, 128)
    for _ in range(iterations):
        ps = allpx[pick]
        move = np.zeros_like(allpx)
        for _d in range(directions):
            v = rng.normal(size=3)
            v /= np.linalg.norm(v)
            a, b = ps @ v, pr @ v
            aq, idx = np.unique(np.quantile(a, qs), return_index=True)
            bq = np.quantile(b, qs)[idx]
            proj = allpx @ v
            move += np.outer(np.interp(proj, aq, bq) - proj, v)
        allpx += move / directions
    return np.clip(allpx.reshape(src.shape), 0, 1).astype(np.float32)


_FUNCS = {"rct": rct, "lct": lct, "mkl": mkl, "idt": idt, "sot": sot}


def transfer(src: np.ndarray, ref: np.ndarray, mode: str = "rct", src_mask: np.ndarray | None = None, ref_mask: np.ndarray | None = None) -> np.ndarray:
    """Recolour ``src`` to match ``ref`` (float32 [0, 1] RGB)."""
    if mode == "none":
        return np.asarray(src, np.float32)
    fn = _FUNCS.get(mode)
    if fn is None:
        raise ValueError(f"unknown colour transfer {mode!r}; use one of {', '.join(MODES)}")
    return fn(np.asarray(src, np.float32), np.asarray(ref, np.float32), src_mask, ref_mask)

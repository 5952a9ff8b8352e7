"""The invisible watermark (quantization-index modulation of low DCT coefficients of a luma
grid, convolutionally coded, soft Viterbi decoding). Pure numpy + OpenCV, no I/O.

Payload (96 bits, ``machinima-qim-cc-v2``)::

    production  16 bits   a hash of the production's name
    manifest    32 bits   a hash of the output's C2PA manifest label (urn:c2pa:<uuid>)
    tag         32 bits   HMAC-SHA256(production secret, production + manifest bits), truncated
    crc         16 bits   CRC-16 of the 80 bits above

The layout (which coefficient carries which coded bit) and the CRC are public, so anyone can
tell a marked frame from an unmarked one; only a holder of the production's secret can make a
tag that checks, so a third party cannot forge "this frame is ours and says X". The tag is
checked by ``WatermarkResult.authentic(secret)``.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

from ..rights import DisclosureError

WM_SCHEME = "machinima-qim-cc-v2"
WM_BITS = 96  # payload: production 16 + manifest 32 + HMAC tag 32 + CRC-16
_CC_K = 7  # convolutional code, constraint length 7, rate 1/3 (generators 133, 171, 165 octal)
_CC_GENS = (0o133, 0o171, 0o165)
WM_CODED = (WM_BITS + _CC_K - 1) * len(_CC_GENS)  # 306 coded bits, spread over the chips
WM_STRENGTH = 20.0  # QIM step on orthonormal 8x8 DCT coefficients of the luma grid (PSNR ~43.7 dB)
WM_MIN_SIDE = 128
WM_FOUND_CONFIDENCE = 0.12  # codeword agreement (plus a valid CRC-16); unmarked 1080p frames measure about 0.07
_WM_UNMARKED = 0.44  # unmarked agreement is about 0.44 / sqrt(coefficients per coded bit): small frames need more
_WM_COEFS = ((0, 1), (1, 0), (1, 1), (0, 2), (2, 0))
_WM_LAYOUT_SEED = b"machinima-watermark-v2"  # public: presence is detectable without any key
_layouts: dict[tuple[int, int], tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = {}
_basis: np.ndarray | None = None


def _wm_basis() -> np.ndarray:
    global _basis
    if _basis is None:
        d = np.zeros((8, 8))
        for k in range(8):
            d[k] = (np.sqrt(1 / 8) if k == 0 else np.sqrt(2 / 8)) * np.cos(np.pi * (2 * np.arange(8) + 1) * k / 16)
        _basis = np.stack([np.outer(d[u], d[v]) for u, v in _WM_COEFS]).astype(np.float32)
    return _basis


def _wm_grid(h: int, w: int) -> tuple[int, int]:
    bw = max(4, min(48, w // 16))
    bh = max(4, int(round(bw * h / w)))
    return bh, bw


def _wm_layout(bh: int, bw: int):
    key = (bh, bw)
    if key not in _layouts:
        n = bh * bw * len(_WM_COEFS)
        seed = int.from_bytes(hashlib.sha256(_WM_LAYOUT_SEED + f"{bh}x{bw}".encode()).digest()[:8], "little")
        rng = np.random.default_rng(seed)
        bit_of = rng.permutation(n) % WM_CODED
        dither = rng.random(n)
        flip = rng.integers(0, 2, n)
        counts = np.bincount(bit_of, minlength=WM_CODED)
        _layouts[key] = (bit_of, dither, flip, counts)
    return _layouts[key]


def _wm_coeffs(y_low: np.ndarray, bh: int, bw: int) -> np.ndarray:
    blocks = y_low.reshape(bh, 8, bw, 8)
    return np.einsum("ixjy,cxy->ijc", blocks, _wm_basis(), optimize=True).reshape(-1)


def _wm_synth(dc: np.ndarray, bh: int, bw: int) -> np.ndarray:
    return np.einsum("ijc,cxy->ixjy", dc.reshape(bh, bw, -1), _wm_basis(), optimize=True).reshape(bh * 8, bw * 8).astype(np.float32)


class _Banded:
    """A square matrix that is zero outside a few diagonals: ``M @ x`` along an axis as shifted adds."""

    def __init__(self, m: np.ndarray) -> None:
        n = m.shape[0]
        rows, cols = np.nonzero(np.abs(m) > 1e-7)
        k = int(np.max(np.abs(cols - rows))) if len(rows) else 0
        self.diags = {}
        for off in range(-k, k + 1):
            d = np.zeros(n, np.float32)
            i = np.arange(max(0, -off), min(n, n - off))
            d[i] = m[i, i + off]
            self.diags[off] = d

    def apply(self, x: np.ndarray, axis: int) -> np.ndarray:
        """(M @ x) for axis 0, (x @ M.T) for axis 1."""
        out = np.zeros_like(x)
        n = x.shape[axis]
        for off, d in self.diags.items():
            lo, hi = max(0, -off), min(n, n - off)
            if axis == 0:
                out[lo:hi] += d[lo:hi, None] * x[lo + off:hi + off]
            else:
                out[:, lo:hi] += d[None, lo:hi] * x[:, lo + off:hi + off]
        return out


_roundtrips: dict[tuple[int, int, int, int], tuple[_Banded, _Banded]] = {}


def _wm_roundtrip(h: int, w: int, bh: int, bw: int) -> tuple[_Banded, _Banded]:
    """(My, Mx): area-down(linear-up(x)) == My @ x @ Mx.T for a low-res grid ``x`` (both banded)."""
    import cv2

    key = (h, w, bh, bw)
    if key not in _roundtrips:
        def axis(n_low: int, n_full: int) -> _Banded:
            eye = np.eye(n_low, dtype=np.float32)
            up = cv2.resize(eye, (n_low, n_full), interpolation=cv2.INTER_LINEAR)  # columns: basis vectors
            return _Banded(cv2.resize(up, (n_low, n_low), interpolation=cv2.INTER_AREA))

        _roundtrips[key] = (axis(bh * 8, h), axis(bw * 8, w))
    return _roundtrips[key]


def _luma_low(img: np.ndarray, bh: int, bw: int) -> np.ndarray:
    import cv2

    img = np.asarray(img)
    if img.ndim == 3 and img.shape[2] == 4:
        img = img[..., :3]
    y = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2GRAY) if img.ndim == 3 else img
    return cv2.resize(y, (bw * 8, bh * 8), interpolation=cv2.INTER_AREA).astype(np.float32)


def production_tag(production: str) -> str:
    """The 16-bit production field, as 4 hex digits."""
    return hashlib.sha256(f"production:{production}".encode()).hexdigest()[:4]


def manifest_tag(manifest_label: str) -> str:
    """The 32-bit manifest field, as 8 hex digits."""
    return hashlib.sha256(f"manifest:{manifest_label}".encode()).hexdigest()[:8]


def _hmac_tag(secret: bytes, fields: bytes) -> bytes:
    return hmac.new(secret, b"machinima-watermark-v2:" + fields, hashlib.sha256).digest()[:4]


def payload_bytes(production: str, manifest_label: str, secret: bytes) -> bytes:
    """The 12 payload bytes: production, manifest, HMAC tag, CRC-16."""
    if not secret:
        raise DisclosureError("the watermark needs the production's secret key", hint="see [rights] in machinima.toml")
    fields = bytes.fromhex(production_tag(production) + manifest_tag(manifest_label))
    data = fields + _hmac_tag(secret, fields)
    return data + binascii.crc_hqx(data, 0xFFFF).to_bytes(2, "big")


def payload_bits(production: str, manifest_label: str, secret: bytes) -> np.ndarray:
    return np.unpackbits(np.frombuffer(payload_bytes(production, manifest_label, secret), np.uint8)).astype(np.int64)


_trellis: tuple[np.ndarray, np.ndarray] | None = None


def _cc_trellis() -> tuple[np.ndarray, np.ndarray]:
    """(next_state[state, bit], outputs[state, bit, gen]) of the K=7 rate-1/3 code."""
    global _trellis
    if _trellis is None:
        n_states = 1 << (_CC_K - 1)
        nxt = np.zeros((n_states, 2), np.int64)
        out = np.zeros((n_states, 2, len(_CC_GENS)), np.int64)
        for st in range(n_states):
            for b in (0, 1):
                reg = (b << (_CC_K - 1)) | st  # newest bit at the top
                nxt[st, b] = reg >> 1
                for g, gen in enumerate(_CC_GENS):
                    out[st, b, g] = bin(reg & gen).count("1") & 1
        _trellis = (nxt, out)
    return _trellis


def cc_encode(bits: np.ndarray) -> np.ndarray:
    """Convolutionally encode ``bits`` (+ K-1 zero tail bits): 3 coded bits per input bit."""
    nxt, out = _cc_trellis()
    st, coded = 0, []
    for b in list(np.asarray(bits, np.int64)) + [0] * (_CC_K - 1):
        coded.extend(out[st, b])
        st = nxt[st, b]
    return np.asarray(coded, np.int64)


def cc_decode(soft: np.ndarray) -> np.ndarray:
    """Soft Viterbi: ``soft`` (+1 = coded 0, -1 = coded 1) -> the 64 payload bits."""
    nxt, out = _cc_trellis()
    n_states = nxt.shape[0]
    steps = len(soft) // len(_CC_GENS)
    sig = 1 - 2 * out  # (S, 2, G) in {+1, -1}
    metric = np.full(n_states, -np.inf)
    metric[0] = 0.0
    back = np.zeros((steps, n_states), np.int64)  # predecessor * 2 + bit
    src = np.repeat(np.arange(n_states), 2)
    bit = np.tile([0, 1], n_states)
    dst = nxt[src, bit]
    for t in range(steps):
        s = np.asarray(soft[t * len(_CC_GENS):(t + 1) * len(_CC_GENS)])
        cand = metric[src] + (sig[src, bit] * s).sum(axis=1)
        if t >= steps - (_CC_K - 1):  # tail: only zero inputs
            cand = np.where(bit == 0, cand, -np.inf)
        order = np.lexsort((-cand, dst))  # best candidate first within each destination
        first = np.r_[True, dst[order][1:] != dst[order][:-1]]
        win = order[first]
        new = np.full(n_states, -np.inf)
        new[dst[win]] = cand[win]
        back[t, dst[win]] = src[win] * 2 + bit[win]
        metric = new
    st, bits = 0, []
    for t in range(steps - 1, -1, -1):
        code = back[t, st]
        bits.append(code & 1)
        st = code >> 1
    return np.asarray(bits[::-1][:WM_BITS], np.uint8)


def can_watermark(img: np.ndarray) -> bool:
    a = np.asarray(img)
    return a.dtype == np.uint8 and a.ndim == 3 and a.shape[2] in (3, 4) and min(a.shape[:2]) >= WM_MIN_SIDE


class WatermarkMemory:
    """The lattice points chosen for the previous frame of one video, so the next frame keeps
    them where its content has not moved (``embed_watermark(..., memory=)``).

    Why: a step's movie is made from its frames, each already marked with its own manifest id.
    Re-marked independently, a still background lands on one lattice point in one frame and on
    the neighbouring one in the next (the earlier marks differ), so the mark flickers and the
    video codec spends its bits (and its time: x264 ~2-4x) coding the flicker. Keeping the
    previous point while it is within one quantization step makes the mark as still as the
    picture; what the decoder reads is unchanged (every carrier still sits on the payload's
    lattice), and a moved carrier costs at most one step instead of half a step.
    """

    STICKY = 1.0  # keep the previous point while the carrier is within this many steps of it
    SETTLED = 0.6  # ``settle=True``: a frame whose carriers agree this well with the mark already carries it

    def __init__(self, *, settle: bool = False) -> None:
        """``settle``: a frame that already carries this very mark (a step's movie made from its
        QOI frames, marked with the step's sequence id) is passed as it is, pixel for pixel, so
        x264 codes nothing the frames do not already hold; any other frame is marked in full.
        "Carries it": the mean agreement of its carriers with the payload's lattice (1 = every
        carrier on its point, about 0 for an unmarked frame or another payload) is at least
        ``SETTLED``; a frame the step marked measures about 0.9, its rounding included. Such a
        frame is returned as the very array given (no copy: ~1 ms a 1080p frame of a step movie)."""
        self.targets: dict[tuple[int, int, bytes, float], np.ndarray] = {}
        self.kept = 0
        self.carriers = 0
        self.settle = settle
        self.untouched = 0  # frames passed unchanged (``settle``: they already carry the mark)


def embed_watermark(img: np.ndarray, production: str, manifest_label: str, secret: bytes, *,
                    strength: float = WM_STRENGTH, memory: WatermarkMemory | None = None) -> np.ndarray:
    """Return a copy of the uint8 RGB(A) ``img`` carrying the production, the manifest label's
    hash and their HMAC tag (keyed with ``secret``). Marking a marked frame again replaces
    the old payload: quantization moves every carrier onto the new payload's lattice.
    ``memory`` (one per video): consecutive frames keep their lattice points where the picture
    is still (see ``WatermarkMemory``)."""
    import cv2

    img = np.asarray(img)
    if not can_watermark(img):
        raise DisclosureError(f"cannot watermark a {img.shape} {img.dtype} image (needs uint8 RGB, at least {WM_MIN_SIDE} px a side)")
    alpha = img[..., 3:] if img.shape[2] == 4 else None
    rgb = np.ascontiguousarray(img[..., :3])
    h, w = rgb.shape[:2]
    bh, bw = _wm_grid(h, w)
    bit_of, dither, flip, _ = _wm_layout(bh, bw)
    payload = payload_bytes(production, manifest_label, secret)
    chips = cc_encode(np.unpackbits(np.frombuffer(payload, np.uint8)).astype(np.int64))[bit_of] ^ flip
    offset = (dither + chips / 2.0) * strength
    y = _luma_low(rgb, bh, bw)
    c = _wm_coeffs(y, bh, bw)
    target = np.round((c - offset) / strength) * strength + offset
    if memory is not None:
        key = (h, w, payload, float(strength))
        prev = memory.targets.get(key)
        if prev is not None:
            keep = np.abs(c - prev) <= memory.STICKY * strength
            target = np.where(keep, prev, target)
            memory.kept += int(keep.sum())
            memory.carriers += keep.size
        if memory.settle and float(np.mean(np.cos(2 * np.pi * (c - offset) / strength))) >= memory.SETTLED:
            # already carries this mark: the frame as it is (alpha kept), its own points remembered;
            # the caller's array itself, not a copy (the movie's encoder copies it into its frame)
            memory.targets[key] = np.round((c - offset) / strength) * strength + offset
            memory.untouched += 1
            return img
        memory.targets[key] = target
    d1 = np.clip(_wm_synth(target - c, bh, bw), -30, 30)
    # second pass, in the low-res domain: correct what linear up + area down will lose
    # (that round trip is separable and linear: two small cached matrices, no full-size work)
    my, mx = _wm_roundtrip(h, w, bh, bw)
    c2 = _wm_coeffs(y + mx.apply(my.apply(d1, 0), 1), bh, bw)
    dlow = np.clip(d1 + _wm_synth(target - c2, bh, bw), -60, 60)
    # one upsample of the delta, stored as uint8 (2*d + 128: half-level precision), then the
    # same delta on R, G and B with one saturating weighted add
    low8 = cv2.convertScaleAbs(dlow, alpha=2.0, beta=128.0)
    full8 = cv2.resize(low8, (w, h), interpolation=cv2.INTER_LINEAR)
    out = cv2.addWeighted(rgb, 1.0, cv2.cvtColor(full8, cv2.COLOR_GRAY2RGB), 0.5, -64.0)
    return np.concatenate([out, alpha], axis=2) if alpha is not None else out


@dataclass
class WatermarkResult:
    """What a decode found. ``found`` needs no key (a valid CRC and a strong codeword); whether
    the payload is genuine needs the production's secret (``authentic``)."""

    found: bool
    production_tag: str = ""  # 4 hex digits
    manifest_tag: str = ""  # 8 hex digits
    tag: str = ""  # the HMAC tag, 8 hex digits
    confidence: float = 0.0  # agreement of the soft values with the decoded codeword, 1 = clean
    crc_ok: bool = False
    frames: int = 0
    reason: str = ""
    bits: np.ndarray | None = field(default=None, repr=False)
    soft: np.ndarray | None = field(default=None, repr=False)

    def of_production(self, production: str) -> bool:
        return self.found and self.production_tag == production_tag(production)

    def names_manifest(self, manifest_label: str) -> bool:
        return self.found and self.manifest_tag == manifest_tag(manifest_label)

    def authentic(self, secret: bytes) -> bool:
        """True when the tag was made with ``secret`` (constant-time compare)."""
        if not self.found or not secret:
            return False
        fields = bytes.fromhex(self.production_tag + self.manifest_tag)
        return hmac.compare_digest(_hmac_tag(secret, fields).hex(), self.tag)

    def to_doc(self) -> dict[str, Any]:
        return {"found": self.found, "production_tag": self.production_tag, "manifest_tag": self.manifest_tag,
                "confidence": round(self.confidence, 3), "crc_ok": self.crc_ok, "frames": self.frames, "reason": self.reason}


class _WMAccumulator:
    def __init__(self) -> None:
        self.acc = np.zeros(WM_CODED)
        self.cnt = np.zeros(WM_CODED)
        self.frames = 0
        self.skipped = 0
        self.per_coded = np.inf  # coefficients per coded bit in the smallest frame

    def add(self, img: np.ndarray, strength: float = WM_STRENGTH) -> None:
        img = np.asarray(img)
        if img.dtype != np.uint8 or min(img.shape[:2]) < WM_MIN_SIDE:
            self.skipped += 1
            return
        h, w = img.shape[:2]
        bh, bw = _wm_grid(h, w)
        bit_of, dither, flip, counts = _wm_layout(bh, bw)
        c = _wm_coeffs(_luma_low(img, bh, bw), bh, bw)
        soft = np.cos(2 * np.pi * ((c / strength - dither) % 1.0))
        soft = np.where(flip == 1, -soft, soft)  # +1 -> bit 0, -1 -> bit 1
        self.acc += np.bincount(bit_of, weights=soft, minlength=WM_CODED)
        self.cnt += counts
        self.frames += 1
        self.per_coded = min(self.per_coded, len(bit_of) / WM_CODED)

    def result(self) -> WatermarkResult:
        if self.frames == 0:
            return WatermarkResult(False, reason=f"image too small or not 8-bit (needs {WM_MIN_SIDE} px a side)")
        s = self.acc / np.maximum(self.cnt, 1)  # soft coded bits: +1 = 0, -1 = 1
        bits = cc_decode(s)
        raw = np.packbits(bits).tobytes()
        crc_ok = binascii.crc_hqx(raw[:10], 0xFFFF).to_bytes(2, "big") == raw[10:12]
        # confidence: how well the soft values agree with the decoded codeword (1 = clean)
        conf = float(np.mean(s * (1 - 2 * cc_encode(bits))))
        threshold = max(WM_FOUND_CONFIDENCE, float(1.5 * _WM_UNMARKED / np.sqrt(self.per_coded)))
        found = bool(crc_ok and conf >= threshold)
        reason = "" if found else ("no watermark (checksum fails)" if not crc_ok else f"too weak (confidence {conf:.2f})")
        if not found:
            return WatermarkResult(False, confidence=conf, crc_ok=crc_ok, frames=self.frames, reason=reason, bits=bits, soft=s)
        return WatermarkResult(True, raw[:2].hex(), raw[2:6].hex(), raw[6:10].hex(), conf, crc_ok, self.frames, "", bits, s)


def decode_watermark(images: np.ndarray | Iterable[np.ndarray], *, strength: float = WM_STRENGTH) -> WatermarkResult:
    """Decode the watermark from one image or from several frames carrying the same payload
    (soft sum: the frames of one signed video)."""
    acc = _WMAccumulator()
    if isinstance(images, np.ndarray) and images.ndim in (2, 3) and images.dtype == np.uint8 and (images.ndim == 2 or images.shape[2] in (3, 4)):
        images = [images]
    for im in images:
        acc.add(im, strength)
    return acc.result()

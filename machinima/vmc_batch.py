"""VMC frames from a batch of datagrams in one pass: the steady state of a sender, replayed.

Why: decoding and assembling datagram by datagram costs tens of microseconds of Python per
frame (a packet object, the assembler's rules, a frame object), several times what taking the
datagram off the socket costs. But a sender repeats itself: the same bundle layout (the
decoder's template), the same parts in the same order, frame after frame. Once the per-packet
path (``VMCDecoder`` + ``VMCAssembler``, the truth) has seen a frame end right after its last
datagram (a trailing T/OK or a complete layout), the assembler keeps that frame's templates
(``VMCAssembler.cycle``). ``replay`` then takes the following datagrams of that sender in
whole frames: every datagram is checked against its template for all frames at once (one
integer comparison over a 2-D array of words), values are gathered with one fancy index per
part, poses are built as one (k, 55, 7) block with the root composed in one vectorised pass,
and the assembler and decoder are left exactly as the per-packet path would leave them (votes,
layout, bones as sent, root, blendshapes, counters). The first datagram that does not fit
(another length, a word that differs, a NaN) ends the replay; the caller feeds the rest one by
one. tests/mocap/test_mocap_vmc_batch.py feeds the same datagrams both ways and compares every
frame and the assembler's state.
"""

from __future__ import annotations

import numpy as np

from .vmc_decode import _ALL_BONES, _HIPS, VMCDecoder
from .vmc_frames import _IDENTITY_ROOT, VMCAssembler

__all__ = ["FrameBlock", "replay"]


class FrameBlock:
    """Frames of one sender made by ``replay``: ``t_recv_ns`` (k,), ``pose`` (k, 55, 7)
    canonical (None for a sender without pose), ``time_s`` (k,) float64 (NaN: no sender
    clock), ``blendshapes`` (k dicts, or None), ``root_name``."""

    __slots__ = ("t_recv_ns", "pose", "time_s", "blendshapes", "root_name", "n")

    def __init__(self, t_recv_ns: np.ndarray, pose: np.ndarray | None, time_s: np.ndarray, blendshapes: list | None, root_name: str | None) -> None:
        self.t_recv_ns = t_recv_ns
        self.pose = pose
        self.time_s = time_s
        self.blendshapes = blendshapes
        self.root_name = root_name
        self.n = int(t_recv_ns.shape[0])


_S2 = np.array([1.0, -1.0, 1.0, -1.0])
_S3 = np.array([1.0, 1.0, -1.0, -1.0])
_S4 = np.array([-1.0, 1.0, 1.0, -1.0])


def compose_root_block(roots: np.ndarray, poses: np.ndarray) -> None:
    """``vmc_decode.compose_root`` on every row, in place, with the same float64 operations in
    the same order (so a replayed frame is bit-identical to one made packet by packet), in a
    dozen numpy calls."""
    r = roots.astype(np.float64)
    hip = poses[:, _HIPS].astype(np.float64)
    q, qw = r[:, 3:6], r[:, 6:7]
    h, b = hip[:, :3], hip[:, 3:7]
    t = 2 * np.cross(q, h)  # (qy*hz - qz*hy, ...) * 2
    p = h + qw * t + np.cross(q, t)
    out = np.empty((roots.shape[0], 7))
    out[:, :3] = r[:, :3] + p
    # quaternion product q * b, term by term in compose_root's order (x - y == x + -y exactly)
    out[:, 3:] = qw * b + r[:, 3:4] * b[:, [3, 2, 1, 0]] * _S2 + r[:, 4:5] * b[:, [2, 3, 0, 1]] * _S3 + r[:, 5:6] * b[:, [1, 0, 3, 2]] * _S4
    poses[:, _HIPS] = out


def _matching(data: np.ndarray, rows: np.ndarray, lens: np.ndarray, tpl) -> tuple[np.ndarray, np.ndarray]:
    """(ok per row, values per row) of ``rows`` checked against template ``tpl``. Costs per
    element matter here (every datagram of a replay goes through it): the values are gathered
    big-endian, turned native once and mirrored in place (a multiply mixing byte orders costs
    twice as much), and finiteness is checked over the whole block first (one contiguous
    pass; per row only when something is NaN or inf)."""
    n_words = tpl.mask.shape[0]
    ok = lens[rows] == n_words * 4
    if not ok.any():
        return ok, np.zeros((rows.shape[0], tpl.values.shape[0]), dtype=np.float32)
    raw = data[rows, : n_words * 4]  # a copy: (k, bytes)
    vals = raw.view(">f4")[:, tpl.values].astype(np.float32)
    vals *= tpl.flip
    words = raw.view(np.uint32)
    np.bitwise_and(words, tpl.mask, out=words)  # in place (the copy): the varying words become 0
    ok &= raw.view(f"V{n_words * 4}")[:, 0] == tpl.expected_words.view(f"V{n_words * 4}")[0]  # one memcmp a row
    if not np.isfinite(vals).all():  # element by element: no overflow of huge finite values, no warning
        ok &= np.isfinite(vals).all(axis=1)
    return ok, vals


def replay(dec: VMCDecoder, asm: VMCAssembler, data: np.ndarray, lens: np.ndarray, stamps: np.ndarray, rows: np.ndarray) -> FrameBlock | None:
    """Frames of one sender from ``rows`` (its datagrams in a batch, in order: ``data[r,
    :lens[r]]`` arrived at ``stamps[r]``), replaying ``asm.cycle`` while the datagrams fit it.
    Returns None when not even the first frame fits; else a block of ``n`` frames that used
    the first ``n * len(cycle)`` rows."""
    cyc = asm.cycle
    if cyc is None or asm.pending:
        return None
    parts, why = cyc
    m = len(parts)
    frames = rows.shape[0] // m
    if frames == 0:
        return None
    use = rows[: frames * m].reshape(frames, m)
    ok, v = _matching(data, use[:, 0], lens, parts[0])
    vals = [v]
    for p in range(1, m):
        okp, v = _matching(data, use[:, p], lens, parts[p])
        ok &= okp
        vals.append(v)
    f = frames if ok.all() else int(ok.argmin())  # the first that does not fit
    if f == 0:
        return None
    if f < frames:
        use = use[:f]
        vals = [v[:f] for v in vals]
    t = stamps[use.reshape(-1)].reshape(f, m)

    # bones as sent (Hips local to the root), root, time, blendshapes
    first_bones = next((tpl for tpl in parts if tpl.bone_index.shape[0]), None)
    whole = first_bones is not None and first_bones.bone_index is _ALL_BONES
    local = None if whole else np.broadcast_to(asm.local, (f,) + asm.local.shape).copy()
    root = None
    root_name = None
    time_s = np.full(f, np.nan)
    have_time = False
    blend_parts = []
    had_blend = False
    has_pose = asm.has_pose
    for tpl, v in zip(parts, vals):
        nb = tpl.bone_index.shape[0]
        if nb:
            if local is None:  # the first part sends every bone in order: its values are the pose
                local = v[:, : nb * 7].reshape(f, nb, 7)
            else:
                local[:, tpl.bone_index] = v[:, : nb * 7].reshape(f, nb, 7)
            has_pose = True
        at = nb * 7
        if tpl.n_roots:
            at += tpl.n_roots * 7
            root = v[:, at - 7:at] + np.float32(0.0)  # the mirror's -0.0 becomes 0.0, as in the assembler
            root_name = tpl.root_names[-1]
            has_pose = True
        if tpl.n_times:
            at += tpl.n_times
            if not have_time:
                time_s = v[:, at - 1].astype(np.float64)
                have_time = True
        if tpl.blend_names:
            blend_parts.append((tpl.blend_names, v[:, at:]))
            had_blend = True
        elif tpl.blend_apply:
            had_blend = True
    if root is None:
        root = np.broadcast_to(asm.root, (f, 7)).copy()
    asm.local[:] = local[-1]  # bones as sent (Hips local to the root): the assembler keeps them (before composing)
    poses = local  # our own array (gathered values or a copy): composed in place
    moved = (root != _IDENTITY_ROOT).any(axis=1)
    if moved.all():
        compose_root_block(root, poses)
    elif moved.any():
        sub = poses[moved]
        compose_root_block(root[moved], sub)
        poses[moved] = sub
    blends = None
    staged = asm.staged_blend
    if had_blend:
        blends = []
        for k in range(f):
            for names, bv in blend_parts:
                staged.update(zip(names, bv[k].tolist()))
            blends.append(dict(staged))

    # the assembler as the per-packet path leaves it (asm.local: above)
    asm.root[:] = root[-1]
    asm._root_moved = bool(moved[-1])
    if root_name is not None:
        asm.root_name = root_name
    asm.has_pose = has_pose
    keys = parts[0].keys if m == 1 else frozenset().union(*(tpl.keys for tpl in parts))
    for _ in range(min(f, asm._recent.maxlen or f)):
        asm._learn(keys)
    _replay_votes(asm, parts, t, f, m)
    asm._last_ns = int(t[-1, -1])
    asm.frames += f
    asm.ended[why] = asm.ended.get(why, 0) + f
    # the decoder as the per-packet path leaves it
    dec.packets += f * m
    dec.fast_hits += f * m
    for tpl in parts:
        for k, c in tpl.rejected.items():
            dec.rejects[k] += c * f
    if had_blend:  # the decoder's Blend/Apply state: only the last frame's values remain
        for tpl, v in zip(parts, vals):
            if tpl.blend_names:
                at = tpl.bone_index.shape[0] * 7 + tpl.n_roots * 7 + tpl.n_times
                dec._pending_blend.update(zip(tpl.blend_names, v[-1, at:].tolist()))
            if tpl.blend_apply:
                dec.applied_blendshapes = dict(dec._pending_blend)
    return FrameBlock(t[:, 0].copy(), poses if has_pose else None, time_s, blends, asm.root_name)


def _replay_votes(asm: VMCAssembler, parts: tuple, t: np.ndarray, f: int, m: int) -> None:
    """Each replayed frame votes for the datagram after its clearly longest gap, as
    ``VMCAssembler._vote`` does frame by frame."""
    if m == 1:  # one datagram a frame: every vote is "none"
        if asm.head is None and asm._vote_counts.get(None, 0) == 8:  # already 8 "none" votes: nothing changes
            asm._gap_max, asm._gap_rep, asm._gap_sum, asm._gap_n = 0, None, 0, 0
            return
        for _ in range(min(f, 8)):
            asm._gap_n = 1
            asm._vote()
        return
    gaps = np.empty((f, m), dtype=np.int64)
    flat = t.reshape(-1)
    gaps.reshape(-1)[1:] = np.diff(flat)
    gaps[0, 0] = flat[0] - asm._last_ns if asm._last_ns else 0
    top = gaps.max(axis=1)
    rep = gaps.argmax(axis=1)  # the first of equal maxima, as the strict ">" of the assembler
    total = gaps.sum(axis=1)
    if asm.head_votes == 8 and asm._votes.maxlen == 8:
        # with a unanimous vote of 8, the state after any number of votes depends only on the
        # last 8: the head is the value of all 8 when they agree (not "none"), else no head
        last = range(max(0, f - 8), f)
        sure = top * (m - 1) > asm.head_ratio * (total - top)
        votes = [parts[int(rep[k])].keys if top[k] > 0 and sure[k] else None for k in last]
        window = (list(asm._votes) + votes)[-8:]
        asm._votes.clear()
        asm._votes.extend(window)
        counts: dict = {}
        for v in window:
            counts[v] = counts.get(v, 0) + 1
        asm._vote_counts = counts
        first = window[0] if window else None
        asm.head = first if len(window) == 8 and first is not None and counts[first] == 8 else None
        asm._gap_max, asm._gap_rep, asm._gap_sum, asm._gap_n = 0, None, 0, 0
        return
    for k in range(f):
        tk = int(top[k])
        asm._gap_n = m
        asm._gap_max = tk
        asm._gap_rep = parts[int(rep[k])].keys if tk > 0 else None
        asm._gap_sum = int(total[k])
        asm._vote()

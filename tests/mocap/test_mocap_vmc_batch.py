"""The batched path gives what the per-packet path gives: every frame (pose bit for bit, sender
time, receive stamp), the assembler's state, the decoder's counters, and the recorded stamps.

Datagrams are built with python-osc (tests/mocap/vmc_senders.py) in the shapes real senders
use; they are cut into batches at random places (a batch may end in the middle of a frame), a
NaN datagram and a datagram of another layout are mixed in, and both paths are fed the same
bytes with the same stamps."""

from __future__ import annotations

import numpy as np
import pytest

from machinima.udpbatch import Batch
from mocap.frames import Frame
from mocap.sources import VMCSource
from mocap.timing import StreamTiming

from vmc_senders import bundle, frame_messages, message, split

PORT0 = 50000


def _datagrams(shape: str, frames: int, senders: int, *, blend: bool = False) -> list[tuple[int, bytes]]:
    out = []
    for k in range(frames):
        for i in range(senders):
            t = None if shape.endswith("no_t") else 10.0 + k / 60
            msgs = frame_messages(k, name=f"p{i}", time_s=t, markers="last" if "last" in shape else "first", blend=blend)
            if shape.startswith("bundle"):
                out.append((i, bundle(msgs).dgram))
            elif shape.startswith("split3"):
                out += [(i, bundle(p).dgram) for p in split(msgs, 3)]
            elif shape.startswith("split"):
                out += [(i, bundle(p).dgram) for p in split(msgs, 2)]
            else:
                out += [(i, m.dgram) for m in msgs]
    return out


def _batches(grams: list[tuple[int, bytes]], stamps: list[int], rng: np.random.Generator) -> list[Batch]:
    addrs = {PORT0 + p: ("127.0.0.1", PORT0 + p) for p in range(16)}
    out, i = [], 0
    while i < len(grams):
        k = int(rng.integers(1, 300))
        part, st = grams[i:i + k], stamps[i:i + k]
        data = np.zeros((len(part), max(len(d) for _, d in part) + 8), np.uint8)  # (rows wider than any datagram, as the ring's)
        for j, (_, d) in enumerate(part):
            data[j, :len(d)] = np.frombuffer(d, np.uint8)
        out.append(Batch(len(part), data, np.array([len(d) for _, d in part]), np.array(st, np.int64),
                         np.array([PORT0 + p for p, _ in part], np.int64), st[-1], addrs))
        i += k
    return out


def _flat(items) -> list[tuple]:
    res = []
    for it in items:
        if isinstance(it, Frame):
            res.append((it.performer, it.t_recv_ns, it.pose, it.sender_time_s, it.blendshapes))
        else:
            perf, b = it
            for k in range(b.n):
                ts = float(b.time_s[k])
                res.append((perf, int(b.t_recv_ns[k]), None if b.pose is None else b.pose[k], None if ts != ts else ts,
                            None if b.blendshapes is None else b.blendshapes[k]))
    return sorted(res, key=lambda x: (x[0], x[1]))


def _state(src: VMCSource) -> dict:
    return {k: (s.performer, s.asm.layout, s.asm.head, s.asm.frames, dict(s.asm.ended), s.asm.local.tobytes(), s.asm.root.tobytes(),
                s.asm.root_name, dict(s.asm.staged_blend), list(s.asm._votes), s.asm._last_ns, s.decoder.packets, s.decoder.applied_blendshapes)
            for k, s in src._senders.items()}


@pytest.mark.parametrize("shape,paced", [("bundle_last", False), ("bundle_first", False), ("bundle_no_t", False), ("split_last", False),
                                         ("split_last", True), ("split_first_no_t", True), ("split3_last", True), ("singles_last", False)])
def test_batched_frames_equal_per_packet_frames(shape, paced):
    """``paced``: each frame's datagrams back to back, then a pause (the assembler learns the
    head of the frame by its votes); else evenly spaced."""
    rng = np.random.default_rng(7)
    grams = _datagrams(shape, 40, 3, blend=shape == "bundle_last")
    per_frame = len(grams) // 40
    # a NaN bone and a datagram of another layout mid-stream: the replay must stop there
    bad = bytearray(grams[len(grams) // 2][1])
    at = bytes(bad).find(b"Spine\x00") + 8
    bad[at:at + 4] = b"\x7f\xc0\x00\x00"
    grams.insert(len(grams) // 2, (grams[len(grams) // 2][0], bytes(bad)))
    grams.insert(len(grams) // 3, (1, bundle([message("/VMC/Ext/Bone/Pos", "Head", 0.0, 0.1, 0.0, 0.0, 0.0, 0.0, 1.0)]).dgram))
    grams.insert(len(grams) // 4, (2, b""))  # an empty datagram (rejected as "empty" both ways)
    nan = float("nan")
    grams.insert(2 * len(grams) // 3, (0, message("/VMC/Ext/Bone/Pos", "Spine", 0.0, nan, 0.0, 0.0, 0.0, 0.0, 1.0).dgram))  # a known layout, a NaN
    grams.insert(2 * len(grams) // 3, (1, message("/VMC/Ext/T", nan).dgram))
    grams.insert(len(grams) // 5, (0, b"/VMC/Ext/T\x00\x00,f\x00\x00"))  # cut short
    if paced:
        stamps = [1_000_000_000 + 8_000_000 * (i // per_frame) + 20_000 * (i % per_frame) + int(rng.integers(0, 2_000)) for i in range(len(grams))]
    else:
        stamps = [1_000_000_000 + 50_000 * i + int(rng.integers(0, 20_000)) for i in range(len(grams))]
    stamps = list(np.maximum.accumulate(stamps))
    a, b = VMCSource("vmc"), VMCSource("vmc")
    fa = []
    for (p, d), t in zip(grams, stamps):
        fa += a.feed(d, ("127.0.0.1", PORT0 + p), t)
    fb = []
    for bt in _batches(grams, stamps, rng):
        fb += b.feed_batch(bt)
    fa += a.flush()
    fb += b.flush()
    A, B = _flat(fa), _flat(fb)
    assert len(A) == len(B) > 0
    for x, y in zip(A, B):
        assert x[:2] == y[:2] and x[3] == y[3] and x[4] == y[4]
        assert (x[2] is None) == (y[2] is None) and (x[2] is None or np.array_equal(x[2], y[2]))
    assert _state(a) == _state(b)
    assert dict(a.rejects) == dict(b.rejects)
    if not shape.startswith("singles"):
        assert any(not isinstance(it, Frame) for it in fb)  # the steady state was replayed in blocks
    if paced and shape.startswith("split"):
        assert all(s.asm.head is not None for s in a._senders.values())  # the head was learned (both ways: the states are equal)


@pytest.mark.parametrize("seed,clock_jitter", [(11, 0.0), (12, 0.0015), (13, 0.003)])
def test_push_block_equals_push(seed, clock_jitter):
    """Stamps, counters, anchor and period after a block equal those after the same frames one
    by one: a held-up start (the anchor slews), reanchors, jitter, drops; ``clock_jitter``:
    the sender's own clock steps unevenly (the period's running median moves)."""
    rng = np.random.default_rng(seed)
    n = 600
    keys = 5.0 + np.arange(n) / 120 + rng.uniform(0, clock_jitter, n)
    keys = np.delete(keys, [100, 101, 250, 400])  # drops
    transit = 2_000_000 + rng.integers(0, 300_000, keys.shape[0])
    transit[0] += 40_000_000  # held up: the anchor slews down
    transit[300:] -= 30_000_000  # the path got shorter: a reanchor
    recv = (keys * 1e9).astype(np.int64) + transit
    one, blk = StreamTiming(fill_gaps=False), StreamTiming(fill_gaps=False)
    t_one = []
    for k, r in zip(keys.tolist(), recv.tolist()):
        f = Frame("a", "vmc", r, None, k)
        assert one.push(f)
        t_one += [g.t_ns for g in one.pop_ready(r)]
    first = Frame("a", "vmc", int(recv[0]), None, float(keys[0]))
    blk.push(first)
    t_blk = [g.t_ns for g in blk.pop_ready(int(recv[0]))]
    at = 1
    while at < keys.shape[0]:
        k = int(rng.integers(1, 90)) if at < 300 else int(rng.integers(130, 200))  # short blocks frame by frame, long ones by stretches
        t = blk.push_block("a", "vmc", recv[at:at + k], keys[at:at + k], None)
        assert t is not None
        t_blk += t.tolist()
        at += k
    assert t_one == t_blk
    assert one.counts == blk.counts and one.counts["dropped"] == 4 and one.counts["reanchored"] >= 1
    for name in ("_anchor_ns", "_target_ns", "_offset_ns", "_last_t", "_last_key", "_period", "_n_periods", "_last_transit", "_last_sender_ns"):
        assert getattr(one, name) == getattr(blk, name), name
    assert list(one.latency_ns) == list(blk.latency_ns) and list(one._periods) == list(blk._periods)


def test_push_block_refuses_what_is_not_plain():
    st = StreamTiming(fill_gaps=False)
    st.push(Frame("a", "vmc", 1_000_000_000, None, 1.0))
    st.pop_ready()
    recv = np.array([1_010_000_000, 1_020_000_000])
    assert st.push_block("a", "vmc", recv, np.array([1.01, np.nan]), None) is None  # a frame without a clock
    assert st.push_block("a", "vmc", recv, np.array([1.02, 1.01]), None) is None  # out of order
    assert st.push_block("a", "vmc", recv, np.array([0.5, 0.6]), None) is None  # back in time (a restart)
    assert st.counts["received"] == 1
    assert st.push_block("a", "vmc", recv, np.array([1.01, 1.02]), None) is not None


@pytest.mark.parametrize("replay_min_frames", [1, 4])
def test_live_frames_go_on_in_arrival_order_before_the_rest_is_decoded(replay_min_frames):
    """A burst of one frame from each of 3 senders (what a listener keeping up reads): the
    frame that arrived first comes out first, whatever its sender's address (the default: too
    few frames a sender to replay), and each reaches
    ``on_frame`` before the next datagram is decoded (live latency is one frame's work, not
    a batch's). Frame content as the per-packet path gives it."""
    from mocap.ingest import Ingest

    grams = _datagrams("bundle_last", 12, 3)
    order = [2, 0, 1]  # the highest port first: a sort by address would reorder them
    per = [VMCSource("vmc", replay_min_frames=replay_min_frames), VMCSource("vmc")]
    seen: list[tuple[str, int]] = []
    ing = Ingest(on_frame=lambda f: seen.append((f.performer, ing.sources["vmc"]._senders_decoded())))
    src = ing.add_source(per[0])
    src._senders_decoded = lambda: sum(s.decoder.packets for s in src._senders.values())  # type: ignore[attr-defined]
    addrs = {PORT0 + p: ("127.0.0.1", PORT0 + p) for p in range(3)}
    ref = []
    for k in range(12):
        part = [grams[3 * k + p] for p in order]
        stamps = [1_000_000_000 + k * 16_666_667 + 1_000 * j for j in range(3)]
        data = np.zeros((3, max(len(d) for _, d in part) + 8), np.uint8)
        for j, (_, d) in enumerate(part):
            data[j, :len(d)] = np.frombuffer(d, np.uint8)
        seen.clear()
        ing.batch("vmc", Batch(3, data, np.array([len(d) for _, d in part]), np.array(stamps, np.int64),
                               np.array([PORT0 + p for p, _ in part], np.int64), stamps[-1], addrs))
        for (p, d), t in zip(part, stamps):
            ref += per[1].feed(d, addrs[PORT0 + p], t)
        if k == 0:
            continue  # a sender's first frame ends only when its next one comes
        if replay_min_frames > 1:  # (replayed blocks go sender by sender)
            assert [name for name, _ in seen] == [f"p{p}" for p in order]
        assert sorted(name for name, _ in seen) == ["p0", "p1", "p2"]
        decoded = [n for _, n in seen]
        assert decoded == sorted(decoded) and len(set(decoded)) == 3  # each went on before the next datagram was decoded
    assert ing.live_frames == len(ref) and ing.live_frames >= 33

"""Timing of one performer's stream, sans-I/O: ordering, counters, jitter buffer, gap fill,
and (re-exported from ``mocap.smoothing`` and ``mocap.health``) One-Euro smoothing per bone
and per-source health figures.

``StreamTiming`` is fed frames as they arrive (``push``) and asked for the frames that are
ready at a given monotonic time (``pop_ready``). It orders by the sender's sample counter when
the protocol has one (Xsens), else by the sender's clock (VMC ``/VMC/Ext/T``), else by arrival.

Counters: ``received``, ``dropped`` (gaps in the sender's sequence that never filled: a late
frame that fills a counted gap is taken back out), ``duplicates``, ``out_of_order`` (arrived
after a later frame but still in time: reordered and delivered), ``late`` (arrived after a
later frame was already released: not delivered live, still recorded), ``filled`` (frames
interpolated over short gaps, live output only), ``reanchored``, ``restarts`` (the sender
started over: its counter or clock went back further than any reorder could explain).

Stamps: with a sender clock, a frame's stamp is the sender time mapped onto the local monotonic
clock by the smallest transit seen (``t_ns = sender_ns + anchor``): recorded timing is the
sender's own, free of network jitter and of a receiver that falls behind, at most shifted by a
constant. The anchor moves only when a frame arrives ``reanchor_early_ms`` before its mapped
time (the first frames were held up; counted as ``reanchored``; the anchor then slews there,
at most half the sender's frame interval a frame, so recorded stamps never go backwards) or
when the sender restarts
(its clock goes back more than ``restart_s``, its counter more than ``restart_samples``, or the
source flags it in ``Frame.meta["restart"]``): then the stream starts over and the frame is
flagged ``meta["restart"]`` so the take records a gap. A frame without a sender clock in a
stream that has one is placed on the sender's time line by its receive stamp less the transit
of the last frame with a clock (a frame whose part with T was lost, a clock that stopped), and
never before the frame received before it: a lost clock makes no frame late, its own or the
next ones. ``latency`` is
each frame's transit above the smallest transit seen (network and sender jitter; receive
stamps are the kernel's arrival times when the listener has them). Without a sender clock the
receive stamp is used and the loss of such a stream cannot be known (``loss_known``).
"""

from __future__ import annotations

import bisect
import time
from collections import Counter, deque

import numpy as np

from machinima import quat

from .frames import Frame

NS = 1_000_000_000
_WIN33 = np.arange(1, 33)
_ARANGE = np.arange(4096, dtype=np.int64)
_ARANGE.setflags(write=False)


def _diff_from(first, a: np.ndarray) -> np.ndarray:
    """``np.diff(a, prepend=first)`` without its broadcasting and concatenation (a tenth of
    the cost on short arrays)."""
    out = np.empty_like(a)
    out[0] = a[0] - first
    np.subtract(a[1:], a[:-1], out=out[1:])
    return out


def _arange(n: int) -> np.ndarray:
    """0..n-1 as int64 (a shared read-only array for the usual block sizes)."""
    return _ARANGE[:n] if n <= 4096 else np.arange(n, dtype=np.int64)


class StreamTiming:
    def __init__(self, *, delay_ms: float = 0.0, max_gap_ms: float = 100.0, fill_gaps: bool = True, max_buffer: int = 256,
                 reanchor_early_ms: float = 20.0, restart_s: float = 1.0, restart_samples: int = 64) -> None:
        if delay_ms < 0 or max_gap_ms < 0:
            raise ValueError("delay_ms and max_gap_ms must be >= 0")
        self.delay_ns = int(delay_ms * 1e6)
        self.max_gap_ns = int(max_gap_ms * 1e6)
        self.fill_gaps = fill_gaps
        self.max_buffer = max_buffer
        self.reanchor_early_ns = int(reanchor_early_ms * 1e6)
        self.restart_s = restart_s
        self.restart_samples = restart_samples
        self.counts: Counter[str] = Counter()
        self.latency_ns: deque[int] = deque(maxlen=512)
        self.loss_known = False  # a sequence or a sender clock was seen: gaps can be counted
        self._reset()
        self._carry: list[Frame] = []  # frames from before a restart, released first
        self._now: list[Frame] = []  # released by push (no jitter buffer), handed out by pop_ready

    def _reset(self) -> None:
        self._anchor_ns: int | None = None
        self._target_ns = 0  # where the anchor is heading (it slews there)
        self._offset_ns: int | None = None
        self._last_sender_ns: int | None = None
        self._last_transit: int | None = None
        self._last_t = -(2**63)
        self._buf: list[tuple[float, int, Frame]] = []  # (key, tiebreak, frame), sorted
        self._n = 0
        self._seen: deque[float] = deque(maxlen=64)
        self._seen_set: set[float] | None = set()  # the keys of _seen (None: rebuild from _seen)
        self._max_key: float | None = None
        self._last_out: Frame | None = None
        self._last_key: float | None = None
        self._last_sender: float | None = None
        self._missing: set[float] = set()  # sequence numbers counted as dropped (a late one takes it back)
        self._periods: deque[float] = deque(maxlen=32)
        self._period: float | None = None  # median of _periods, refreshed every 16 frames
        self._n_periods = 0

    def _key(self, f: Frame) -> float:
        if f.seq is not None:
            return float(f.seq)
        if f.sender_time_s is not None:
            return f.sender_time_s
        if self._anchor_ns is not None:  # no clock on this frame, but the stream has one
            return (f.t_ns - self._anchor_ns) / NS
        return f.t_ns / NS

    def _restarted(self, f: Frame) -> bool:
        if f.meta.get("restart"):
            return True
        if f.seq is not None and self._max_key is not None:
            return f.seq < self._max_key - self.restart_samples
        if f.sender_time_s is not None and self._last_sender is not None:
            return f.sender_time_s < self._last_sender - self.restart_s
        return False

    def push(self, f: Frame) -> bool:
        """Take a frame in; False when it is a duplicate (dropped)."""
        self.counts["received"] += 1
        if (self._max_key is not None or self._last_sender is not None) and self._restarted(f):
            self.counts["restarts"] += 1
            f.meta["restart"] = True
            self._carry.extend(self.flush())
            self._reset()
        st = f.sender_time_s
        if st is not None:
            self.loss_known = True
            sender_ns = int(st * NS)
            transit = f.t_recv_ns - sender_ns
            self._last_transit = transit
            if self._offset_ns is None or transit < self._offset_ns:
                self._offset_ns = transit
            anchor = self._anchor_ns
            if anchor is None:
                anchor = self._target_ns = transit
            elif transit < self._target_ns - self.reanchor_early_ns:
                self._target_ns = transit
                self.counts["reanchored"] += 1
            if anchor > self._target_ns:
                # slew, never step: at most half the sender time since the last frame, so the
                # recorded stamps keep the sender's order
                step = (sender_ns - self._last_sender_ns) // 2 if self._last_sender_ns is not None else 0
                anchor = max(self._target_ns, anchor - max(step, 0))
            self._anchor_ns = anchor
            t = sender_ns + anchor
            if self._last_sender is None or st > self._last_sender:
                self._last_sender, self._last_sender_ns = st, sender_ns
                if t <= self._last_t:
                    t = self._last_t + 1
                self._last_t = t
            f.t_ns = t
            self.latency_ns.append(transit - self._offset_ns)
        else:
            # No sender clock on this frame (a sender without /VMC/Ext/T, or one whose clock
            # was lost): it is placed by its arrival, and it came after the frame before it
            # (one sender's datagrams, read in order), so it is never placed before it. The
            # raw receive stamp could be (a stamp mapped through an anchor that is still
            # slewing, two clocks read a moment apart): the frame would count as late.
            t = f.t_recv_ns
            if self._anchor_ns is not None and self._last_transit is not None:
                # in a stream with a clock (a frame whose part with T was lost, or a clock
                # that stopped): its sender time is estimated with the transit of the last
                # frame that had one, not the smallest transit (that would add every queueing
                # delay since, and the next frames with a clock would come out late)
                t = t - self._last_transit + self._anchor_ns
            if f.seq is None:  # (a sample counter orders by itself)
                if t <= self._last_t:
                    t = self._last_t + 1
                self._last_t = t
            f.t_ns = t
        if f.seq is not None:
            self.loss_known = True
        k = self._key(f)
        seen_set = self._seen_set
        if seen_set is None:  # a block was pushed since: rebuilt once, here, not per block
            seen_set = self._seen_set = set(self._seen)
        if k in seen_set:
            self.counts["duplicates"] += 1
            return False
        if len(self._seen) == 64:
            seen_set.discard(self._seen[0])
        self._seen.append(k)
        seen_set.add(k)
        if self._last_key is not None and k < self._last_key:
            self.counts["late"] += 1
            f.meta["late"] = True
            if k in self._missing:  # it was counted as dropped: it came after all
                self._missing.discard(k)
                self.counts["dropped"] -= 1
            return True  # the caller records it; it is not delivered live
        if self._max_key is not None and k < self._max_key:
            self.counts["out_of_order"] += 1
        else:
            self._max_key = k
        buf = self._buf
        if not self.delay_ns and not buf:  # no jitter buffer: released now (pop_ready hands it out)
            self._release(k, f, self._now)
            return True
        self._n += 1
        if not buf or k > buf[-1][0]:
            buf.append((k, self._n, f))
        else:
            bisect.insort(buf, (k, self._n, f))
        if len(buf) > self.max_buffer:
            self.counts["overflow"] += 1
            buf.pop(0)
        return True

    def push_block(self, performer: str, source: str, t_recv_ns: np.ndarray, time_s: np.ndarray, pose: np.ndarray | None) -> np.ndarray | None:
        """Many frames of a sender with a clock at once (a batched receiver's steady state):
        the stamps (k,) they are recorded at, exactly as ``push`` + ``pop_ready`` would give
        them one by one (anchor, slew, drop counts, period), or None (nothing taken) when the
        block is not the plain case: a jitter buffer or gap fill, the stream's first frame, a
        frame without a clock, a frame not after the one before it (a restart, a reorder, a
        duplicate). The caller then pushes the frames one by one."""
        if self.delay_ns or self.fill_gaps or self._buf or self._carry or self._now:
            return None
        last_sender, anchor = self._last_sender, self._anchor_ns
        if last_sender is None or anchor is None or self._last_key is None or self._last_out is None or self._last_sender_ns is None:
            return None
        keys = time_s
        if not (keys[0] > self._last_key and keys[0] > last_sender and (self._max_key is None or keys[0] > self._max_key)):
            return None  # (also false for NaN: a frame without a clock)
        if keys.shape[0] > 1 and not (keys[1:] > keys[:-1]).all():
            return None
        n = int(keys.shape[0])
        sender_ns = (keys * NS).astype(np.int64)  # int(st * NS), as push does
        transit = t_recv_ns - sender_ns
        offs = np.minimum.accumulate(transit)
        if self._offset_ns is not None:
            np.minimum(offs, self._offset_ns, out=offs)
        # the anchor's target: the smallest transit, moved only when a frame comes
        # reanchor_early_ns before it (a thresholded running minimum: one step per move)
        tg, early, reanchored = self._target_ns, self.reanchor_early_ns, 0
        target: "np.ndarray | int" = tg
        if int(offs[-1]) < tg - early:  # some frame moves it (else it stays: the steady state)
            tlist = [0] * n
            for i, tr in enumerate(transit.tolist()):
                if tr < tg - early:
                    tg = tr
                    reanchored += 1
                tlist[i] = tg
            target = np.array(tlist, dtype=np.int64)
        idx = _arange(n)
        if anchor <= self._target_ns and not reanchored:
            anchor_arr = np.full(n, anchor, dtype=np.int64)  # nothing to slew: the anchor stays
        else:
            # the anchor slews down to the target by at most half the sender time since the
            # last frame: a_i = max(target_i, a_(i-1) - step_i), i.e. a running maximum once
            # the steps are summed
            steps = _diff_from(self._last_sender_ns, sender_ns) // 2
            np.maximum(steps, 0, out=steps)
            csum = np.cumsum(steps)
            anchor_arr = np.maximum.accumulate(np.maximum(target + csum, anchor)) - csum
        t = sender_ns + anchor_arr
        # never backwards: t_i = max(t_i, t_(i-1) + 1)
        t -= idx
        np.maximum(t, self._last_t + 1, out=t)
        np.maximum.accumulate(t, out=t)
        t += idx
        transit -= offs
        self.latency_ns.extend(transit[-512:].tolist())
        self.counts["received"] += n
        if reanchored:
            self.counts["reanchored"] += reanchored
        self.loss_known = True
        kl = keys.tolist()
        self._release_block(kl, keys)
        seen = self._seen
        seen.extend(kl[-64:])
        self._seen_set = None  # push rebuilds it if a frame ever comes one by one
        self._anchor_ns, self._target_ns, self._offset_ns = int(anchor_arr[-1]), tg, int(offs[-1])
        self._last_transit = int(transit[-1] + offs[-1])
        self._max_key = self._last_key = self._last_sender = kl[-1]
        self._last_sender_ns = int(sender_ns[-1])
        last_t = self._last_t = int(t[-1])
        tl = t_recv_ns.tolist()
        self._last_out = Frame(performer, source, tl[-1], None if pose is None else pose[-1], kl[-1], None, None, t_ns=last_t)
        return t

    def _release_block(self, kl: list[float], keys: np.ndarray | None = None) -> None:
        """``_release`` for in-order frames with a sender clock, without gap fill: drops
        against the sender's period, whose running median is refreshed at the 4th, 8th and
        every 16th interval. Between refreshes the period is fixed, so each stretch of a long
        block is checked at once; a short block goes frame by frame (numpy's per-call cost
        would be more than the loop)."""
        if len(kl) < 16:
            self._release_loop(kl)
            return
        if self._release_steady(kl, keys):
            return
        pk = self._last_key
        keys = np.array([pk] + kl)
        dts = np.diff(keys)
        n = len(kl)
        i = 0
        periods = self._periods
        while i < n:
            c = self._n_periods  # the next refresh comes after interval number r
            r = 4 if c < 4 else 8 if c < 8 else (c // 16 + 1) * 16
            period = self._period
            seg = dts[i:]
            if period is not None and period > 0:
                m = np.rint(seg / period) - 1  # round() halves to even, as np.rint
                miss = np.flatnonzero((m > 0) & (seg > 1.5 * period))
            else:
                m, miss = None, np.zeros(0, dtype=np.int64)
            pos = np.flatnonzero(seg > 0)  # intervals that count towards the period
            # the stretch ends at the refresh (r - c counted intervals) or at the first drop
            need = r - c
            end_refresh = int(pos[need - 1]) + 1 if pos.shape[0] >= need else len(seg)
            end_drop = int(miss[0]) if miss.shape[0] else len(seg)
            if end_drop < end_refresh:  # intervals before the drop count, then the drop
                counted = seg[:end_drop]
                counted = counted[counted > 0].tolist()
                periods.extend(counted)
                self._n_periods += len(counted)
                self.counts["dropped"] += int(m[end_drop])
                i += end_drop + 1
                continue
            counted = seg[:end_refresh]
            counted = counted[counted > 0].tolist()
            periods.extend(counted)
            self._n_periods += len(counted)
            if self._n_periods == r:
                ps = sorted(periods)
                h = len(ps) // 2
                self._period = ps[h] if len(ps) % 2 else (ps[h - 1] + ps[h]) / 2
            i += end_refresh

    def _release_steady(self, kl: list[float], keys: np.ndarray | None = None) -> bool:
        """The steady state at once: a known period, 32 intervals already seen and no drop
        in the block, with the period's refreshes inside it (medians of sliding windows).
        False (nothing changed) otherwise."""
        period = self._period
        if period is None or period <= 0 or len(self._periods) < 32:
            return False
        dts = _diff_from(self._last_key, np.array(kl) if keys is None else keys)
        n = dts.shape[0]
        if dts.min() <= 0:
            return False
        # with 32 intervals counted the refreshes are every 16th (the 4th and 8th are past)
        first = -(self._n_periods + 1) % 16
        idx = _arange(n)[first::16]  # positions in the block after which the period is refreshed
        med = None
        if idx.shape[0]:
            allp = np.concatenate((np.fromiter(self._periods, np.float64, 32), dts))
            win = allp[idx[:, None] + _WIN33]  # the 32 intervals before each refresh
            win.sort(axis=1)
            med = (win[:, 15] + win[:, 16]) / 2
            # interval i is judged by the period of before it: the old one up to the first
            # refresh, then each median in turn (the largest interval of each stretch)
            starts = idx + 1
            if starts[-1] == n:
                starts = starts[:-1]
            pers = np.concatenate(([period], med[: starts.shape[0]]))
            top = np.maximum.reduceat(dts, np.concatenate(([0], starts)))
        else:
            pers, top = period, dts.max()
        # a drop is rint(dt / period) - 1 > 0 and dt > 1.5 period; the second implies the
        # first (up to rounding at the last bit, where this check is the stricter: such a
        # block goes the exact way, frame by frame)
        if (top > 1.5 * pers).any():
            return False
        self._periods.extend(dts[-32:].tolist())
        self._n_periods += n
        if med is not None:
            self._period = float(med[-1])
        return True

    def _release_loop(self, kl: list[float]) -> None:
        """``_release_block`` frame by frame (the same arithmetic as ``_release``)."""
        pk, period, periods = self._last_key, self._period, self._periods
        dropped = 0
        for k in kl:
            dt = k - pk
            if period is not None and period > 0:
                m = round(dt / period) - 1
                if m > 0 and dt > 1.5 * period:
                    dropped += m
                    pk = k
                    continue
            if dt > 0:
                periods.append(dt)
                self._n_periods += 1
                c = self._n_periods
                if c in (4, 8) or c % 16 == 0:
                    ps = sorted(periods)
                    h = len(ps) // 2
                    period = self._period = ps[h] if len(ps) % 2 else (ps[h - 1] + ps[h]) / 2
            pk = k
        if dropped:
            self.counts["dropped"] += dropped

    def pop_ready(self, now_ns: int | None = None) -> list[Frame]:
        """Frames whose hold time is over, in order, with interpolated frames over short gaps."""
        out: list[Frame] = []
        if self._carry:
            out, self._carry = self._carry, []
        if self._now:
            out += self._now
            self._now = []
        buf = self._buf
        if not buf:
            return out
        now = time.monotonic_ns() if now_ns is None else now_ns
        delay = self.delay_ns
        while buf and buf[0][2].t_recv_ns + delay <= now:
            k, _, f = buf.pop(0)
            self._release(k, f, out)
        return out

    def flush(self) -> list[Frame]:
        out: list[Frame] = []
        if self._carry:
            out, self._carry = self._carry, []
        if self._now:
            out += self._now
            self._now = []
        while self._buf:
            k, _, f = self._buf.pop(0)
            self._release(k, f, out)
        return out

    def _release(self, k: float, f: Frame, out: list[Frame]) -> None:
        prev, pk = self._last_out, self._last_key
        if prev is not None and pk is not None:
            missing = self._missing_between(pk, k, f)
            if missing > 0:
                self.counts["dropped"] += missing
                if f.seq is not None and missing <= 1024:
                    self._missing.update(pk + j for j in range(1, missing + 1))
                    if len(self._missing) > 4096:
                        self._missing = {m for m in self._missing if m > k - 1024}
                span = f.t_ns - prev.t_ns
                if self.fill_gaps and 0 < span <= self.max_gap_ns and missing <= 64 and f.pose is not None and prev.pose is not None:
                    for j in range(1, missing + 1):
                        out.append(interpolate(prev, f, j / (missing + 1)))
                    self.counts["filled"] += missing
            elif f.seq is None:
                dt = k - pk
                if dt > 0:
                    self._periods.append(dt)
                    self._n_periods += 1
                    if self._n_periods in (4, 8) or self._n_periods % 16 == 0:
                        ps = sorted(self._periods)
                        m = len(ps) // 2
                        self._period = ps[m] if len(ps) % 2 else (ps[m - 1] + ps[m]) / 2
        out.append(f)
        self._last_out, self._last_key = f, k

    def _missing_between(self, pk: float, k: float, f: Frame) -> int:
        if f.seq is not None:
            return max(int(k - pk) - 1, 0)
        period = self._period
        if f.sender_time_s is None or period is None or period <= 0:
            return 0
        n = round((k - pk) / period) - 1
        return n if n > 0 and (k - pk) > 1.5 * period else 0


def interpolate(a: Frame, b: Frame, w: float) -> Frame:
    """A frame between a and b: positions lerped, rotations slerped."""
    pose = np.empty_like(a.pose)
    pose[:, :3] = a.pose[:, :3] + (b.pose[:, :3] - a.pose[:, :3]) * w
    pose[:, 3:7] = quat.slerp(a.pose[:, 3:7], b.pose[:, 3:7], w).astype(np.float32)
    t = int(a.t_ns + (b.t_ns - a.t_ns) * w)
    st = None if a.sender_time_s is None or b.sender_time_s is None else a.sender_time_s + (b.sender_time_s - a.sender_time_s) * w
    seq = None
    return Frame(a.performer, a.source, t, pose, st, seq, None, t_ns=t, interpolated=True)


# Split out (one job each); still importable from here.
from .smoothing import BONE_GROUPS, DEFAULT_BONE_SMOOTHING, FINGERS, OneEuro, bone_settings  # noqa: E402,F401
from .health import Health  # noqa: E402,F401

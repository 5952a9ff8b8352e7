"""VMC frames from packets, sans-I/O: one sender's datagrams in, whole frames out.

VMC has no frame header. Real senders put one frame in one bundle (VirtualMotionCapture,
VSeeFace, SlimeVR, machinima's own sender), split a frame that outgrows a datagram into
several bundles, or send one message per datagram (SlimeVR's first VMC output, scripts on
python-osc's ``SimpleUDPClient``); ``/VMC/Ext/T`` and ``/VMC/Ext/OK`` come first in some and
last in others, and bundles mostly say "immediately". ``VMCAssembler`` finds where a frame
ends from what the protocol and the physics of sending do promise. Before a datagram, the
pending frame is complete when:

1. **a new time tag** comes (both bundles carry real OSC time tags, and they differ; datagrams
   with the same real tag are one frame, whatever else happens);
2. **the datagram leads with T or OK** (they stand before all its pose and blendshape
   messages: a frame starts here);
3. **it is the head of the frame**: the datagram that, frame after frame, comes after the
   longest silence (a sender sends one frame's datagrams back to back and then waits for the
   next frame). The head is learned by vote: each frame votes for the datagram (its set of
   parts) that followed its clearly longest gap (``head_ratio`` = 8 times the mean of the
   others); a datagram that wins ``head_votes`` (all 8) of the last 8 frames is the head: a
   sender stalled mid-frame now and then (a busy machine) never wins it for the wrong part. This is what finds the
   frame boundary of a stream joined mid-frame; a sender flooding without pauses never gets a
   head and needs none (rules 2, 4 and 6 hold the phase from the start of its stream). A
   datagram that completes the pending frame's layout is never cut off by this rule (a sender
   stalled mid-frame may win the vote for the wrong datagram);
4. **a part repeats** (a bone, the root, T, OK, a blendshape name or Apply already pending);

After a datagram, the pending frame is complete when:

5. **the datagram trails with T or OK** (they stand after all its pose and blendshape messages);
6. **the layout is complete**: the parts of the last ``history`` frames are remembered, and a
   frame holding all of them is emitted at once, wherever T and OK stand (no frame of delay
   once one frame has been seen);
7. **idle**: ``poll(now_ns)`` emits it once the sender has been quiet for ``idle_ms`` (the last
   frame of a stream); ``flush()`` emits it at stream end. A frame known to lack parts (the
   layout is learned and not all of it came: a whole one would be out already) waits
   ``stall_ms`` instead: a sender held up mid-frame (a loaded machine) sends the rest late,
   and that rest must join its frame, not start one of its own; a lost rest only delays
   the partial frame, whose next frame's first part ends it at once anyway (rules 3, 4).

Each frame is stamped once: ``time_s`` is the first ``/VMC/Ext/T`` among its parts and
``t_recv_ns`` the receive stamp of its first datagram, so no part makes it look late. Root and
Hips are kept apart as the protocol has them (``/VMC/Ext/Root/Pos`` is the avatar root,
``Hips`` a bone local to it) and composed only into each emitted pose, so a Root/Pos without a
Hips bone never accumulates. Bones a frame does not send keep their last value (VMC receivers
do the same); Blend/Val values are staged and the frame carries the whole staged set when it
had blendshapes or an Apply.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from .osc import IMMEDIATE
from .skeleton import rest_pose
from .vmc_decode import _ALL_BONES, VMCPacket, compose_root

__all__ = ["VMCAssembler", "VMCFrame"]

_IDENTITY_ROOT = np.array([0, 0, 0, 0, 0, 0, 1], dtype=np.float32)
_IDENTITY_BYTES = _IDENTITY_ROOT.tobytes()


class VMCFrame:
    """One whole frame of one sender: ``pose`` (55, 7) canonical (Hips in world space, root
    composed), ``root`` (7,) the avatar root as sent, ``time_s`` the sender clock (or None),
    ``t_recv_ns`` the first datagram's receive stamp, ``blendshapes`` (the staged set when the
    frame had any, else None), ``parts`` (datagrams), ``ended_by`` (timetag, marker, head,
    repeat, layout, idle, flush), ``root_name`` (the Root/Pos name, if any), ``has_pose`` (False for a sender
    that never sent a bone or the root: a face-only sender's pose is the rest pose, not data)."""

    __slots__ = ("pose", "root", "time_s", "t_recv_ns", "blendshapes", "parts", "ended_by", "root_name", "has_pose")

    def __init__(self, pose: np.ndarray, root: np.ndarray, time_s: float | None, t_recv_ns: int, blendshapes: dict[str, float] | None,
                 parts: int, ended_by: str, root_name: str | None, has_pose: bool = True) -> None:
        self.has_pose = has_pose
        self.pose = pose
        self.root = root
        self.time_s = time_s
        self.t_recv_ns = t_recv_ns
        self.blendshapes = blendshapes
        self.parts = parts
        self.ended_by = ended_by
        self.root_name = root_name

    def __repr__(self) -> str:
        return f"VMCFrame(time_s={self.time_s}, parts={self.parts}, ended_by={self.ended_by!r})"


class VMCAssembler:
    """Frames of ONE sender (keep one per sender address). ``idle_ms``: quiet time after which
    ``poll`` emits a pending frame; ``history``: frames whose parts make up the learned layout;
    ``head_votes`` (of the last 8 frames) and ``head_ratio``: how sure the head vote must be;
    ``stall_ms``: quiet time after which a frame known to lack parts is emitted (rule 7)."""

    def __init__(self, *, idle_ms: float = 50.0, history: int = 4, head_votes: int = 8, head_ratio: float = 8.0, stall_ms: float = 250.0) -> None:
        if idle_ms <= 0 or history < 1 or not 1 <= head_votes <= 8 or head_ratio <= 1 or stall_ms < idle_ms:
            raise ValueError("idle_ms must be > 0, history >= 1, head_votes 1..8, head_ratio > 1 and stall_ms >= idle_ms")
        self.idle_ns = int(idle_ms * 1e6)
        self.stall_ns = int(stall_ms * 1e6)
        self.head_votes = head_votes
        self.head_ratio = head_ratio
        self.head: frozenset | None = None
        self._votes: deque[frozenset | None] = deque(maxlen=8)
        self._vote_counts: dict[frozenset | None, int] = {}
        self._gap_max = 0  # the pending frame's longest gap before a datagram, and that datagram
        self._gap_rep: frozenset | None = None
        self._gap_sum = 0
        self._gap_n = 0
        self.local = rest_pose()  # bones as sent: Hips local to the avatar root
        self.root = _IDENTITY_ROOT.copy()
        self._root_moved = False
        self.root_name: str | None = None
        self.staged_blend: dict[str, float] = {}
        self.has_pose = False  # a bone or the root ever came (a face-only sender sends neither)
        self.frames = 0
        self.ended: dict[str, int] = {}
        self._recent: deque[frozenset] = deque(maxlen=history)
        self.layout: frozenset = frozenset()
        # the pending frame
        self._keys: frozenset | set = frozenset()
        self._shared = True
        self._pending = False
        self._parts = 0
        self._time: float | None = None
        self._first_ns = 0
        self._last_ns = 0
        self._timetag = IMMEDIATE
        self._had_blend = False
        self._seq: list = []  # the pending frame's templates (None: a part without one)
        self.cycle: tuple | None = None  # (templates, ended_by) of the last frame, when a batch may replay it

    @property
    def pending(self) -> bool:
        return self._pending

    def feed(self, pkt: VMCPacket, t_recv_ns: int) -> list[VMCFrame]:
        """Take one decoded datagram of this sender; returns the frames it completed (0-2)."""
        out: list[VMCFrame] = []
        keys = pkt.keys
        if not keys:
            return out  # nothing usable in it (all rejected, or unknown addresses)
        if self._pending:
            tt = pkt.timetag
            if tt != IMMEDIATE and self._timetag != IMMEDIATE:
                if tt != self._timetag:
                    out.append(self._emit("timetag"))
            elif pkt.lead:
                out.append(self._emit("marker"))
            elif (keys is self.head or (self.head is not None and keys == self.head)) and not self._completes(keys):
                out.append(self._emit("head"))
            elif not self._keys.isdisjoint(keys):
                out.append(self._emit("repeat"))
        gap = t_recv_ns - self._last_ns if self._last_ns else 0
        if gap > self._gap_max:
            self._gap_max, self._gap_rep = gap, keys
        self._gap_sum += gap
        self._gap_n += 1
        # take the parts in
        one = pkt.one
        if one is not None:
            self.local[one[0]] = one[1]
            self.has_pose = True
        else:
            bi = pkt.bone_index
            if bi is _ALL_BONES:
                self.local[:] = pkt.bone_values
                self.has_pose = True
            elif bi.shape[0]:
                self.local[bi] = pkt.bone_values
                self.has_pose = True
        if pkt.root is not None:
            np.add(pkt.root, 0.0, out=self.root)  # + 0.0 turns the mirror's -0.0 into 0.0
            self._root_moved = self.root.tobytes() != _IDENTITY_BYTES
            self.has_pose = True
            if pkt.root_name is not None:
                self.root_name = pkt.root_name
        if pkt.blendshapes:
            self.staged_blend.update(pkt.blendshapes)
            self._had_blend = True
        elif pkt.blend_apply:
            self._had_blend = True
        self._seq.append(pkt.part)
        if self._pending:
            if self._shared:  # the first part's keys belong to the packet (a template's set)
                self._keys = set(self._keys)
                self._shared = False
            self._keys.update(keys)  # type: ignore[union-attr]
            self._parts += 1
            if self._time is None:
                self._time = pkt.time_s
        else:
            self._pending = True
            self._keys = keys
            self._shared = True
            self._parts = 1
            self._time = pkt.time_s
            self._first_ns = t_recv_ns
            self._timetag = pkt.timetag
        self._last_ns = t_recv_ns
        if pkt.trail:
            out.append(self._emit("marker", True))
            return out
        layout = self.layout
        pend = self._keys
        if layout and (pend is layout or (len(pend) >= len(layout) and pend >= layout)):
            out.append(self._emit("layout", True))
        return out

    def _completes(self, keys: frozenset) -> bool:
        """Would ``keys`` complete the pending frame's layout? (Then they belong to it, whatever
        the head vote says: a wrong head never cuts a frame in two.)"""
        layout = self.layout
        pend = self._keys
        return bool(layout) and len(pend) + len(keys) >= len(layout) and pend.isdisjoint(keys) and layout <= (pend | keys)

    def _vote(self) -> None:
        """The frame just ended votes for the datagram after its clearly longest gap (O(1):
        the votes of the last 8 frames are counted as they come and go)."""
        n, top = self._gap_n, self._gap_max
        vote = self._gap_rep if n > 1 and top * (n - 1) > self.head_ratio * (self._gap_sum - top) else None
        self._gap_max, self._gap_rep, self._gap_sum, self._gap_n = 0, None, 0, 0
        votes, counts = self._votes, self._vote_counts
        if len(votes) == votes.maxlen:
            counts[votes[0]] -= 1
        votes.append(vote)
        counts[vote] = counts.get(vote, 0) + 1
        if self.head is not None and counts.get(self.head, 0) < self.head_votes:
            self.head = None
        if vote is not None and counts[vote] >= self.head_votes:
            self.head = vote

    def poll(self, now_ns: int) -> list[VMCFrame]:
        """The pending frame when nothing came for ``idle_ms`` (call only when the socket has
        been drained: a datagram still waiting there may be the rest of the frame)."""
        if not self._pending:
            return []
        quiet = now_ns - self._last_ns
        if quiet < self.idle_ns or (self.layout and quiet < self.stall_ns):  # (pending with a layout: some of it is missing)
            return []
        return [self._emit("idle")]

    def flush(self) -> list[VMCFrame]:
        """Stream end: the pending frame, if any."""
        return [self._emit("flush")] if self._pending else []

    def _emit(self, why: str, after: bool = False) -> VMCFrame:
        """``after``: emitted right after its last datagram (a trailing marker, a complete
        layout): its templates may then be replayed by ``machinima.vmc_batch``."""
        seq = self._seq
        self.cycle = (tuple(seq), why) if after and None not in seq else None
        self._seq = []
        keys = self._keys if isinstance(self._keys, frozenset) else frozenset(self._keys)
        if why != "idle" and why != "flush" or not self.layout:
            self._learn(keys)
        if why != "idle" and why != "flush":
            self._vote()
        pose = self.local.copy()
        r = self.root
        if self._root_moved:
            compose_root(r, pose)
        blend = dict(self.staged_blend) if self._had_blend else None
        f = VMCFrame(pose, r.copy(), self._time, self._first_ns, blend, self._parts, why, self.root_name, self.has_pose)
        self._pending = False
        self._keys = frozenset()
        self._shared = True
        self._had_blend = False
        self._time = None
        self.frames += 1
        self.ended[why] = self.ended.get(why, 0) + 1
        return f

    def _learn(self, keys: frozenset) -> None:
        """The layout is the union of the parts of the last frames (a part that stops coming
        ages out after ``history`` frames)."""
        recent = self._recent
        if keys is self.layout:
            return  # steady state (the same template's parts): nothing changes
        recent.append(keys)
        if keys == self.layout:
            return  # it holds every part of the layout: the union stays the same
        layout = frozenset().union(*recent)
        self.layout = keys if layout == keys else layout

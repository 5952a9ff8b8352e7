"""The take writer: the one way live data gets into a take while it is being recorded.

The stage server (``server/recorder.py``), ``machinima mocap listen --record``
(``mocap/listener.py``) and the engine bridge (``engine_bridge/ingest.py``) all record through
it, so a take means the same thing whichever of them made it::

    take = Take.create(root, production=..., scene=..., shot=..., fps=...)
    w = TakeWriter(take, commit_interval=0.08)
    w.pose("ana", t_ns, pose)                    # mocap/ana    (55, 7) canonical local pose
    w.blend("ana", t_ns, {"Blink_L": 0.4})        # blend/ana    channels fixed by the first frame
    w.camera("cam1", t_ns, values)                # camera/cam1  12 channels (store.CAMERA_CHANNELS)
    w.event(t_ns, {"name": "door", ...})          # events
    w.marker(t_ns, "stumble", note, color)        # markers + take.json
    w.gap_open("ana", "disconnected"); w.gap_close("ana")   # gaps (performer gone / restarted)
    w.tick()                                      # commit if commit_interval has passed
    w.close("complete", extra={...})              # commit, summarise, finalise

**Commits.** Samples are buffered here and committed in one SQLite transaction at most every
``commit_interval`` seconds *by the clock*, not by the next sample: the owner calls ``tick()``
from its loop (the stage's tick, the listener's timer) or starts a ``CommitTimer`` thread, so a
pause in the input never leaves samples uncommitted. A sample is *acknowledged* once committed;
a ``kill -9`` loses at most what came in the last ``commit_interval`` plus one loop period.

**A full disk** is ``machinima.errors.DiskFullError``, raised by the call that hit it (an
append that declared a stream, a commit, a marker). From then on the writer is *broken*: every
later call raises ``DiskFullError`` again without touching the disk; what was committed before
stays, what was buffered is lost (counted in ``lost``). The owner decides what to do (the stage
tells its directors and calls ``abort``). ``abort(error)`` ends the take as ``failed`` with a
note when the disk lets it, and always releases the take's lock so ``machinima takes recover``
can run.

Blendshapes: the first frame of a performer fixes the channel list, sorted by name
(``blend/<performer>``);
a later frame without a channel keeps its last value (VMC semantics: blendshape state
persists); a channel that appears later is not recorded and is counted in
``counts["blend_unknown"]`` (logged once per name).

Thread-safe: every method takes the writer's lock (uncontended on the hot path). A commit
holds it only to swap the buffers: encoding and SQLite run under a second lock (``_io``, taken
before ``_lock`` wherever both are held), so a receive thread appending samples never waits for
a commit on another thread (``machinima.committimer.CommitTimer``, idle priority).
``poses(performer, t_ns, block)`` appends a block of poses at once (a batched receiver).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from typing import Any, Callable, Mapping

import numpy as np

from .errors import DiskFullError, MachinimaError
from .skeleton import BONES, POSE_WIDTH
from .store import CAMERA_CHANNELS
from .take import Take

log = logging.getLogger("machinima.takewriter")

__all__ = ["CommitTimer", "TakeWriter"]

from .committimer import CommitTimer  # noqa: E402  (re-exported: it used to live here)

_POSE_SHAPE = (len(BONES), POSE_WIDTH)
_CAMERA_SHAPE = (len(CAMERA_CHANNELS),)


class _Stream:
    __slots__ = ("t", "v")

    def __init__(self) -> None:
        self.t: list[int] = []  # one stamp per sample
        self.v: list[np.ndarray] = []  # blocks (k, *shape): single samples as [None] views


class TakeWriter:
    """Records into ``take`` (open for writing: ``Take.create``). See the module docstring."""

    def __init__(self, take: Take, *, commit_interval: float = 0.08, clock: Callable[[], float] = time.monotonic) -> None:
        if commit_interval <= 0:
            raise ValueError("commit_interval must be > 0 seconds")
        if not take.writable:
            raise MachinimaError(f"take {take.id} is not open for recording")
        self.take = take
        self.commit_interval = commit_interval
        self.clock = clock
        self.store = take.store
        self.store.flush_interval = 3600.0  # the writer decides when to commit
        self.counts: Counter[str] = Counter()
        self.samples = 0  # samples accepted (pose, blend, camera)
        self.lost = 0  # samples buffered when the disk filled up
        self.error: DiskFullError | None = None
        self.closed = False
        self.open_gaps: dict[str, int] = {}
        self._lock = threading.RLock()
        self._io = threading.RLock()  # store writes (commit, declares, sparse records): before _lock
        self._buf: dict[str, _Stream] = {}
        self._poses: dict[str, _Stream] = {}  # performer -> its mocap buffer (the hot path skips the name lookups)
        self._declared: set[str] = {s.name for s in self.store.streams()}
        self._blend: dict[str, tuple[list[str], dict[str, int], np.ndarray]] = {}
        self._unknown_blend: set[str] = set()
        self._last_commit = clock()

    # --- state --------------------------------------------------------------------------------
    @property
    def acknowledged(self) -> int:
        """Samples committed to disk (what a crash keeps)."""
        return self.store.acknowledged if self.take._store is not None else 0

    @property
    def pending(self) -> int:
        return sum(len(b.t) for b in self._buf.values())

    def _check(self) -> None:
        if self.error is not None:
            raise DiskFullError(f"recording stopped earlier: {self.error}")
        if self.closed:
            raise MachinimaError(f"take {self.take.id} is closed")

    def _broke(self, exc: DiskFullError) -> DiskFullError:
        self.error = exc
        self.lost += self.pending
        self._buf = {}
        self._poses = {}
        log.error("take %s: %s", self.take.id, exc)
        return exc

    def _declare(self, name: str, fn: Callable[[], Any]) -> None:
        try:
            fn()
        except DiskFullError as exc:
            raise self._broke(exc) from None
        self._declared.add(name)

    def _append(self, name: str, t_ns: int, values: np.ndarray) -> None:
        buf = self._buf.get(name)
        if buf is None:
            buf = self._buf[name] = _Stream()
        buf.t.append(int(t_ns))
        buf.v.append(values[None])
        self.samples += 1

    # --- samples --------------------------------------------------------------------------------
    def pose(self, performer: str, t_ns: int, pose: np.ndarray, *, source: str | None = None) -> None:
        """One canonical pose (55, 7) of ``performer`` at monotonic ``t_ns``."""
        if pose.shape != _POSE_SHAPE:
            raise MachinimaError(f"pose of {performer!r} has shape {pose.shape}, expected {_POSE_SHAPE}")
        with self._lock:
            buf = self._poses.get(performer)
            if buf is not None and self.error is None and not self.closed:
                buf.t.append(t_ns)
                buf.v.append(pose[None])
                self.samples += 1
                return
        self._pose_slow(performer, [t_ns], pose[None], source)

    def poses(self, performer: str, t_ns: "np.ndarray | list[int]", poses: np.ndarray, *, source: str | None = None) -> None:
        """A block of canonical poses (k, 55, 7) of ``performer`` with one stamp each (kept as
        the block: a batched receiver hands over many frames at once)."""
        if poses.shape[1:] != _POSE_SHAPE or poses.shape[0] != len(t_ns):
            raise MachinimaError(f"poses of {performer!r} have shape {poses.shape} for {len(t_ns)} stamps, expected (k, *{_POSE_SHAPE})")
        ts = t_ns.tolist() if isinstance(t_ns, np.ndarray) else list(t_ns)
        with self._lock:
            buf = self._poses.get(performer)
            if buf is not None and self.error is None and not self.closed:
                buf.t.extend(ts)
                buf.v.append(poses)
                self.samples += len(ts)
                return
        self._pose_slow(performer, ts, poses, source)

    def _pose_slow(self, performer: str, ts: list[int], block: np.ndarray, source: str | None) -> None:
        """First pose of a performer (declares its stream), or a broken/closed writer (raises)."""
        with self._io, self._lock:
            self._check()
            buf = self._poses.get(performer)
            if buf is None:
                name = "mocap/" + performer
                if name not in self._declared:
                    info = {"source": source} if source else {}
                    self._declare(name, lambda: self.take.add_performer(performer, **info))
                buf = self._poses[performer] = self._buf.setdefault(name, _Stream())
            buf.t.extend(ts)
            buf.v.append(block)
            self.samples += len(ts)

    def blend(self, performer: str, t_ns: int, values: Mapping[str, float], *, source: str | None = None) -> None:
        """Blendshape weights of ``performer`` at ``t_ns`` (see the module docstring)."""
        with self._io, self._lock:
            self._check()
            name = "blend/" + performer
            state = self._blend.get(performer)
            if state is None:
                channels = sorted(values)
                if not channels:
                    return
                meta = {"performer": performer, **({"source": source} if source else {})}
                if name not in self._declared:
                    self._declare(name, lambda: self.store.add_blend_stream(performer, channels, meta))
                else:
                    channels = list(self.store.stream(name).meta.get("channels", channels))
                state = self._blend[performer] = (channels, {c: i for i, c in enumerate(channels)}, np.zeros(len(channels), np.float32))
            channels, index, last = state
            row = last.copy()
            for k, v in values.items():
                i = index.get(k)
                if i is None:
                    self.counts["blend_unknown"] += 1
                    if k not in self._unknown_blend:
                        self._unknown_blend.add(k)
                        log.warning("take %s: blendshape %r of %s came after its stream was declared: not recorded", self.take.id, k, performer)
                    continue
                row[i] = v
            self._blend[performer] = (channels, index, row)
            self._append(name, t_ns, row)
            self.counts["blend"] += 1

    def camera(self, camera: str, t_ns: int, values: np.ndarray, *, source: str | None = None) -> None:
        """One camera sample (12 channels, ``store.CAMERA_CHANNELS``)."""
        with self._io, self._lock:
            self._check()
            name = "camera/" + camera
            if name not in self._declared:
                meta = {"source": source} if source else None
                self._declare(name, lambda: self.store.add_camera_stream(camera, meta))
            v = np.asarray(values, dtype=np.float32)
            if v.shape != _CAMERA_SHAPE:
                raise MachinimaError(f"camera sample of {camera!r} has shape {v.shape}, expected {_CAMERA_SHAPE}")
            self._append(name, t_ns, v)
            self.counts["camera"] += 1

    # --- sparse records ---------------------------------------------------------------------------
    def event(self, t_ns: int, payload: dict[str, Any]) -> None:
        """An engine or stage event (stream ``events``)."""
        self._sparse(lambda: self.store.append_event(int(t_ns), "event", payload), "event")

    def marker(self, t_ns: int, name: str, note: str = "", color: str = "red") -> dict[str, Any]:
        """A marker (stream ``markers`` and take.json); returns the manifest entry."""
        self._sparse(lambda: self.take.add_marker(int(t_ns), name, note, color), "marker")
        return self.take.manifest.markers[-1]

    def note(self, text: str) -> None:
        self._sparse(lambda: self.take.add_note(text), "note")

    def gap_open(self, performer: str, reason: str, t_ns: int | None = None) -> None:
        """``performer`` stopped arriving (disconnected, sender restarted...)."""
        t = time.monotonic_ns() if t_ns is None else int(t_ns)
        self.open_gaps[performer] = t
        self._sparse(lambda: self.store.append_event(t, "gap", {"performer": performer, "state": "open", "reason": reason}, stream="gaps"), "gap")

    def gap_close(self, performer: str, t_ns: int | None = None) -> None:
        t0 = self.open_gaps.pop(performer, None)
        if t0 is None:
            return
        t1 = time.monotonic_ns() if t_ns is None else int(t_ns)
        payload = {"performer": performer, "state": "closed", "from_ns": t0, "to_ns": t1, "ms": round((t1 - t0) / 1e6, 1)}
        self._sparse(lambda: self.store.append_event(t1, "gap", payload, stream="gaps"), "gap")

    def gap(self, performer: str, reason: str, t_ns: int) -> None:
        """A gap known only when it is over (a sender restart): one closed record at ``t_ns``."""
        self._sparse(lambda: self.store.append_event(int(t_ns), "gap", {"performer": performer, "state": "closed", "reason": reason}, stream="gaps"), "gap")

    def _sparse(self, fn: Callable[[], Any], what: str) -> None:
        with self._io, self._lock:
            self._check()
            try:
                fn()
            except DiskFullError as exc:
                raise self._broke(exc) from None
            self.counts[what] += 1

    # --- commits ---------------------------------------------------------------------------------
    def tick(self, now: float | None = None) -> bool:
        """Commit when ``commit_interval`` has passed since the last commit; True if it did."""
        now = self.clock() if now is None else now
        if now - self._last_commit < self.commit_interval:
            return False
        with self._io:
            if self.error is not None or self.closed:
                return False
            self.commit()
        return True

    def commit(self) -> int:
        """Commit everything buffered now; returns the acknowledged sample count. The writer's
        lock is held only to swap the buffers: appends go on while the chunks are encoded and
        written."""
        with self._io:
            with self._lock:
                self._check()
                # the stream buffers stay (the hot path keeps its references): their lists are swapped
                taken = []
                for name, s in self._buf.items():
                    if s.t:
                        taken.append((name, s.t, s.v))
                        s.t, s.v = [], []
            store = self.store
            try:
                for name, ts, vs in taken:
                    store.append(name, np.array(ts, dtype=np.int64), vs[0] if len(vs) == 1 else np.concatenate(vs))
                store.flush()
            except DiskFullError as exc:
                with self._lock:
                    self.lost += sum(len(ts) for _, ts, _ in taken)
                    store.discard_pending()
                    raise self._broke(exc) from None
            self._last_commit = self.clock()
            return store.acknowledged

    # --- ending ------------------------------------------------------------------------------------
    def close(self, status: str = "complete", *, extra: dict[str, Any] | None = None, notes: list[str] | None = None) -> dict[str, Any]:
        """Commit, close open gaps as ``open-at-end``, summarise and finalise the take."""
        with self._io, self._lock:
            self._check()
            t = time.monotonic_ns()
            for performer in list(self.open_gaps):
                self._sparse(lambda p=performer: self.store.append_event(t, "gap", {"performer": p, "state": "open-at-end"}, stream="gaps"), "gap")
            self.commit()
            take = self.take
            take.manifest.extra.update(extra or {})
            take.manifest.notes.extend(notes or [])
            try:
                take.finalize(status)
            except DiskFullError as exc:
                raise self._broke(exc) from None
            self.closed = True
            return self.summary()

    def abort(self, error: BaseException) -> dict[str, Any]:
        """Stop after a write error: keep what was committed, mark the take ``failed`` with a note
        when the disk allows, and always release the take's lock."""
        with self._lock:
            take = self.take
            self.lost += self.pending
            self._buf = {}
            self._poses = {}
            if take._store is not None:
                self.lost += take._store.discard_pending()
            self.closed = True
            take.fail(str(error))  # failed + note when the disk allows (its reserve is freed first); lock released
            return self.summary()

    def summary(self) -> dict[str, Any]:
        m = self.take.manifest
        samples = sum(int(s.get("samples", 0)) for s in m.streams)
        return {"take": self.take.id, "status": m.status, "samples": samples, "lost": self.lost, "timecode_out": m.timecode_out}

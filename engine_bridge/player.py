"""Playback of a recorded take into engines, in real time.

``Player.run()`` in numbered steps:
  1. check inputs: the take opens, every performer the mapping asks for is in it, the range
     (--from/--to timecodes) lies inside the take, the speed is sane;
  2. load the frames of those performers at the take's fps on one shared frame grid
     (``machinima.tracks``; blendshape streams of a performer come along);
  3. open the targets (a target that cannot be set up is an error; an engine that does not
     answer is not: it is counted while playing);
  4. tick on absolute deadlines at the engines' rate; each tick samples the playhead (pause,
     seek, speed, loop) and sends one ``BridgeFrame`` to each target due at that tick;
  5. close the targets and return a ``PlaybackReport`` (jitter, per-target counts, errors).

The player is also the *controller* that plugins and the CLI keyboard steer: ``command()``.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from machinima import quat
from machinima.errors import MachinimaError, TimecodeError
from machinima.take import Take
from machinima.timecode import NS_PER_S, Timecode
from machinima.tracks import frame_times, resample_linear, resample_poses

from .errors import BridgeError, PerformerMissingError
from .mapping import Mapping
from .protocol import PlaybackCommand
from .scheduler import Playhead, Ticker
from .targets import BridgeFrame, Target, create_target

log = logging.getLogger("machinima.bridge")


class TakeFrames:
    """The performers of a take on one frame grid at the take's fps (step 2)."""

    def __init__(self, take: Take, performers: list[str]) -> None:
        store = take.store
        have = store.performers()
        for p in performers:
            if p not in have:
                raise PerformerMissingError(f"take {take.id} has no performer {p!r}", hint=f"performers in the take: {', '.join(have) or 'none'}; fix the mapping or pick another take")
        self.take_id = take.id
        self.fps = take.fps
        tracks = {p: store.read_mocap(p) for p in performers}
        empty = [p for p, t in tracks.items() if len(t) == 0]
        if empty:
            raise PerformerMissingError(f"performer {empty[0]!r} has no frames in take {take.id}")
        t0 = min(int(t.t_ns[0]) for t in tracks.values())
        t1 = max(int(t.t_ns[-1]) for t in tracks.values())
        self.grid = frame_times(t0, t1, self.fps)
        self.first_frame = int(store.frames_of(self.grid[:1])[0])
        self.poses = {p: resample_poses(t.t_ns, t.values, self.grid) for p, t in tracks.items()}
        self.blend: dict[str, tuple[list[str], np.ndarray]] = {}
        for info in store.streams():
            perf = info.meta.get("performer", info.name.split("/", 1)[-1])
            if info.kind == "blend" and perf in performers and perf not in self.blend:
                tr = store.read(info.name)
                if len(tr):
                    self.blend[perf] = (list(info.meta.get("channels", [])), resample_linear(tr.t_ns, tr.values, self.grid))
        self.cameras: dict[str, np.ndarray] = {}  # camera name -> (n, 12) canonical channels
        for info in store.streams():
            if info.kind == "camera":
                tr = store.read(info.name)
                if len(tr):
                    vals = resample_linear(tr.t_ns, tr.values, self.grid)
                    q = vals[:, 3:7]
                    vals[:, 3:7] = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-9)
                    self.cameras[info.name.split("/", 1)[-1]] = vals
        self.n = int(self.grid.shape[0])

    @property
    def duration_s(self) -> float:
        return (self.n - 1) / float(self.fps)

    def seconds_of(self, tc: str) -> float:
        """Media seconds of a take timecode (clear error outside the take)."""
        try:
            frame = Timecode.parse(tc, self.fps).frames
        except TimecodeError as exc:
            raise BridgeError(f"--from/--to {tc!r}: {exc}") from None
        k = frame - self.first_frame
        if not 0 <= k < self.n:
            raise BridgeError(
                f"timecode {tc} is outside take {self.take_id}",
                hint=f"the take runs {self.timecode(0)} to {self.timecode(self.n - 1)}",
            )
        return k / float(self.fps)

    def timecode(self, index: int) -> str:
        return str(Timecode.at(self.fps, self.first_frame + int(index)))

    def sample(self, t_s: float) -> tuple[int, dict[str, np.ndarray], dict[str, dict[str, float]]]:
        """Frame index (nearest below) and poses at media time ``t_s`` (slerp between frames)."""
        f = min(max(t_s * float(self.fps), 0.0), self.n - 1)
        i = int(math.floor(f + 1e-6))
        w = f - i
        j = min(i + 1, self.n - 1)
        poses = {}
        for p, arr in self.poses.items():
            if w < 1e-6 or j == i:
                poses[p] = arr[i]
            else:
                a, b = arr[i], arr[j]
                out = np.empty_like(a)
                out[:, :3] = a[:, :3] + (b[:, :3] - a[:, :3]) * w
                out[:, 3:7] = quat.slerp(a[:, 3:7].astype(np.float64), b[:, 3:7].astype(np.float64), w)
                poses[p] = out
        blend = {p: dict(zip(names, vals[i].tolist())) for p, (names, vals) in self.blend.items()}
        return i, poses, blend


@dataclass
class PlaybackReport:
    take: str
    frames_sent: int = 0
    seconds: float = 0.0
    jitter: dict[str, Any] = field(default_factory=dict)
    targets: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def errors(self) -> int:
        return sum(int(t.get("errors", 0)) for t in self.targets.values())


class Player:
    """Plays ``take_path`` into the engines of ``mapping``."""

    def __init__(
        self,
        take_path: str | Path,
        mapping: Mapping,
        *,
        loop: bool = False,
        from_tc: str | None = None,
        to_tc: str | None = None,
        speed: float = 1.0,
        rate: float | None = None,
        sink: Any = None,
        spin_ns: int = 1_000_000,
        targets: list[Target] | None = None,
    ) -> None:
        # 1. check inputs
        self.mapping = mapping
        take = Take.open(take_path)
        self.take = take
        try:
            mapping.check_performers(take.store.performers(), f"take {take.id}")
            # 2. load frames (then the take's store is closed: playback reads only memory)
            self.frames = TakeFrames(take, mapping.performers())
        finally:
            take.close()
        lo = self.frames.seconds_of(from_tc) if from_tc else 0.0
        hi = self.frames.seconds_of(to_tc) if to_tc else self.frames.duration_s
        if hi < lo:
            raise BridgeError(f"--to {to_tc} comes before --from {from_tc}")
        self.playhead = Playhead(lo, hi, speed=speed, loop=loop, tail_s=1.0 / float(self.frames.fps))
        # Each engine runs at its own rate (default: --rate, else the take's fps); the ticker runs
        # at the fastest and a slower engine gets the ticks where its own frame counter advances.
        default_rate = rate or self.frames.fps
        self.rate = float(max([float(e.rate or default_rate) for e in mapping.engines] + [float(default_rate)]))
        exact = all(not e.rate for e in mapping.engines)
        self.ticker = Ticker(default_rate if exact else self.rate, spin_ns=spin_ns)
        self._default_rate = float(default_rate)
        self.sink = sink
        self._context = {"controller": self, "sink": sink, "info": {"mode": "playback", "take": take.id, "fps": str(self.frames.fps)}}
        self.targets: list[Target] = targets if targets is not None else []
        self._target_rates: list[float | None] = []
        self._last_state = ""
        self._playback_cache: tuple[int, str, dict[str, Any]] | None = None
        self.report = PlaybackReport(take.id)
        self._opened = False
        self._start_ns = 0
        self._last_pos: float | None = None
        self._prepared: tuple[int, bool, bool] | None = None

    # --- controller (thread-safe: called from the keyboard thread and the plugin server) -----
    def command(self, cmd: PlaybackCommand) -> dict[str, Any]:
        ph = self.playhead
        if cmd.command == "play":
            ph.play()
        elif cmd.command == "pause":
            ph.pause()
        elif cmd.command == "toggle":
            ph.toggle()
        elif cmd.command == "seek":
            ph.seek(self.frames.seconds_of(cmd.timecode) if cmd.timecode else float(cmd.seconds or 0.0))
        elif cmd.command == "speed":
            ph.set_speed(float(cmd.speed or 1.0))
        self._prepared = None  # the frame prepared ahead is stale now: the next tick samples again
        return self.playback_state()

    def playback_state(self, pos: float | None = None) -> dict[str, Any]:
        ph = self.playhead
        pos = ph.position() if pos is None else pos
        idx = min(int(math.floor(pos * float(self.frames.fps) + 1e-6)), self.frames.n - 1)
        return {
            "state": ph.state(),
            "take": self.frames.take_id,
            "timecode": self.frames.timecode(idx),
            "seconds": round(pos, 6),
            "speed": ph.speed,
            "loop": ph.loop,
            "from": self.frames.timecode(round(ph.lo_s * float(self.frames.fps))),
            "to": self.frames.timecode(round(ph.hi_s * float(self.frames.fps))),
        }

    def stop(self) -> None:
        self.ticker.stop()

    # --- running -------------------------------------------------------------------------------
    def open_targets(self) -> None:
        # 3. open targets
        if not self.targets:
            for e in self.mapping.engines:
                self.targets.append(create_target(e, **self._context))
        opened = []
        try:
            for t in self.targets:
                t.open()
                opened.append(t)
        except BaseException:
            for t in opened:
                t.close()
            raise
        self._target_rates = [float(t.engine.rate or self._default_rate) for t in self.targets]
        self._opened = True

    def _prepare(self, k: int, deadline: int) -> tuple[int, bool, bool]:
        """Sample and encode the frame of tick ``k`` ahead of its deadline (each target keeps
        its packets ready), so the tick itself only sends: (k, end, last)."""
        ph = self.playhead
        finished = ph.finished(deadline)
        pos = ph.position(deadline)  # held at the end once finished
        if finished and self._last_pos is not None and abs(self._last_pos - pos) < 1e-6:
            return k, True, True  # the last frame went out on the previous tick
        self._last_pos = pos
        idx, poses, blend = self.frames.sample(pos)
        version = ph.version
        state = ph.state()
        if self._playback_cache is None or self._playback_cache[0] != version or self._playback_cache[1] != state:
            self._playback_cache = (version, state, self.playback_state(pos))
            if self.sink is not None and hasattr(self.sink, "event"):
                try:
                    self.sink.event("bridge.playback", time.monotonic_ns(), self._playback_cache[2], source="bridge")
                except MachinimaError as exc:
                    log.warning("could not record the playback state: %s", exc)
        frame = BridgeFrame(k, pos, self.frames.timecode(idx), poses, blend, state, self._playback_cache[2], version * 2 + (state == "paused"),
                            {name: vals[idx] for name, vals in self.frames.cameras.items()})
        for t, r in zip(self.targets, self._target_rates):
            if r < self.rate - 1e-9 and k:
                # a slower engine gets the ticks where its own frame counter advances
                if math.floor(k * r / self.rate + 1e-9) == math.floor((k - 1) * r / self.rate + 1e-9):
                    continue
            t.prepare(frame)
        return k, False, finished

    def _tick(self, k: int, deadline: int) -> bool:
        prep = self._prepared  # (read once: a command may reset it from another thread)
        if prep is None or prep[0] != k:  # first tick, skipped ticks, or a command came in
            prep = self._prepare(k, deadline)
        _, end, last = prep
        if end:
            return False
        for t in self.targets:
            t.flush()
        self.report.frames_sent += 1
        if last:
            return False
        # the next frame is prepared now, while waiting for its deadline
        self._prepared = self._prepare(k + 1, self.ticker.deadline(self._start_ns, k + 1))
        return True

    def run(self, *, max_ticks: int | None = None) -> PlaybackReport:
        if not self._opened:
            self.open_targets()
        # 4. tick on absolute deadlines (the playhead starts at the first deadline)
        t0 = time.perf_counter_ns()
        start = t0 + 2_000_000
        self._start_ns = start
        self.playhead.restart(start)
        try:
            self.ticker.run(self._tick, max_ticks=max_ticks, start_ns=start)
        finally:
            # 5. close and report (also after Ctrl-C: the CLI prints what was sent)
            for t in self.targets:
                try:
                    t.close()
                except Exception as exc:  # closing must not hide the report
                    log.warning("closing %s: %s", t.name, exc)
            self.report.seconds = (time.perf_counter_ns() - t0) / NS_PER_S
            self.report.jitter = self.ticker.stats.summary()
            self.report.targets = {t.name: t.stats.as_dict() for t in self.targets}
        return self.report


def run_keyboard(player: Player, stream: Any, *, step_s: float = 1.0, echo: Any = None) -> threading.Thread:
    """Steer ``player`` from a text stream (the CLI's stdin), one command per line::

        p | pause     play     space/t | toggle     seek TC|SECONDS     + / -  (+/- step_s)
        speed X       q | quit

    On a terminal the CLI switches it to single keys (see ``cli``); this reads lines.
    """

    def handle(line: str) -> bool:
        parts = line.strip().split()
        if not parts:
            cmd = PlaybackCommand("toggle")
        else:
            word = parts[0].lower()
            if word in ("q", "quit", "exit"):
                player.stop()
                return False
            if word in ("p", "pause"):
                cmd = PlaybackCommand("pause")
            elif word in ("play", "resume"):
                cmd = PlaybackCommand("play")
            elif word in ("t", "toggle", "space"):
                cmd = PlaybackCommand("toggle")
            elif word in ("+", "-", "f", "b"):
                player.playhead.nudge(step_s if word in ("+", "f") else -step_s)
                player._prepared = None
                cmd = None
            elif word in ("slower", "faster"):
                cmd = PlaybackCommand("speed", speed=min(16.0, max(1 / 16, player.playhead.speed * (0.5 if word == "slower" else 2.0))))
            elif word == "seek" and len(parts) > 1:
                arg = parts[1]
                cmd = PlaybackCommand("seek", timecode=arg) if ":" in arg or ";" in arg else PlaybackCommand("seek", seconds=float(arg))
            elif word == "speed" and len(parts) > 1:
                cmd = PlaybackCommand("speed", speed=float(parts[1]))
            else:
                if echo:
                    echo(f"unknown command {line.strip()!r}: pause, play, toggle, seek TC, speed X, +, -, quit")
                return True
        try:
            state = player.command(cmd) if cmd else player.playback_state()
            if echo:
                echo(f"{state['state']} {state['timecode']} x{state['speed']}")
        except (BridgeError, ValueError) as exc:
            if echo:
                echo(f"error: {exc}")
        return True

    def loop() -> None:
        for line in stream:
            if not handle(line):
                break

    th = threading.Thread(target=loop, name="bridge-keys", daemon=True)
    th.start()
    return th

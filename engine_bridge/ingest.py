"""Cameras and events from engines into a take (or to the stage server).

OSC addresses (UDP, default port 39540; Unity space: left-handed, Y-up, metres)::

    /machinima/camera  s name, f px, f py, f pz, f qx, f qy, f qz, f qw
                       [, f focal_mm [, f sensor_w_mm, f sensor_h_mm [, f focus_m]]]
    /machinima/event   s name [, s payload]        payload: a JSON object as text

``OSCIngest`` is sans-I/O (bytes in, samples out, counters for what it dropped);
``OSCIngestListener`` drives it on a UDP socket. Both feed a *sink*:

- ``TakeSink``: a take the bridge opens for writing itself (``--record-into TAKES_ROOT``),
  written through the hub's ``TakeWriter`` (commits on a timer, ``CommitTimer``, input or not);
  cameras become ``camera/<name>`` streams (``store.CAMERA_CHANNELS``), events go to the
  ``events`` stream with ``{"name", "payload", "source"}``.
- ``StageSink``: forwards to the stage server as an ``engine`` client (``--server URL``), which
  records them into the take the director is recording.

Sinks are thread-safe: the OSC listener and the plugin server call them from their threads.
"""

from __future__ import annotations

import json
import logging
import math
import socket
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from machinima import osc
from machinima.errors import MachinimaError, OSCError
from machinima.skeleton import unity_to_canonical
from machinima.store import CAMERA_CHANNELS

from .errors import BridgeError

log = logging.getLogger("machinima.bridge")

ADDR_CAMERA = "/machinima/camera"
ADDR_EVENT = "/machinima/event"
DEFAULT_INGEST_PORT = 39540
_CAMERA_ARGC = (8, 9, 11, 12)
_DEFAULTS = {"focal_mm": 35.0, "sensor_w_mm": 36.0, "sensor_h_mm": 24.0, "focus_m": 0.0}


def camera_from_osc(args: tuple) -> tuple[str, np.ndarray]:
    """(name, 12 canonical channels) of a ``/machinima/camera`` message; BridgeError if bad."""
    if len(args) not in _CAMERA_ARGC or not isinstance(args[0], str) or not args[0] or "/" in args[0]:
        raise BridgeError(f"{ADDR_CAMERA} takes a name then 7, 8, 10 or 11 floats; got {len(args)} arguments")
    nums = args[1:]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in nums):
        raise BridgeError(f"{ADDR_CAMERA}: arguments after the name must be finite numbers")
    pos = np.array(nums[0:3], dtype=np.float64)
    rot = np.array(nums[3:7], dtype=np.float64)
    norm = float(np.linalg.norm(rot))
    if norm < 1e-6:
        raise BridgeError(f"{ADDR_CAMERA}: rotation is a zero quaternion")
    pos, rot = unity_to_canonical(pos, rot / norm)
    out = np.zeros(len(CAMERA_CHANNELS), dtype=np.float32)
    out[0:3], out[3:7] = pos, rot
    out[7] = nums[7] if len(nums) > 7 else _DEFAULTS["focal_mm"]
    out[8] = nums[8] if len(nums) > 9 else _DEFAULTS["sensor_w_mm"]
    out[9] = nums[9] if len(nums) > 9 else _DEFAULTS["sensor_h_mm"]
    out[10] = nums[10] if len(nums) > 10 else _DEFAULTS["focus_m"]
    if out[7] <= 0 or out[8] <= 0 or out[9] <= 0 or out[10] < 0:
        raise BridgeError(f"{ADDR_CAMERA}: focal length and sensor must be positive, focus not negative")
    return args[0], out


class OSCIngest:
    """Sans-I/O: ``feed(datagram)`` -> list of ("camera", name, values) / ("event", name, payload).

    Nothing raises: garbage is counted in ``rejects`` by reason (``not_osc``, ``bad_camera``,
    ``bad_event``, ``too_large``) and unknown addresses in ``ignored``.
    """

    def __init__(self, *, max_packet_bytes: int = 65507, max_payload_bytes: int = 16384) -> None:
        self.max_packet_bytes = max_packet_bytes
        self.max_payload_bytes = max_payload_bytes
        self.rejects: Counter[str] = Counter()
        self.ignored = 0
        self.accepted = 0

    def feed(self, data: bytes) -> list[tuple[str, str, Any]]:
        if len(data) > self.max_packet_bytes:
            self.rejects["too_large"] += 1
            return []
        try:
            msgs = osc.decode_packet(data)
        except OSCError:
            self.rejects["not_osc"] += 1
            return []
        out: list[tuple[str, str, Any]] = []
        for m in msgs:
            if m.address == ADDR_CAMERA:
                try:
                    name, values = camera_from_osc(m.args)
                except BridgeError:
                    self.rejects["bad_camera"] += 1
                    continue
                out.append(("camera", name, values))
            elif m.address == ADDR_EVENT:
                ev = self._event(m.args)
                if ev is None:
                    self.rejects["bad_event"] += 1
                    continue
                out.append(("event", ev[0], ev[1]))
            else:
                self.ignored += 1
        self.accepted += len(out)
        return out

    def _event(self, args: tuple) -> tuple[str, dict] | None:
        if not args or not isinstance(args[0], str) or not args[0] or len(args) > 2:
            return None
        payload: Any = {}
        if len(args) == 2:
            if not isinstance(args[1], str) or len(args[1]) > self.max_payload_bytes:
                return None
            try:
                payload = json.loads(args[1]) if args[1] else {}
            except (json.JSONDecodeError, RecursionError):
                return None
            if not isinstance(payload, dict):
                return None
        return args[0], payload


class OSCIngestListener:
    """A UDP socket that feeds ``OSCIngest`` and hands what it accepts to ``sink``."""

    def __init__(self, sink: Any, host: str = "0.0.0.0", port: int = DEFAULT_INGEST_PORT, **limits: Any) -> None:
        self.sink = sink
        self.ingest = OSCIngest(**limits)
        self.sink_errors = 0
        try:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.sock.bind((host, port))
        except OSError as exc:
            raise BridgeError(f"cannot listen for OSC cameras/events on {host}:{port}: {exc}", hint="pick another --osc-in port") from None
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="osc-ingest", daemon=True)

    def start(self) -> "OSCIngestListener":
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                break
            t_ns = time.monotonic_ns()
            for kind, name, value in self.ingest.feed(data):
                try:
                    if kind == "camera":
                        self.sink.camera(name, t_ns, value)
                    else:
                        self.sink.event(name, t_ns, value, source="osc")
                except MachinimaError as exc:
                    self.sink_errors += 1
                    log.warning("could not record %s %s: %s", kind, name, exc)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


class TakeSink:
    """Records cameras and events into a take that the bridge creates (and finalizes)."""

    def __init__(self, takes_root: str | Path, *, production: str = "bridge", scene: str = "engine", shot: str = "cameras", fps: float | str = 24, notes: list[str] | None = None,
                 commit_interval: float = 0.08) -> None:
        from machinima.take import Take
        from machinima.takewriter import CommitTimer, TakeWriter

        self.take = Take.create(takes_root, production=production, scene=scene, shot=shot, fps=fps, notes=notes)
        self.writer = TakeWriter(self.take, commit_interval=commit_interval)
        self.timer = CommitTimer(self.writer, on_error=lambda exc: log.error("recording into %s stopped: %s", self.take_id, exc)).start()
        self._id = self.take.id
        self.counts = self.writer.counts

    @property
    def take_id(self) -> str:
        return self._id

    def camera(self, name: str, t_ns: int, values: np.ndarray) -> None:
        if self.writer.closed:
            raise BridgeError("the take is closed")
        self.writer.camera(name, t_ns, values, source="engine")

    def event(self, name: str, t_ns: int, payload: dict[str, Any], source: str = "engine") -> None:
        if self.writer.closed:
            raise BridgeError("the take is closed")
        self.writer.event(t_ns, {"name": name, "payload": payload, "source": source})

    def close(self, status: str = "complete") -> str:
        if self.writer.closed:
            return ""
        self.timer.stop()
        if self.writer.error is not None:
            self.writer.abort(self.writer.error)
        else:
            self.writer.close(status)
        return self._id


CONTROL_EVENT = "bridge.control"


class StageSink:
    """Forwards cameras and events to the stage server as an ``engine`` client.

    ``follow_director(player)`` also lets the director steer playback from the stage: a stage
    event named ``bridge.control`` with a payload like a plugin's ``playback`` message
    (``{"command": "pause"}``, ``{"command": "seek", "timecode": "01:00:02:00"}``,
    ``{"command": "speed", "speed": 0.5}``) is applied to the player.
    """

    def __init__(self, url: str, token: str, *, client: str = "engine-bridge") -> None:
        from machinima.client import SyncStageClient

        try:
            self.stage = SyncStageClient(url, token, client=client, reconnect=True)
        except MachinimaError as exc:
            raise BridgeError(f"cannot connect to the stage at {url}: {exc}", hint="is `machinima server` running, and is the token an engine token?") from None
        self._lock = threading.Lock()
        self.counts = Counter()
        self.commands = 0
        self._control: threading.Thread | None = None
        self._control_stop = threading.Event()

    def follow_director(self, controller: Any) -> None:
        """Apply the stage's ``bridge.control`` events to ``controller`` (the player)."""
        try:
            self.stage.subscribe(frames=False, events=True)
        except MachinimaError as exc:
            raise BridgeError(f"cannot follow the director's playback commands: {exc}") from None
        self._control = threading.Thread(target=self._control_loop, args=(controller,), name="stage-control", daemon=True)
        self._control.start()

    def _control_loop(self, controller: Any) -> None:
        from .protocol import parse_playback

        while not self._control_stop.is_set():
            try:
                msg = self.stage.next_message({"event"}, timeout=0.5)
            except MachinimaError as exc:
                if getattr(exc, "code", "") != "timeout":
                    self._control_stop.wait(0.5)  # closed / reconnecting
                continue
            if msg.get("name") != CONTROL_EVENT:
                continue
            try:
                controller.command(parse_playback(msg.get("payload") or {}))
                self.commands += 1
            except MachinimaError as exc:
                log.warning("director playback command %s ignored: %s", msg.get("payload"), exc)

    def camera(self, name: str, t_ns: int, values: np.ndarray) -> None:
        with self._lock:
            try:
                self.stage.send_camera(name, np.asarray(values, dtype=np.float32))
            except MachinimaError as exc:
                raise BridgeError(f"stage refused camera {name!r}: {exc}") from None
            self.counts["camera"] += 1

    def event(self, name: str, t_ns: int, payload: dict[str, Any], source: str = "engine") -> None:
        with self._lock:
            try:
                self.stage.event(name, payload)
            except MachinimaError as exc:
                raise BridgeError(f"stage refused event {name!r}: {exc}") from None
            self.counts["event"] += 1

    def close(self, status: str = "complete") -> str:
        self._control_stop.set()
        if self._control is not None:
            self._control.join(5)
        self.stage.close()
        return ""

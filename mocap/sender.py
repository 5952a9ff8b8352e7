"""UDP senders for ``machinima mocap send``: synthetic performers, BVH playback and Xsens MVN
datagrams, at a fixed rate with absolute deadlines (no drift), one socket per performer so a
receiver tells them apart by address (VMC also carries the name in Root/Pos).
"""

from __future__ import annotations

import math
import socket
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from machinima import osc, vmc
from machinima.skeleton import BONES

from . import xsens
from .errors import MocapError

PoseFn = Callable[[float], "np.ndarray | None"]


@dataclass
class Performer:
    name: str
    pose_at: PoseFn
    blend_at: Callable[[float], dict] | None = None
    world_at: Callable[[float], tuple] | None = None  # fk(pose_at(t)) when cheaper in bulk (Xsens)


@dataclass
class SendStats:
    frames: int = 0
    datagrams: int = 0
    bytes: int = 0
    late_ticks: int = 0
    seconds: float = 0.0
    send_ns: dict = field(default_factory=dict)  # (performer index, frame) -> monotonic ns (if asked)


def parse_target(text: str, default_port: int) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host:
        host, port = (text, str(default_port)) if not text.isdigit() else ("127.0.0.1", text)
    try:
        p = int(port)
    except ValueError:
        raise MocapError(f"bad target {text!r}", hint="use HOST:PORT, e.g. 127.0.0.1:39539") from None
    if not 0 < p < 65536:
        raise MocapError(f"port {p} out of range")
    return host, p


def encoder_for(protocol: str, *, split: int = 1, msg_type: int = 2) -> Callable[[int, Performer, np.ndarray, float, int], list[bytes]]:
    """A function (index, performer, pose, t, frame) -> datagrams for ``vmc``, ``osc`` or ``xsens``."""
    if protocol == "vmc":
        def enc(i: int, p: Performer, pose: np.ndarray, t: float, k: int) -> list[bytes]:
            blend = p.blend_at(t) if p.blend_at else None
            return [vmc.encode_frame(pose, time_s=t, root_name=p.name, blendshapes=blend)]
        return enc
    if protocol == "osc":
        def enc_osc(i: int, p: Performer, pose: np.ndarray, t: float, k: int) -> list[bytes]:
            msgs = [osc.encode_message(f"/{p.name}/bone/{b}", [float(v) for v in pose[j]]) for j, b in enumerate(BONES)]
            msgs.append(osc.encode_message(f"/{p.name}/frame", ()))
            return [osc.encode_bundle(msgs)]
        return enc_osc
    if protocol == "xsens":
        def enc_x(i: int, p: Performer, pose: np.ndarray, t: float, k: int) -> list[bytes]:
            out = []
            if k % 60 == 0:
                out.append(xsens.encode_meta(i, p.name, k))
            world = p.world_at(t) if p.world_at else None
            out += xsens.encode_pose(pose, k, int(round(t * 1000)), msg_type=msg_type, character=i, split=split, world=world)
            return out
        return enc_x
    raise MocapError(f"unknown protocol {protocol!r}", hint="vmc, osc or xsens")


def send(performers: list[Performer], target: tuple[str, int], *, fps: float = 120.0, seconds: float | None = 5.0,
         protocol: str = "vmc", shared_socket: bool = False, record_send_times: bool = False,
         stop: Callable[[], bool] | None = None, on_tick: Callable[[int], None] | None = None, split: int = 1) -> SendStats:
    """Send every performer's pose at ``fps`` for ``seconds`` (None: until ``stop()``).

    Absolute deadlines: frame k goes out at start + k / fps, so the rate does not drift; a
    tick that falls behind is sent at once and counted in ``late_ticks``. Xsens performers
    share one socket (MVN sends all characters from one address) unless told otherwise.
    """
    if fps <= 0 or fps > 2000:
        raise MocapError(f"fps {fps} out of range (0, 2000]")
    enc = encoder_for(protocol, split=split)
    one = shared_socket or protocol == "xsens"
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(1 if one else len(performers))]
    for s in socks:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    stats = SendStats()
    period = 1.0 / fps
    for i, p in enumerate(performers):  # warm up (first chunk of poses, encoder templates) before the clock starts
        pose = p.pose_at(0.0)
        if pose is not None:
            enc(i, p, pose, 0.0, 0)
    start = time.perf_counter()
    n_frames = None if seconds is None else math.ceil(seconds * fps - 1e-3)  # frames at t = k / fps < seconds
    k = 0
    try:
        while True:
            t = k * period
            if n_frames is not None and k >= n_frames:
                break
            if stop is not None and stop():
                break
            deadline = start + t
            delay = deadline - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            elif delay < -period:
                stats.late_ticks += 1
            for i, p in enumerate(performers):
                pose = p.pose_at(t)
                if pose is None:
                    continue
                sock = socks[0 if one else i]
                datagrams = enc(i, p, pose, t, k)
                if record_send_times:
                    stats.send_ns[(i, k)] = time.monotonic_ns()
                for d in datagrams:
                    try:
                        sock.sendto(d, target)
                    except OSError as exc:  # no listener yet (ICMP), buffer full: keep the beat
                        if exc.errno not in (111, 105, 11):
                            raise MocapError(f"cannot send to {target[0]}:{target[1]}: {exc}") from None
                    stats.datagrams += 1
                    stats.bytes += len(d)
                stats.frames += 1
            if on_tick:
                on_tick(k)
            k += 1
    finally:
        for s in socks:
            s.close()
        stats.seconds = time.perf_counter() - start
    return stats

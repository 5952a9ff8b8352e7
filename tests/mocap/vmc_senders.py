"""VMC senders built with python-osc, not with machinima's encoder: the shapes real apps send
(one bundle per frame, a frame split over several bundles, one message per datagram; T and OK
first or last, or absent), and the truth each frame should become.

Truth is written out here, independently of ``machinima``: Unity (left-handed, what VMC
carries) to canonical right-handed is a mirror of X (position (-x, y, z), rotation
(x, -y, -z, w)); the canonical Hips is the root transform applied to the Hips bone (scipy's
``Rotation`` does the rotation).
"""

from __future__ import annotations

import math
import socket
import time

import numpy as np
from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.udp_client import SimpleUDPClient
from scipy.spatial.transform import Rotation

ROOT, BONE, BLEND, APPLY, TIME, OK = "/VMC/Ext/Root/Pos", "/VMC/Ext/Bone/Pos", "/VMC/Ext/Blend/Val", "/VMC/Ext/Blend/Apply", "/VMC/Ext/T", "/VMC/Ext/OK"
# Unity HumanBodyBones in their enum order (the canonical skeleton is the same 55).
UNITY_BONES = (
    "Hips", "LeftUpperLeg", "RightUpperLeg", "LeftLowerLeg", "RightLowerLeg", "LeftFoot", "RightFoot", "Spine", "Chest", "Neck", "Head",
    "LeftShoulder", "RightShoulder", "LeftUpperArm", "RightUpperArm", "LeftLowerArm", "RightLowerArm", "LeftHand", "RightHand",
    "LeftToes", "RightToes", "LeftEye", "RightEye", "Jaw",
    "LeftThumbProximal", "LeftThumbIntermediate", "LeftThumbDistal", "LeftIndexProximal", "LeftIndexIntermediate", "LeftIndexDistal",
    "LeftMiddleProximal", "LeftMiddleIntermediate", "LeftMiddleDistal", "LeftRingProximal", "LeftRingIntermediate", "LeftRingDistal",
    "LeftLittleProximal", "LeftLittleIntermediate", "LeftLittleDistal",
    "RightThumbProximal", "RightThumbIntermediate", "RightThumbDistal", "RightIndexProximal", "RightIndexIntermediate", "RightIndexDistal",
    "RightMiddleProximal", "RightMiddleIntermediate", "RightMiddleDistal", "RightRingProximal", "RightRingIntermediate", "RightRingDistal",
    "RightLittleProximal", "RightLittleIntermediate", "RightLittleDistal", "UpperChest",
)


def message(address: str, *args) -> object:
    b = OscMessageBuilder(address=address)
    for a in args:
        b.add_arg(a)
    return b.build()


def bundle(messages: list, timetag: float = IMMEDIATELY) -> object:
    b = OscBundleBuilder(timetag)
    for m in messages:
        b.add_content(m)
    return b.build()


def quat_x(angle: float) -> tuple[float, float, float, float]:
    return (math.sin(angle / 2), 0.0, 0.0, math.cos(angle / 2))


def bone_values(k: int, i: int) -> tuple[float, ...]:
    """Bone i of frame k as sent (Unity space): every bone of every frame differs, so a stale
    bone (one left over from another frame) shows."""
    if i == 0:  # Hips, local to the avatar root
        return (0.01 * k, 0.9, 0.05, *quat_x(0.002 * k))
    return (0.0, 0.1, 0.0, *quat_x(0.01 * k + 0.001 * i))


def root_values(k: int, *, turn: bool = True) -> tuple[float, ...]:
    """The avatar root as sent: it walks along X (and turns about Y when ``turn``)."""
    a = 0.01 * k if turn else 0.0
    return (0.5 + 0.02 * k, 0.0, -0.3, 0.0, math.sin(a / 2), 0.0, math.cos(a / 2))


def blend_values(k: int) -> dict[str, float]:
    return {"A": round(k / 1000, 6), "Blink_L": round(1 - k / 1000, 6)}


def to_canonical(v) -> np.ndarray:
    x, y, z, qx, qy, qz, qw = v
    return np.array([-x, y, z, qx, -qy, -qz, qw], dtype=np.float64)


def expected_pose(k: int, bones: int = 55, root: tuple | None = None) -> np.ndarray:
    """The canonical pose frame k must become: each sent bone mirrored, Hips in world space."""
    from machinima.skeleton import BONE_INDEX, rest_pose

    pose = rest_pose().astype(np.float64)
    for i in range(bones):
        pose[BONE_INDEX[UNITY_BONES[i]]] = to_canonical(bone_values(k, i))
    if root is not None:
        h = BONE_INDEX["Hips"]
        r = to_canonical(root)
        rot = Rotation.from_quat(r[3:7])
        hips = pose[h].copy()
        pose[h, :3] = r[:3] + rot.apply(hips[:3])
        pose[h, 3:7] = (rot * Rotation.from_quat(hips[3:7])).as_quat()
    return pose


def frame_messages(k: int, *, name: str = "root", bones: int = 55, blend: bool = False, time_s: float | None = None, ok: bool = True,
                   markers: str = "first", turn: bool = True) -> list:
    """The messages of frame k in sending order; T/OK ``first`` or ``last``."""
    content = [message(ROOT, name, *root_values(k, turn=turn))]
    content += [message(BONE, UNITY_BONES[i], *bone_values(k, i)) for i in range(bones)]
    if blend:
        content += [message(BLEND, n, v) for n, v in blend_values(k).items()] + [message(APPLY)]
    marks = ([message(OK, 1)] if ok else []) + ([message(TIME, float(time_s))] if time_s is not None else [])
    return marks + content if markers == "first" else content + marks


def split(messages: list, parts: int) -> list[list]:
    n = len(messages)
    cuts = [round(j * n / parts) for j in range(parts + 1)]
    return [messages[cuts[j]:cuts[j + 1]] for j in range(parts)]


class Pacer:
    """Sends on absolute deadlines (no drift), ``intervals`` seconds apart."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.at = 0.0

    def wait(self, interval: float) -> None:
        self.at += interval
        delay = self.t0 + self.at - time.perf_counter()
        if delay > 0:
            time.sleep(delay)


def client(port: int) -> SimpleUDPClient:
    c = SimpleUDPClient("127.0.0.1", port)
    c._sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    return c


def free_udp_port() -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


async def listen_while(ingest, bindings: list[tuple[str, str, int]], senders: list, *, quiet: float = 0.4, limit: float = 20.0) -> list[dict]:
    """Listen on real sockets while the sender threads run, then until nothing new arrived for
    ``quiet`` seconds (a busy machine may lag: a fixed wait would lose the tail)."""
    import asyncio
    import threading

    from mocap.listener import serve

    ready, stop = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(serve(ingest, bindings, stop=stop, ready=ready))
    await ready.wait()
    threads = [threading.Thread(target=fn) for fn in senders]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        await asyncio.sleep(0.02)
    end = time.monotonic() + limit
    last, changed = -1, time.monotonic()
    while time.monotonic() < end and time.monotonic() - changed < quiet:
        n = sum(h.packets for h in ingest.health.values())
        if n != last:
            last, changed = n, time.monotonic()
        await asyncio.sleep(0.02)
    stop.set()
    return await task


def record(tmp_path, bindings: dict[str, object], senders: list, *, delay_ms: float = 0.0, quiet: float = 0.4, limit: float = 20.0):
    """Record into a new take from real loopback sockets (``bindings``: port -> source) while
    the sender threads run. Returns (the finished take, the health summary, the ingest)."""
    import asyncio

    from machinima.take import Take
    from machinima.takewriter import TakeWriter
    from mocap.listener import Ingest

    take = Take.create(tmp_path / "takes", production="p", scene="1", shot="a", fps=60)
    ingest = Ingest(writer=TakeWriter(take), delay_ms=delay_ms)
    for src in bindings.values():
        ingest.add_source(src)
    summary = asyncio.run(listen_while(ingest, [(src.name, "127.0.0.1", port) for port, src in bindings.items()], senders, quiet=quiet, limit=limit))
    ingest.end_take(summary=summary)
    return Take.open(take.path), summary, ingest


def wait_bound(port: int, timeout: float = 30.0) -> None:
    """Until a process has bound UDP ``port`` (binding it here fails)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return
        finally:
            s.close()
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on UDP {port}")

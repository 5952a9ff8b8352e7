"""Fixtures of the engine bridge tests: takes with moving performers, real loopback receivers."""

from __future__ import annotations

import socket
import struct
import threading
import time

import numpy as np
import pytest

from machinima import quat
from machinima.skeleton import BONE_INDEX, rest_pose
from machinima.take import Take
from machinima.timecode import NS_PER_S


def moving_poses(n: int, fps: float, phase: float = 0.0) -> np.ndarray:
    """A performer that walks and waves: every frame differs (so frame mix-ups show)."""
    poses = np.broadcast_to(rest_pose(), (n, *rest_pose().shape)).copy()
    t = np.arange(n) / fps
    poses[:, BONE_INDEX["Hips"], 0] += 0.5 * np.sin(2 * np.pi * 0.3 * t + phase)
    poses[:, BONE_INDEX["Hips"], 2] += 0.2 * t
    poses[:, BONE_INDEX["Hips"], 3:7] = quat.from_axis_angle(np.array([0, 1.0, 0]), 0.4 * np.sin(t + phase))
    poses[:, BONE_INDEX["RightUpperArm"], 3:7] = quat.from_axis_angle(np.array([0, 0, 1.0]), 0.6 * np.sin(2 * np.pi * 1.2 * t + phase) - 1.1)
    poses[:, BONE_INDEX["LeftLowerLeg"], 3:7] = quat.from_axis_angle(np.array([1.0, 0, 0]), 0.5 * np.sin(2 * np.pi * 0.8 * t + phase))
    return poses.astype(np.float32)


def make_take(root, performers=("alice", "bob"), n=60, fps=60, blend=False, timecode_in="01:00:00:00", camera=False):
    take = Take.create(root, production="film", scene="1", shot="A", fps=fps, performers=list(performers), timecode_in=timecode_in)
    origin = take.store.origin_ns
    stamps = origin + (np.arange(n, dtype=np.int64) * NS_PER_S) // fps
    expected = {}
    for i, p in enumerate(performers):
        take.add_performer(p)
        poses = moving_poses(n, fps, phase=i)
        take.store.append(f"mocap/{p}", stamps, poses)
        expected[p] = poses
        if blend:
            take.store.add_blend_stream(p, ["A", "I"], {"performer": p})
            w = np.stack([np.linspace(0, 1, n), np.linspace(1, 0, n)], axis=1)
            take.store.append(f"blend/{p}", stamps, w)
    if camera:  # a dolly moving along canonical +X, 50 mm
        take.store.add_camera_stream("dolly")
        cam = np.zeros((n, 12), np.float32)
        cam[:, 0] = np.arange(n) / fps
        cam[:, 1] = 1.6
        cam[:, 6] = 1.0
        cam[:, 7:11] = (50.0, 36.0, 24.0, 3.0)
        take.store.append("camera/dolly", stamps, cam)
        expected["camera/dolly"] = cam
    take.finalize()
    return take.path, expected


SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)


class UDPCollector:
    """A real UDP socket on 127.0.0.1 that keeps every datagram with its arrival time: the
    kernel's receive stamp (SO_TIMESTAMPNS, ns), so the timing does not depend on when this
    Python thread gets to run."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.packets: list[tuple[int, bytes]] = []
        self._stop = threading.Event()
        self._th = threading.Thread(target=self._run, daemon=True)
        self._th.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, anc, _, _ = self.sock.recvmsg(65536, 256)
            except socket.timeout:
                continue
            except OSError:
                return
            stamp = time.time_ns()
            for level, kind, raw in anc:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(raw) >= 16:
                    sec, nsec = struct.unpack("qq", raw[:16])
                    stamp = sec * 1_000_000_000 + nsec
            self.packets.append((stamp, data))

    def wait_for(self, n: int, timeout: float = 10.0) -> None:
        end = time.monotonic() + timeout
        while len(self.packets) < n and time.monotonic() < end:
            time.sleep(0.01)

    def close(self) -> None:
        self._stop.set()
        self._th.join(1)
        self.sock.close()


@pytest.fixture
def udp():
    made = []

    def factory() -> UDPCollector:
        c = UDPCollector()
        made.append(c)
        return c

    yield factory
    for c in made:
        c.close()


def free_udp_port() -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port

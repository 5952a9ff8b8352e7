"""Live preview: a VMC (OSC over UDP) receiver that drives an armature in the viewport.

The socket only feeds bytes to the hub's sans-I/O ``machinima.vmc.VMCDecoder`` and
``VMCAssembler`` (whole frames, whether the sender sends one bundle a frame, split bundles or
single messages; Root and Hips kept apart); the newest frame's canonical pose is what
``rigpose.apply_pose`` puts on the rig. ``LivePreview.step()``
drains what has arrived and returns: the panel's modal operator calls it on a timer, tests call
it directly after sending packets (no event loop needed, so it runs headless).
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field

import bpy
import numpy as np

from machinima import skeleton
from machinima.vmc import DEFAULT_PORT, VMCAssembler, VMCDecoder

from .errors import BlenderAddonError
from .rigpose import RigInfo, apply_pose


@dataclass
class LiveStats:
    packets: int = 0
    rejected: int = 0
    applied: int = 0
    rejects: dict[str, int] = field(default_factory=dict)


class LivePreview:
    """Receive VMC on ``host:port`` and pose ``armature`` (canonical or mapped by ``bone_map``).

    ``max_packets_per_step`` bounds the work of one timer tick (a flood cannot freeze the UI);
    only the newest pose is applied per step.
    """

    def __init__(self, armature: bpy.types.Object, *, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
                 bone_map: dict[str, str] | None = None, max_packets_per_step: int = 256) -> None:
        self.armature = armature
        self.info = RigInfo.read(armature, bone_map)
        self.decoder = VMCDecoder()
        self.frames = VMCAssembler()
        self.pose = skeleton.rest_pose()
        self.max_packets_per_step = max_packets_per_step
        self.stats = LiveStats()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self.sock.bind((host, port))
        except OSError as exc:
            self.sock.close()
            raise BlenderAddonError(f"cannot listen for VMC on {host}:{port}: {exc}",
                                    hint="another program (or another preview) holds the port; pick another one") from None
        self.sock.setblocking(False)

    @property
    def address(self) -> tuple[str, int]:
        return self.sock.getsockname()

    def step(self) -> int:
        """Drain waiting datagrams; apply the resulting pose once. Returns packets read."""
        n = 0
        changed = False
        while n < self.max_packets_per_step:
            try:
                data = self.sock.recv(65535)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break
            n += 1
            self.stats.packets += 1
            pkt = self.decoder.feed(data)
            if pkt is None:
                self.stats.rejected += 1
                continue
            for f in self.frames.feed(pkt, time.monotonic_ns()):
                if f.has_pose:
                    self.pose, changed = f.pose, True
        if n < self.max_packets_per_step:  # drained: a sender gone quiet has its last frame out
            for f in self.frames.poll(time.monotonic_ns()):
                if f.has_pose:
                    self.pose, changed = f.pose, True
        if changed:
            apply_pose(self.armature, self.info, np.asarray(self.pose))
            self.stats.applied += 1
        self.stats.rejects = dict(self.decoder.rejects)
        return n

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "LivePreview":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""Frames: one performer's canonical pose at one instant, as every source produces them."""

from __future__ import annotations

from typing import Any

import numpy as np

from machinima.skeleton import BONES, POSE_WIDTH, rest_pose


class Frame:
    """A canonical pose (55, 7) of ``performer`` received from ``source``.

    ``t_recv_ns``: monotonic receive stamp (the kernel's arrival time when the listener has it,
    so a receiver that falls behind does not make frames look late). ``sender_time_s``: the
    sender's own clock when the protocol carries one (VMC ``/VMC/Ext/T``, Xsens time code).
    ``seq``: the sender's sample counter when it has one (Xsens), else None. ``blendshapes``:
    {name: weight} when the frame carried face data. ``pose`` is None for a sender that only
    sends blendshapes. ``t_ns`` is the stamp used for ordering and recording (set by the timing
    stage; receive stamp until then). ``meta``: flags set along the way (``late``, ``restart``).
    A plain class with slots: tens of thousands are made a second.
    """

    __slots__ = ("performer", "source", "t_recv_ns", "pose", "sender_time_s", "seq", "blendshapes", "t_ns", "interpolated", "meta")

    def __init__(self, performer: str, source: str, t_recv_ns: int, pose: np.ndarray | None, sender_time_s: float | None = None,
                 seq: int | None = None, blendshapes: dict[str, float] | None = None, t_ns: int = 0, interpolated: bool = False,
                 meta: dict[str, Any] | None = None) -> None:
        self.performer = performer
        self.source = source
        self.t_recv_ns = t_recv_ns
        self.pose = pose
        self.sender_time_s = sender_time_s
        self.seq = seq
        self.blendshapes = blendshapes
        self.t_ns = t_ns or t_recv_ns
        self.interpolated = interpolated
        self.meta = meta if meta is not None else {}

    def __repr__(self) -> str:
        return f"Frame({self.performer!r}, {self.source!r}, t_ns={self.t_ns}, seq={self.seq}, sender_time_s={self.sender_time_s})"


def new_pose() -> np.ndarray:
    """A fresh pose to accumulate partial updates into (the T-pose)."""
    return rest_pose()


assert new_pose().shape == (len(BONES), POSE_WIDTH)

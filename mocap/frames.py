"""Frames: one performer's canonical pose at one instant, as every source produces them."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from machinima.skeleton import BONES, POSE_WIDTH, rest_pose


@dataclass
class Frame:
    """A canonical pose (55, 7) of ``performer`` received from ``source``.

    ``t_recv_ns``: monotonic receive stamp (``time.monotonic_ns``). ``sender_time_s``: the
    sender's own clock when the protocol carries one (VMC ``/VMC/Ext/T``, Xsens time code).
    ``seq``: the sender's sample counter when it has one (Xsens), else None. ``t_ns`` is the
    stamp used for ordering and recording (set by the timing stage; receive stamp until then).
    """

    performer: str
    source: str
    t_recv_ns: int
    pose: np.ndarray
    sender_time_s: float | None = None
    seq: int | None = None
    blendshapes: dict[str, float] | None = None
    t_ns: int = 0
    interpolated: bool = False
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.t_ns:
            self.t_ns = self.t_recv_ns


def new_pose() -> np.ndarray:
    """A fresh pose to accumulate partial updates into (the T-pose)."""
    return rest_pose()


assert new_pose().shape == (len(BONES), POSE_WIDTH)

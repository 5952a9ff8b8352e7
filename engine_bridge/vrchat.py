"""VRChat OSC trackers, sans-I/O: a canonical pose in, OSC packets out.

VRChat (OSC input port 9000) reads ``/tracking/trackers/1..8/position`` and ``.../rotation``
plus ``/tracking/trackers/head/position|rotation`` (a head reference it uses to align the
trackers with the headset). Each message carries three 32-bit floats: a world-space position in
metres or Euler angles in degrees, both in Unity's left-handed Y-up space; the Euler angles are
Unity's (applied Z, then X, then Y), sent as (x, y, z).

Calibration (per engine in the mapping): ``scale`` (avatar height / performer height),
``yaw_deg`` (turns the whole performer about the vertical axis) and ``position`` (metres, Unity
space), applied in that order; per tracker ``offsets`` add a local position and a local
rotation (Unity Euler degrees) in the tracker's own frame.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from machinima import osc, quat
from machinima.skeleton import BONE_INDEX, canonical_to_unity, forward_kinematics

ADDRESS = "/tracking/trackers/{slot}/{what}"


def unity_euler_to_quat(euler_deg: np.ndarray) -> np.ndarray:
    """Unity ``Quaternion.Euler(x, y, z)``: R = Ry * Rx * Rz."""
    e = np.asarray(euler_deg, dtype=np.float64)
    return quat.from_euler(np.stack([e[..., 1], e[..., 0], e[..., 2]], axis=-1), "YXZ")


def quat_to_unity_euler(q: np.ndarray) -> np.ndarray:
    """Inverse of ``unity_euler_to_quat``: (x, y, z) degrees."""
    yxz = quat.to_euler(np.asarray(q, dtype=np.float64), "YXZ")
    return np.stack([yxz[..., 1], yxz[..., 0], yxz[..., 2]], axis=-1)


class TrackerEncoder:
    """Turns canonical local poses into the OSC messages of VRChat trackers.

    ``trackers``: slot ("1".."8", "head") -> canonical bone name (validated by the mapping).
    """

    def __init__(self, trackers: dict[str, str], *, calibration: dict[str, Any] | None = None, offsets: dict[str, dict[str, list[float]]] | None = None) -> None:
        self.slots = list(trackers)
        self.bones = np.array([BONE_INDEX[trackers[s]] for s in self.slots], dtype=np.int64)
        cal = calibration or {}
        self.scale = float(cal.get("scale", 1.0))
        self.yaw = quat.from_axis_angle(np.array([0.0, 1.0, 0.0]), np.radians(float(cal.get("yaw_deg", 0.0))))
        self.offset = np.asarray(cal.get("position", [0.0, 0.0, 0.0]), dtype=np.float64)
        offsets = offsets or {}
        self.local_pos = np.array([offsets.get(s, {}).get("position", [0.0, 0.0, 0.0]) for s in self.slots], dtype=np.float64)
        self.local_rot = unity_euler_to_quat(np.array([offsets.get(s, {}).get("rotation_deg", [0.0, 0.0, 0.0]) for s in self.slots], dtype=np.float64))
        self.addresses = [(ADDRESS.format(slot=s, what="position"), ADDRESS.format(slot=s, what="rotation")) for s in self.slots]

    def tracker_values(self, pose: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World positions (T, 3) and Unity Euler angles (T, 3) of the mapped trackers."""
        wpos, wrot = forward_kinematics(pose)
        p, q = canonical_to_unity(wpos[self.bones], wrot[self.bones])
        p = quat.rotate(self.yaw, p * self.scale) + self.offset
        q = quat.multiply(np.broadcast_to(self.yaw, q.shape), q)
        p = p + quat.rotate(q, self.local_pos)
        q = quat.multiply(q, self.local_rot)
        return p, quat_to_unity_euler(q)

    def messages(self, pose: np.ndarray) -> list[bytes]:
        """One OSC message per position and rotation (VRChat reads plain messages)."""
        p, e = self.tracker_values(pose)
        out = []
        for (pa, ra), pv, ev in zip(self.addresses, p.tolist(), e.tolist()):
            out.append(osc.encode_message(pa, [float(v) for v in pv]))
            out.append(osc.encode_message(ra, [float(v) for v in ev]))
        return out

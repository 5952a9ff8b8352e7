"""Single-message VMC senders (one OSC message per datagram) without a new packet per message.

Why: a sender without bundles sends ~58 datagrams a frame (Root/Pos, 55 Bone/Pos, OK, T), so
the per-datagram cost is the whole cost. ``VMCDecoder``'s single-message path already reads
each with one ``struct`` call, but it checks the address, type tags and name padding and
builds a ``VMCPacket`` every time. A sender repeats the same ~58 messages with new numbers:
``SingleMessages`` keeps, per sender, the bytes before the numbers of every message the
decoder accepted (address, tags, name, padding: the message's layout) and the packet it made.
A datagram whose bytes before its numbers are one of those is the same message with new
numbers: only the numbers are read (and checked finite), into the same packet object. Anything
else goes through the decoder as before (and is learned when valid).

The packets returned are reused: the caller hands each to ``VMCAssembler.feed`` (which keeps
nothing of a packet but its shared ``keys``) before asking for the next one.
"""

from __future__ import annotations

import math
import struct

import numpy as np

from .vmc_decode import VMCDecoder, VMCPacket
from .vmc import FLIP7

__all__ = ["SingleMessages"]

_UNPACK7 = struct.Struct(">7f").unpack_from
_UNPACK1 = struct.Struct(">f").unpack_from
_BONE, _ROOT, _TIME, _BLEND = 0, 1, 2, 3


class SingleMessages:
    """Per sender: ``packet(data, n)`` -> the ``VMCPacket`` the decoder would give for a single
    message (None: not a single message the decoder accepts; the caller then calls
    ``decoder.feed`` to have it counted). Counts ``decoder.packets`` as ``decode`` does. At most
    ``max_layouts`` layouts are kept (root and blendshape names are the sender's to choose)."""

    def __init__(self, decoder: VMCDecoder, *, max_layouts: int = 1024) -> None:
        self.decoder = decoder
        self.max_layouts = max_layouts
        self._seven: dict[bytes, tuple[VMCPacket, int]] = {}  # Bone/Pos, Root/Pos: 7 floats last
        self._one: dict[bytes, tuple[VMCPacket, int, str | None]] = {}  # T, Blend/Val: 1 float last

    def packet(self, data: bytes, n: int) -> VMCPacket | None:
        dec = self.decoder
        if n >= 32:
            ent = self._seven.get(data[: n - 28])
            if ent is not None:
                v = _UNPACK7(data, n - 28)
                if not math.isfinite(v[0] + v[1] + v[2] + v[3] + v[4] + v[5] + v[6]):
                    return None
                pkt, kind = ent
                if kind == _BONE:
                    pkt.one = (pkt.one[0], (-v[0], v[1], v[2], v[3], -v[4], -v[5], v[6]))  # type: ignore[index]
                else:
                    pkt.root = np.array(v, dtype=np.float32) * FLIP7
                dec.packets += 1
                dec.fast_hits += 1
                return pkt
        if n >= 8:
            one = self._one.get(data[: n - 4])
            if one is not None:
                (x,) = _UNPACK1(data, n - 4)
                if not math.isfinite(x):
                    return None
                pkt, kind, name = one
                if kind == _TIME:
                    pkt.time_s = x
                else:
                    pkt.blendshapes = {name: x}
                    dec._pending_blend[name] = x  # type: ignore[index]
                dec.packets += 1
                dec.fast_hits += 1
                return pkt
        if not n or n & 3 or data[0] != 47 or not dec.fast or n > dec.max_packet_bytes:
            return None
        pkt = dec._single(data, n)
        if pkt is None:
            return None
        dec.packets += 1
        if pkt.blendshapes:
            dec._pending_blend.update(pkt.blendshapes)
        if len(self._seven) + len(self._one) < self.max_layouts:
            if pkt.one is not None:
                self._seven[data[: n - 28]] = (pkt, _BONE)
            elif pkt.root is not None:
                self._seven[data[: n - 28]] = (pkt, _ROOT)
            elif pkt.time_s is not None:
                self._one[data[: n - 4]] = (pkt, _TIME, None)
            elif pkt.blendshapes:
                self._one[data[: n - 4]] = (pkt, _BLEND, next(iter(pkt.blendshapes)))
        return pkt

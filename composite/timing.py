"""Plate time against take time: offset or timecode, and framerate resampling.

Take frame ``f`` (frame 0 = the take's timecode in) is at ``t = f / take_fps``. The plate frame
shown then is ``offset + t * plate_fps`` (``offset`` in plate frames: positive skips the head
of the plate), or with timecodes ``(tc_in_take + t - tc_in_plate) * plate_fps``. ``nearest``
picks the closest plate frame; ``blend`` mixes the two around it (for slow-motion plates).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

from machinima.timecode import Timecode, parse_rate

from .errors import PlateError, SettingsError

RESAMPLE = ("nearest", "blend")


@dataclass(frozen=True)
class TimeMap:
    take_fps: Fraction
    plate_fps: Fraction
    offset: Fraction = Fraction(0)  # plate frames at take frame 0
    resample: str = "nearest"

    @classmethod
    def build(cls, take_fps, plate_fps, *, offset: float = 0, take_timecode: str | None = None,
              plate_timecode: str | None = None, resample: str = "nearest") -> "TimeMap":
        tf, pf = parse_rate(take_fps), parse_rate(plate_fps)
        if resample not in RESAMPLE:
            raise SettingsError(f"resample must be one of {RESAMPLE}, not {resample!r}")
        off = Fraction(offset).limit_denominator(1000)
        if plate_timecode:
            if not take_timecode:
                raise SettingsError("aligning by plate timecode needs the take's timecode in")
            t_take = Fraction(Timecode.parse(take_timecode, tf).frames) / tf
            t_plate = Fraction(Timecode.parse(plate_timecode, pf).frames) / pf
            off += (t_take - t_plate) * pf
        return cls(tf, pf, off, resample)

    def position(self, take_frame: int) -> Fraction:
        """Fractional plate frame at a take frame."""
        return self.offset + Fraction(take_frame) / self.take_fps * self.plate_fps

    def frames_for(self, take_frame: int) -> list[tuple[int, float]]:
        """[(plate frame, weight)] to show at a take frame."""
        p = self.position(take_frame)
        if self.resample == "nearest" or p.denominator == 1:
            return [(int(math.floor(p + Fraction(1, 2))), 1.0)]
        lo = math.floor(p)
        w = float(p - lo)
        return [(lo, 1.0 - w), (lo + 1, w)]

    def check(self, take_frames: list[int], plate_length: int) -> None:
        """Fail clearly when the plate does not cover every take frame asked for."""
        if not take_frames:
            return
        need = [pf for f in take_frames for pf, w in self.frames_for(f) if w > 0]
        lo, hi = min(need), max(need)
        if lo < 0:
            raise PlateError(f"the plate starts after the take: take frame {take_frames[0]} needs plate frame {lo}",
                             hint="use a smaller --offset or pick later take frames with --frames")
        if hi >= plate_length:
            first_bad = next(f for f in take_frames if max(pf for pf, w in self.frames_for(f) if w > 0) >= plate_length)
            raise PlateError(f"the plate is shorter than the take: it has {plate_length} frames, take frames {first_bad}..{take_frames[-1]} need plate frames up to {hi}",
                             hint=f"composite fewer frames (--frames {take_frames[0]}:{first_bad}) or use a longer plate / another --offset")

    def to_doc(self) -> dict:
        return {"take_fps": str(self.take_fps), "plate_fps": str(self.plate_fps), "offset": str(self.offset), "resample": self.resample}

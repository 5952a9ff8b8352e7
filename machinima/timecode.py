"""SMPTE timecode at the rates film and games use, to and from frame counts and nanoseconds.

Rates are exact rationals (29.97 is 30000/1001). Drop-frame counting applies to 29.97 and 59.94
and is written with ';' before the frames field, as editors expect.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from fractions import Fraction

from .errors import TimecodeError

NS_PER_S = 1_000_000_000

_NAMED_RATES: dict[str, Fraction] = {
    "23.976": Fraction(24000, 1001),
    "23.98": Fraction(24000, 1001),
    "24": Fraction(24),
    "25": Fraction(25),
    "29.97": Fraction(30000, 1001),
    "30": Fraction(30),
    "48": Fraction(48),
    "50": Fraction(50),
    "59.94": Fraction(60000, 1001),
    "60": Fraction(60),
    "120": Fraction(120),
}


def parse_rate(rate: float | str | Fraction | int) -> Fraction:
    """A frame rate as an exact fraction ('29.97' and 29.97 both mean 30000/1001)."""
    if isinstance(rate, Fraction):
        value = rate
    else:
        key = str(rate).strip()
        if key.endswith(".0"):
            key = key[:-2]
        if key in _NAMED_RATES:
            return _NAMED_RATES[key]
        try:
            value = Fraction(key)
        except (ValueError, ZeroDivisionError):
            raise TimecodeError(f"frame rate {rate!r} is not a number") from None
        for named in _NAMED_RATES.values():  # 23.976023... -> 24000/1001
            if abs(float(value) - float(named)) < 1e-3:
                return named
    if value <= 0 or value > 1000:
        raise TimecodeError(f"frame rate {rate!r} is out of range (0, 1000]")
    return value


def is_drop_frame_rate(rate: Fraction) -> bool:
    return rate in (Fraction(30000, 1001), Fraction(60000, 1001))


_TC = re.compile(r"^(\d{1,2}):(\d{2}):(\d{2})([:;.,])(\d{2,3})$")


@dataclass(frozen=True)
class Timecode:
    """A frame count at a rate, shown as SMPTE ``HH:MM:SS:FF`` (``;`` for drop frame)."""

    frames: int
    rate: Fraction
    drop_frame: bool = False

    @classmethod
    def at(cls, rate: float | str | Fraction, frames: int = 0, *, drop_frame: bool | None = None) -> "Timecode":
        r = parse_rate(rate)
        df = is_drop_frame_rate(r) if drop_frame is None else drop_frame
        if df and not is_drop_frame_rate(r):
            raise TimecodeError(f"drop-frame timecode only exists at 29.97 and 59.94, not {float(r):g}")
        return cls(int(frames), r, df)

    @property
    def nominal_fps(self) -> int:
        """Frames per timecode second: 30 for 29.97, 24 for 23.976."""
        return round(self.rate)

    @classmethod
    def parse(cls, text: str, rate: float | str | Fraction) -> "Timecode":
        m = _TC.match(text.strip())
        if not m:
            raise TimecodeError(f"timecode {text!r} is not HH:MM:SS:FF")
        hh, mm, ss, sep, ff = m.groups()
        r = parse_rate(rate)
        df = sep in ";," and is_drop_frame_rate(r)
        if sep in ";," and not is_drop_frame_rate(r):
            raise TimecodeError(f"drop-frame timecode {text!r} at {float(r):g} fps: only 29.97 and 59.94 drop frames")
        nominal = round(r)
        h, m_, s, f = int(hh), int(mm), int(ss), int(ff)
        if m_ > 59 or s > 59 or f >= nominal:
            raise TimecodeError(f"timecode {text!r} has a field out of range at {float(r):g} fps")
        frames = ((h * 60 + m_) * 60 + s) * nominal + f
        if df:
            drop = 2 * (nominal // 30)
            total_minutes = h * 60 + m_
            if s == 0 and f < drop and m_ % 10 != 0:
                raise TimecodeError(f"timecode {text!r} does not exist in drop-frame counting")
            frames -= drop * (total_minutes - total_minutes // 10)
        return cls(frames, r, df)

    def __str__(self) -> str:
        nominal = self.nominal_fps
        frames = self.frames % (nominal * 3600 * 24) if not self.drop_frame else self.frames
        if self.drop_frame:
            drop = 2 * (nominal // 30)
            per_10min = nominal * 600 - drop * 9
            per_min = nominal * 60 - drop
            d, m = divmod(frames, per_10min)
            if m > drop:
                frames += drop * 9 * d + drop * ((m - drop) // per_min)
            else:
                frames += drop * 9 * d
        ff = frames % nominal
        s = frames // nominal
        sep = ";" if self.drop_frame else ":"
        return f"{(s // 3600) % 24:02d}:{(s // 60) % 60:02d}:{s % 60:02d}{sep}{ff:02d}"

    # --- time ------------------------------------------------------------------------------
    def to_seconds(self) -> float:
        return float(self.frames / self.rate)

    def to_ns(self) -> int:
        return int(self.frames * NS_PER_S / self.rate)

    @classmethod
    def from_ns(cls, ns: int, rate: float | str | Fraction, *, drop_frame: bool | None = None) -> "Timecode":
        """The frame that contains time ``ns`` (floor), so a stamp never maps to a later frame."""
        r = parse_rate(rate)
        return cls.at(r, (int(ns) * r.numerator) // (NS_PER_S * r.denominator), drop_frame=drop_frame)

    def __add__(self, frames: int) -> "Timecode":
        return Timecode(self.frames + int(frames), self.rate, self.drop_frame)

    def __sub__(self, other: "Timecode | int") -> "Timecode | int":
        if isinstance(other, Timecode):
            return self.frames - other.frames
        return Timecode(self.frames - int(other), self.rate, self.drop_frame)


def frames_from_ns(ns, rate: float | str | Fraction):
    """Vectorised floor(ns * rate) for numpy int64 arrays (or ints)."""
    r = parse_rate(rate)
    return (ns * r.numerator) // (NS_PER_S * r.denominator)


def ns_from_frames(frames, rate: float | str | Fraction):
    """Vectorised first nanosecond of each frame (ceil(frame / rate) in ns), the inverse of
    ``frames_from_ns``: ``frames_from_ns(ns_from_frames(f)) == f`` exactly."""
    r = parse_rate(rate)
    return -((-frames * NS_PER_S * r.denominator) // r.numerator)


def time_of_day(rate: float | str | Fraction, *, wall_ns: int | None = None, mono_ns: int | None = None) -> tuple[Timecode, int]:
    """The local time of day as timecode at ``rate`` (how Unreal's Take Recorder stamps a take
    with the system clock), and the monotonic instant its frame began.

    Recording with ``start_frame = tc.frames`` and ``origin_ns`` = that instant makes every
    stamp's frame, ``start_frame + floor((t - origin_ns) * rate)``, the time-of-day frame it
    was captured in. ``wall_ns`` (``time.time_ns()``) and ``mono_ns`` (``time.monotonic_ns()``)
    are read now when not given; pass both to compute for a known instant.
    """
    r = parse_rate(rate)
    wall = time.time_ns() if wall_ns is None else int(wall_ns)
    mono = time.monotonic_ns() if mono_ns is None else int(mono_ns)
    secs, frac = divmod(wall, NS_PER_S)
    lt = time.localtime(secs)
    tod_ns = ((lt.tm_hour * 60 + lt.tm_min) * 60 + min(lt.tm_sec, 59)) * NS_PER_S + frac
    frames = int(frames_from_ns(tod_ns, r))
    into_frame = tod_ns - int(ns_from_frames(frames, r))
    return Timecode.at(r, frames), mono - into_frame

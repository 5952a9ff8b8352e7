from fractions import Fraction

import pytest
from hypothesis import given, strategies as st

from machinima.errors import TimecodeError
from machinima.timecode import Timecode, frames_from_ns, parse_rate

RATES = ["23.976", "24", "25", "29.97", "30", "48", "50", "59.94", "60"]


@pytest.mark.parametrize("rate", RATES)
@given(fraction=st.floats(min_value=0.0, max_value=1.0, exclude_max=True))
def test_frames_roundtrip_through_text(rate, fraction):
    last = Timecode.at(rate, 0)
    sep = ";" if last.drop_frame else ":"
    frames_per_day = Timecode.parse(f"23:59:59{sep}{last.nominal_fps - 1:02d}", rate).frames + 1
    frames = int(fraction * frames_per_day)
    assert Timecode.parse(str(Timecode.at(rate, frames)), rate).frames == frames


def test_drop_frame_known_values():
    assert str(Timecode.at("29.97", 1800)) == "00:01:00;02"
    assert str(Timecode.at("29.97", 17982)) == "00:10:00;00"
    assert Timecode.parse("01:00:00;00", "29.97").frames == 107892
    assert str(Timecode.at("59.94", 3596)) == "00:00:59;56"
    with pytest.raises(TimecodeError, match="does not exist"):
        Timecode.parse("00:01:00;00", "29.97")


def test_rates_are_exact():
    assert parse_rate("29.97") == Fraction(30000, 1001)
    assert parse_rate(23.976) == Fraction(24000, 1001)
    assert parse_rate("24") == 24
    with pytest.raises(TimecodeError):
        parse_rate("fast")
    with pytest.raises(TimecodeError):
        parse_rate(0)


def test_ns_conversion_floor():
    assert Timecode.from_ns(1_000_000_000, 24).frames == 24
    assert Timecode.from_ns(1_000_000_000 - 1, 24).frames == 23
    assert Timecode.at("24", 48).to_ns() == 2_000_000_000
    assert frames_from_ns(1_001_000_000, "29.97") == 30


@pytest.mark.parametrize("bad", ["1:2:3", "00:00:00:30", "aa:bb:cc:dd", "00:61:00:00"])
def test_bad_timecodes(bad):
    with pytest.raises(TimecodeError):
        Timecode.parse(bad, 30)


def test_drop_separator_at_non_drop_rate_refused():
    with pytest.raises(TimecodeError, match="drop-frame"):
        Timecode.parse("00:00:01;00", 24)


def test_time_of_day_is_the_wall_clock_frame_and_its_start():
    import time as _time

    from machinima.timecode import time_of_day

    # 14:03:12.400 local time, built with the C library's mktime, not with the code under test
    wall_s = _time.mktime((2026, 11, 3, 14, 3, 12, 0, 0, -1))
    wall_ns = int(wall_s) * 1_000_000_000 + 400_000_000
    tc, origin = time_of_day("24", wall_ns=wall_ns, mono_ns=10**12)
    assert str(tc) == "14:03:12:09"  # 0.400 s is inside frame 9 (9/24 = 0.375 s)
    assert origin == 10**12 - 25_000_000  # frame 9 began 25 ms before that instant
    assert str(time_of_day("25", wall_ns=wall_ns, mono_ns=0)[0]) == "14:03:12:10"
    assert str(time_of_day("29.97", wall_ns=wall_ns, mono_ns=0)[0]).startswith("14:03:")  # drop frame tracks the clock

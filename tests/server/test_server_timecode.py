"""Stage takes carry the stage clock's time of day as timecode (as Unreal's Take Recorder does),
or the timecode the director gives; the take's frames follow from it."""

from __future__ import annotations

import time

from server_helpers import client, perform, run, stage
from machinima.take import Take
from machinima.timecode import Timecode


def _tod_frames(wall_s: float, fps: int) -> int:
    lt = time.localtime(wall_s)
    return int((((lt.tm_hour * 60 + lt.tm_min) * 60 + lt.tm_sec) + wall_s % 1) * fps)


def test_takes_start_at_the_time_of_day_or_the_directors_timecode(root):
    async def main():
        async with stage(root, fps="25") as srv:
            d = await client(srv, "director", "dana")
            perf = await client(srv, "performer", "alice")
            await perform(perf, 1)
            before = time.time()
            res = await d.record()
            after = time.time()
            await perform(perf, 10, 50)
            await d.stop()
            given = await d.record(timecode="01:00:00:00")
            await perform(perf, 10, 50)
            await d.stop()
            await d.close(), await perf.close()
            return res, given, before, after

    res, given, before, after = run(main())
    tc_in = Timecode.parse(res["timecode_in"], 25).frames
    lo, hi = _tod_frames(before, 25), _tod_frames(after, 25) + 1
    assert lo <= tc_in <= hi or hi < lo, (res["timecode_in"], time.ctime(before))  # (hi < lo: across midnight)
    take = Take.open(root / res["take"])
    assert take.manifest.timecode_in == res["timecode_in"] != "00:00:00:00"
    frames = take.store.read_mocap("alice").frames
    assert tc_in <= frames[0] <= tc_in + 25 and frames[-1] < tc_in + 3 * 25  # its frames are time-of-day frames
    assert given["timecode_in"] == "01:00:00:00"
    take2 = Take.open(root / given["take"])
    assert 90_000 <= take2.store.read_mocap("alice").frames[0] < 90_000 + 3 * 25

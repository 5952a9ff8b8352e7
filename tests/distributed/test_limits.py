"""``pin_threads``: a task declaring N CPUs gets OpenCV, torch and the frame-I/O pools capped at N."""

from __future__ import annotations

import cv2

from machinima import frameio
from machinima.distributed.limits import pin_threads, unpin


def test_pin_threads_caps_opencv_and_the_frame_io_pools():
    before_cv, before_io = cv2.getNumThreads(), frameio.io_workers()
    try:
        assert pin_threads(1) == 1
        assert cv2.getNumThreads() == 1 and frameio.io_workers() == 1
        wb = frameio.WriteBehind(depth=8)
        try:
            assert wb._pool._max_workers == 1  # a write-behind pool made after pinning: one thread
        finally:
            wb.close()
        assert pin_threads(0.5) == 1  # a fractional share still gets one thread
    finally:
        unpin()
        cv2.setNumThreads(before_cv)
    assert frameio.io_workers() == before_io

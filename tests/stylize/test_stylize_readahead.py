"""Stylize decodes its source frames ahead in the loop's own reading order (keyframe chunks
first, then the in-betweens), on the I/O threads, each frame once, skipping finished frames."""

from __future__ import annotations

import threading

from stylize.engines import ClassicalEngine
from stylize.look import Look
from stylize.runner import run_source
from stylize.sources import ArraySource
from stylize_helpers import translating


class CountingSource(ArraySource):
    def __init__(self, frames):
        super().__init__(frames)
        self.reads: list[tuple[int, str]] = []
        self._lock = threading.Lock()

    def image(self, frame):
        with self._lock:
            self.reads.append((frame, threading.current_thread().name))
        return super().image(frame)


def _look(every=4):
    return Look.from_doc({"name": "ra", "engine": "classical", "classical": {"sigma_s": 20.0},
                          "cadence": {"mode": "propagate", "every": every, "color_match": False, "detect_cuts": False}})


def test_reads_come_from_the_read_ahead_in_keyframe_order_and_once(tmp_path):
    src = CountingSource(translating(13, 32, 32))
    look = _look()
    res = run_source(src, look, ClassicalEngine(look), tmp_path / "a", progress=False, video=False)
    assert len(res.report.done) == 13
    frames = [f for f, _ in src.reads]
    assert sorted(frames) == list(range(13))  # each source frame decoded once
    assert all(t.startswith("prefetch") for _, t in src.reads[1:])  # on the I/O threads (the first is asked at once)

    from stylize.pipeline import StylizePipeline

    pipe = StylizePipeline(look, ClassicalEngine(look), ArraySource(translating(13, 32, 32)))
    order = pipe.read_order()
    assert pipe.plan().keyframes[:2] == [0, 4]
    assert sorted(order) == list(range(13)) and order[:5] == [0, 4, 1, 2, 3]  # a keyframe before the in-betweens it ends
    assert pipe.read_order(done=lambda f: f < 6) == [f for f in order if f >= 6]


def test_a_resumed_run_does_not_read_finished_frames_ahead(tmp_path):
    look = _look()
    first = CountingSource(translating(9, 32, 32))
    run_source(first, look, ClassicalEngine(look), tmp_path / "a", progress=False, video=False)
    again = CountingSource(translating(9, 32, 32))
    res = run_source(again, look, ClassicalEngine(look), tmp_path / "a", progress=False, video=False)
    assert res.report.done == [] and again.reads == []

"""machinima.takewriter: commits by the clock (not by the next sample), blendshape channels,
a full disk (SQLite's page limit) as a named error that breaks the writer, abort releasing the
take, and the commit timer thread."""

from __future__ import annotations

import time

import numpy as np
import pytest

from machinima.errors import DiskFullError
from machinima.skeleton import rest_pose
from machinima.take import Take
from machinima.takewriter import CommitTimer, TakeWriter


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def _take(tmp_path):
    return Take.create(tmp_path / "takes", production="p", scene="1", shot="a", fps=60)


def _on_disk(take, stream: str) -> int:
    return len(Take.open(take.path).store.read(stream)) if (take.path / "streams.sqlite").exists() else 0


def test_commits_on_the_clock_without_more_samples(tmp_path):
    take, clock = _take(tmp_path), Clock()
    w = TakeWriter(take, commit_interval=0.08, clock=clock)
    for i in range(3):
        w.pose("ana", take.store.origin_ns + i * 16_666_667, rest_pose())
    clock.t += 0.05
    assert not w.tick() and w.acknowledged == 0 and _on_disk(take, "mocap/ana") == 0
    clock.t += 0.04  # nothing new arrived: the interval alone commits
    assert w.tick() and w.acknowledged == 3 and _on_disk(take, "mocap/ana") == 3
    w.close()
    assert Take.open(take.path).manifest.status == "complete"


def test_blend_channels_fixed_by_the_first_frame(tmp_path):
    take = _take(tmp_path)
    w = TakeWriter(take)
    t0 = take.store.origin_ns
    w.blend("ana", t0, {"Blink_L": 0.5, "A": 0.25})
    w.blend("ana", t0 + 1, {"A": 0.75})  # Blink_L keeps its last value
    w.blend("ana", t0 + 2, {"A": 1.0, "Joy": 0.3})  # Joy came too late to be a channel
    w.close()
    b = Take.open(take.path).store.read("blend/ana")
    assert b.meta["channels"] == ["A", "Blink_L"] and b.meta["performer"] == "ana"
    np.testing.assert_allclose(b.values, [[0.25, 0.5], [0.75, 0.5], [1.0, 0.5]])
    assert w.counts["blend_unknown"] == 1


def test_full_disk_breaks_the_writer_and_abort_releases_the_take(tmp_path):
    take = _take(tmp_path)
    w = TakeWriter(take)
    t0 = take.store.origin_ns
    w.pose("ana", t0, rest_pose())
    w.commit()
    db = take.store._db
    db.execute(f"PRAGMA max_page_count={db.execute('PRAGMA page_count').fetchone()[0]}")  # the disk is full now
    rng = np.random.default_rng(0)
    for i in range(200):
        w.pose("ana", t0 + i + 1, rng.normal(size=(55, 7)).astype(np.float32))  # noise does not compress
    with pytest.raises(DiskFullError):
        w.commit()
    assert w.lost == 200 and w.error is not None
    with pytest.raises(DiskFullError):  # broken: every later call says so, without touching the disk
        w.pose("ana", t0 + 999, rest_pose())
    with pytest.raises(DiskFullError):
        w.marker(t0 + 999, "late")
    db.execute("PRAGMA max_page_count=1073741823")  # space again, so abort can write the manifest
    summary = w.abort(w.error)
    assert summary["status"] == "failed"
    again = Take.open(take.path, writable=True)  # the lock is free: `takes recover` could run
    assert again.manifest.status == "failed" and any("disk full" in n for n in again.manifest.notes)
    assert len(again.store.read_mocap("ana")) == 1  # what was committed stays
    again.close()


def test_commit_timer_thread(tmp_path):
    take = _take(tmp_path)
    w = TakeWriter(take, commit_interval=0.05)
    timer = CommitTimer(w).start()
    try:
        w.camera("cam", take.store.origin_ns, np.array([0, 1.6, 0, 0, 0, 0, 1, 35, 36, 24, 0, 0], np.float32))
        w.event(take.store.origin_ns, {"name": "cue"})
        end = time.monotonic() + 5
        while w.acknowledged < 1 and time.monotonic() < end:
            time.sleep(0.01)
        assert w.acknowledged == 1 and _on_disk(take, "camera/cam") == 1
    finally:
        timer.stop()
    w.close()
    assert [e["payload"]["name"] for e in Take.open(take.path).store.events(kind="event")] == ["cue"]

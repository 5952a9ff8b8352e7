"""Hub frame I/O: QOI and EXR written by us and read back by others' decoders (the reference
qoi.h, OpenEXR, OpenImageIO), bounded read-ahead/write-behind queues, per-process temps swept
only when their writer is dead, and a step killed with frames queued for writing that resumes
with every finished frame intact."""

import json
import os
import signal
import struct
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from machinima.frameio import Prefetch, ReadAhead, WriteBehind, in_flight, summary_line
from machinima.fsutil import frame_temp_name, sweep_stale_temps
from machinima.imageseq import ImageSeqError, list_frames, read_image, write_image

ROOT = Path(__file__).resolve().parents[2]


def _picture(h=72, w=96, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([x * 255 // w, y * 255 // h, (x + y) % 256], -1).astype(np.int16) + rng.integers(-9, 10, (h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def test_qoi_round_trip_against_the_reference_codec_and_the_spec(tmp_path):
    qoi = pytest.importorskip("qoi")
    img = _picture()
    p = write_image(tmp_path / "000001.qoi", img)
    raw = p.read_bytes()
    # the header as the QOI specification lays it out: magic, big-endian width/height, channels, colourspace
    magic, w, h, channels, cs = struct.unpack(">4sIIBB", raw[:14])
    assert (magic, w, h, channels) == (b"qoif", 96, 72, 3) and raw[-8:] == b"\0" * 7 + b"\1"
    assert np.array_equal(qoi.decode(raw), img)  # the reference decoder, not ours
    rgba = np.dstack([img, np.arange(72 * 96, dtype=np.uint32).reshape(72, 96).astype(np.uint8)])
    qoi.write(str(tmp_path / "000002.qoi"), np.ascontiguousarray(rgba))  # the reference encoder, read by us
    assert np.array_equal(read_image(tmp_path / "000002.qoi"), rgba)
    assert sorted(list_frames(tmp_path)) == [1, 2]
    with pytest.raises(ImageSeqError, match="QOI holds 8-bit RGB"):
        write_image(tmp_path / "000003.qoi", np.zeros((8, 8), np.uint8))
    (tmp_path / "000004.qoi").write_bytes(raw[:40])
    with pytest.raises(ImageSeqError, match="not a readable QOI"):
        read_image(tmp_path / "000004.qoi")
    assert not [q for q in tmp_path.iterdir() if q.name.startswith(".")]  # no temps left behind


def test_exr_half_piz_read_back_by_openexr_and_openimageio(tmp_path):
    OpenEXR = pytest.importorskip("OpenEXR")
    lin = np.random.default_rng(1).uniform(0, 4, (40, 50, 3)).astype(np.float32)
    p = write_image(tmp_path / "000000.exr", lin, half=True)
    f = OpenEXR.File(str(p))
    assert f.header()["compression"] == OpenEXR.PIZ_COMPRESSION
    px = next(iter(f.channels().values())).pixels
    assert px.dtype == np.float16 and np.array_equal(px.astype(np.float32), lin.astype(np.float16).astype(np.float32))
    depth = np.linspace(0.5, 900.0, 40 * 50, dtype=np.float32).reshape(40, 50)  # data: full float, exact
    write_image(tmp_path / "000001.exr", depth)
    assert np.array_equal(read_image(tmp_path / "000001.exr"), depth)
    oiio = pytest.importorskip("OpenImageIO")
    inp = oiio.ImageInput.open(str(p))
    spec = inp.spec()
    assert (spec.format == oiio.HALF, spec.nchannels, spec.getattribute("compression")) == (True, 3, "piz")
    inp.close()


def test_dpx_and_tiff_read_through_openimageio(tmp_path):
    oiio = pytest.importorskip("OpenImageIO")
    img = _picture(32, 40)
    for ext in ("dpx", "tif"):
        out = oiio.ImageOutput.create(f"x.{ext}")
        assert out.open(str(tmp_path / f"000007.{ext}"), oiio.ImageSpec(40, 32, 3, oiio.UINT8))
        out.write_image(img)
        out.close()
        back = read_image(tmp_path / f"000007.{ext}")
        assert back.shape == (32, 40, 3) and np.array_equal(back.astype(np.uint8), img)


def test_read_ahead_is_in_order_and_bounded():
    live, peak, lock = [0], [0], threading.Lock()

    def load(i):
        with lock:
            live[0] += 1
            peak[0] = max(peak[0], live[0])
        time.sleep(0.002)
        return i * i

    got = []
    with ReadAhead(range(40), load, depth=3) as ra:
        for i, v in ra:
            got.append((i, v))
            with lock:
                live[0] -= 1
    assert got == [(i, i * i) for i in range(40)] and peak[0] <= 3

    def bad(i):
        if i == 2:
            raise ValueError("frame 2 is corrupt")
        return i

    seen = []
    with pytest.raises(ValueError, match="corrupt"):
        for i, _ in ReadAhead(range(5), bad, depth=4):
            seen.append(i)
    assert seen == [0, 1]  # the frames before the bad one are still handed over


def test_prefetch_warm_loads_the_first_keys_before_any_get_and_stays_bounded():
    started: list[int] = []
    gate = threading.Event()

    def load(k):
        started.append(k)
        gate.wait(5)
        return k * 10

    pf = Prefetch(list(range(20)), load, depth=3, workers=4)
    pf.warm()
    t0 = time.monotonic()
    while len(started) < 4 and time.monotonic() - t0 < 5:
        time.sleep(0.005)
    time.sleep(0.05)
    assert sorted(started) == [0, 1, 2, 3]  # depth + 1 keys, no more, before anyone asked
    gate.set()
    assert [pf.get(k) for k in range(20)] == [k * 10 for k in range(20)]
    assert sorted(started) == list(range(20))  # each key loaded once: the warm loads were used, not redone
    pf.close()


def test_write_behind_holds_at_most_depth_frames_and_reports_errors():
    gate = threading.Event()
    wb = WriteBehind(depth=3, workers=2)
    submitted = []

    def producer():
        for i in range(8):
            wb.submit(gate.wait)
            submitted.append(i)

    t = threading.Thread(target=producer)
    t.start()
    time.sleep(0.3)
    assert len(submitted) == 3 and wb.peak == 3  # the fourth frame waits: memory stays bounded
    gate.set()
    t.join(5)
    wb.drain()
    assert len(submitted) == 8 and wb.peak <= 3
    wb.submit(lambda: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        wb.drain()
    wb.close()
    assert in_flight(1920 * 1080 * 3) == 16 and in_flight(8 << 30) == 2
    assert "12.0 fps disk to disk" in summary_line("composite", 24, 2.0, 0.5) and "48.0 fps" in summary_line("c", 24, 2.0, 0.5)


def test_stale_temps_of_dead_writers_go_live_writers_temps_stay(tmp_path):
    target = tmp_path / "rgb" / "000001.qoi"
    target.parent.mkdir()
    mine = frame_temp_name(target)
    mine.write_bytes(b"half")
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    try:
        live_tmp = Path(str(mine).replace(f"-{os.getpid()}-", f"-{live.pid}-"))
        dead_tmp = Path(str(mine).replace(f"-{os.getpid()}-", f"-{dead.pid}-"))
        other_host = target.with_name(".000001.tmp-otherhost-1-abcd.qoi")
        old_other = target.with_name(".000002.tmp-otherhost-1-abcd.qoi")
        for p in (live_tmp, dead_tmp, other_host, old_other):
            p.write_bytes(b"half")
        os.utime(old_other, (time.time() - 7200, time.time() - 7200))
        gone = sweep_stale_temps(tmp_path)
        assert sorted(gone) == sorted([dead_tmp, old_other])
        assert mine.exists() and live_tmp.exists() and other_host.exists()  # a Ray chunk's temps are not swept
    finally:
        live.kill()
        live.wait()


KILLED_STEP = textwrap.dedent("""
    import os, sys, time
    import numpy as np
    import machinima.poststep as ps

    real = ps._write_bytes
    def slow_write(path, data):  # half the bytes in the temp, a pause, then the rest: a kill lands mid-file
        from machinima.fsutil import frame_temp_name
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = frame_temp_name(path)
        with open(tmp, "wb") as fh:
            fh.write(data[: len(data) // 2]); fh.flush()
            time.sleep(0.25)
            fh.write(data[len(data) // 2:])
        os.replace(tmp, path)
    ps._write_bytes = slow_write

    def frame(f):
        rng = np.random.default_rng(f)
        return rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)

    step = ps.PostStep(sys.argv[1], "test-io", {"v": 1})
    step.run(range(int(sys.argv[2])), lambda fr: [{"rgb": frame(f), "mask": (frame(f)[..., 0] > 99).astype(np.uint8) * 255}
                                                  for f in fr], progress=False)
""")


def _frame(f):
    rng = np.random.default_rng(f)
    return rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)


def test_killed_with_frames_queued_resumes_with_finished_frames_intact(tmp_path):
    script = tmp_path / "step.py"
    script.write_text(KILLED_STEP)
    out = tmp_path / "take" / "post" / "io"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, str(script), str(out), "40"], env=env, cwd=tmp_path)
    ledger = out / "ledger.jsonl"
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None and (not ledger.exists() or len(ledger.read_text().splitlines()) < 3):
        time.sleep(0.02)
    time.sleep(0.1)  # mid-way through a write
    assert proc.poll() is None, "the step ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    recs = [json.loads(line) for line in ledger.read_text().splitlines()]
    done = sorted(r["frame"] for r in recs)
    assert 3 <= len(done) < 40, done  # killed with frames still queued
    temps = [p for p in out.rglob(".*.tmp-*")]
    assert temps  # the kill left half-written temporaries
    for r in recs:  # every frame the ledger calls done is whole
        for rel in r["outputs"]:
            img = read_image(out / rel)
            want = _frame(r["frame"]) if rel.startswith("rgb") else (_frame(r["frame"])[..., 0] > 99).astype(np.uint8) * 255
            assert np.array_equal(img, want), rel  # 48x64: too small for a watermark, so exact
    from machinima.poststep import PostStep

    step = PostStep(out, "test-io", {"v": 1})  # the writer is dead: its temps are swept
    assert not list(out.rglob(".*.tmp-*"))
    rep = step.run(range(40), lambda fr: [{"rgb": _frame(f), "mask": (_frame(f)[..., 0] > 99).astype(np.uint8) * 255} for f in fr],
                   progress=False)
    assert rep.skipped == done and sorted(rep.done) == [f for f in range(40) if f not in done]
    for f in range(40):
        assert np.array_equal(read_image(step.output_path("rgb", f)), _frame(f))
    doc = json.loads((out / "params.json").read_text())
    assert doc["frames"]["rgb8"] == step.intermediate and doc["last_run"]["kernel_seconds"] >= 0
    assert "fps disk to disk" in rep.summary("test-io")


def test_pool_sizes_follow_the_cores_this_process_may_use(monkeypatch):
    import os

    from machinima import frameio

    monkeypatch.setattr(os, "cpu_count", lambda: 64)  # a big host...
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)  # ...of which 2 cores are ours
    assert frameio.usable_cores() == 2 and frameio.io_workers() == 2
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    assert frameio.io_workers() == 4  # the kernel keeps the rest
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    assert frameio.io_workers() == 2  # one decodes while the kernel computes


def test_blas_threads_sets_and_restores_openblas_threads():
    import numpy  # noqa: F401 - loads the OpenBLAS this test controls

    from machinima.frameio import _openblas_controls, blas_threads

    controls = _openblas_controls()
    if not controls:
        pytest.skip("no OpenBLAS loaded in this process")
    get, put = controls[0]
    before = int(get())
    put(2)
    try:
        with blas_threads(1):
            assert int(get()) == 1
            assert np.allclose(np.ones((50, 50)) @ np.ones(50), 50.0)  # products still right on one thread
        assert int(get()) == 2  # restored
    finally:
        put(before)

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

from machinima import quat
from machinima.errors import DiskFullError, StoreError
from machinima.skeleton import rest_pose
from machinima.store import StreamStore, decode_chunk, encode_chunk
from machinima.tracks import frame_times, resample_poses


def _poses(n, seed=0):
    rng = np.random.default_rng(seed)
    p = np.broadcast_to(rest_pose(), (n, 55, 7)).copy()
    p[:, :, 3:7] = quat.normalize(rng.normal(size=(n, 55, 4)))
    p[:, 0, :3] += rng.normal(size=(n, 3))
    return p.astype(np.float32)


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(np.float32, hnp.array_shapes(min_dims=2, max_dims=3, min_side=1, max_side=12)))
def test_codec_roundtrip_is_bit_exact(arr):
    blob = encode_chunk(arr)
    back = decode_chunk(blob, arr.shape[0], np.float32, arr.shape[1:])
    assert back.tobytes() == arr.tobytes()  # NaN payloads too


def test_append_read_time_range(tmp_path):
    st_ = StreamStore(tmp_path / "s.sqlite", writable=True, fps=24, origin_ns=0)
    st_.add_mocap_stream("ada")
    poses = _poses(240)
    t = (np.arange(240) * 1e9 / 120).astype(np.int64)
    for i in range(0, 240, 17):  # uneven batches
        st_.append("mocap/ada", t[i:i + 17], poses[i:i + 17])
    st_.flush()
    st_.close()
    ro = StreamStore(tmp_path / "s.sqlite")
    tr = ro.read_mocap("ada")
    assert np.array_equal(tr.values, poses) and np.array_equal(tr.t_ns, t)
    part = ro.read_mocap("ada", t[50], t[99])
    assert len(part) == 50 and np.array_equal(part.values, poses[50:100])
    assert tr.frames[120] == 24  # 1 s at 24 fps
    assert ro.performers() == ["ada"]


def test_events_markers_and_kinds(tmp_path):
    s = StreamStore(tmp_path / "s.sqlite", writable=True, fps=30, origin_ns=0)
    s.append_event(5, "event", {"name": "door", "open": True})
    s.append_event(1_000_000_000, "marker", {"name": "action"}, stream="markers")
    s.flush()
    evs = s.events()
    assert [e["kind"] for e in evs] == ["event", "marker"]
    assert evs[1]["frame"] == 30
    with pytest.raises(StoreError, match="unknown event kind"):
        s.append_event(1, "scream", {})


def test_wrong_shapes_and_unknown_streams(tmp_path):
    s = StreamStore(tmp_path / "s.sqlite", writable=True, fps=24)
    s.add_mocap_stream("ada")
    with pytest.raises(StoreError, match="shape"):
        s.append("mocap/ada", [1, 2], np.zeros((2, 54, 7)))
    with pytest.raises(StoreError, match="no stream"):
        s.append("mocap/bob", [1], np.zeros((55, 7)))
    with pytest.raises(StoreError, match="exists as"):
        s.add_stream("mocap/ada", "camera", (12,))
    ro_path = tmp_path / "missing.sqlite"
    with pytest.raises(StoreError, match="does not exist"):
        StreamStore(ro_path)


def test_not_a_store(tmp_path):
    p = tmp_path / "junk.sqlite"
    p.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="not a readable streams store"):
        StreamStore(p)


def test_disk_full_keeps_committed_data(tmp_path):
    path = tmp_path / "s.sqlite"
    s = StreamStore(path, writable=True, fps=24, origin_ns=0)
    s.add_mocap_stream("ada")
    poses = _poses(50)
    s.append("mocap/ada", np.arange(50), poses)
    acked = s.flush()
    # SQLite's own "database or disk is full" (SQLITE_FULL) once the file may not grow.
    pages = s._db.execute("PRAGMA page_count").fetchone()[0]
    s._db.execute(f"PRAGMA max_page_count={pages}")
    big = _poses(3000, seed=3)
    with pytest.raises(DiskFullError, match="intact"):
        s.append("mocap/ada", np.arange(100, 3100), big)
        s.flush()
    s._db.close()
    s._db = None
    ro = StreamStore(path)
    assert ro.integrity_check() == "ok"
    assert len(ro.read_mocap("ada")) == acked == 50


def test_resample_slerps_rotations():
    a = quat.IDENTITY
    b = quat.from_axis_angle(np.array([0, 1.0, 0]), np.pi / 2)
    poses = np.broadcast_to(rest_pose(), (2, 55, 7)).copy()
    poses[0, :, 3:7], poses[1, :, 3:7] = a, b
    poses[1, 0, 0] = 1.0
    t = np.array([0, 1_000_000_000])
    at = frame_times(0, 1_000_000_000, 4)
    out = resample_poses(t, poses, at)
    assert out.shape == (5, 55, 7)
    assert np.allclose(out[2, 0, 3:7], quat.from_axis_angle(np.array([0, 1.0, 0]), np.pi / 4), atol=1e-6)
    assert np.isclose(out[2, 0, 0], poses[0, 0, 0] + 0.5 * (1.0 - poses[0, 0, 0]))


def test_frame_times_map_back_to_exact_frames():
    from machinima.timecode import frames_from_ns

    for fps in (24, 30, "29.97", "23.976", 60):
        at = frame_times(0, 10**9, fps)
        assert list(frames_from_ns(at, fps)) == list(range(len(at)))


def test_discard_pending_after_disk_full(tmp_path):
    s = StreamStore(tmp_path / "s.sqlite", writable=True, fps=24, origin_ns=0, flush_interval=3600)
    s.add_mocap_stream("ada")
    s.append("mocap/ada", np.arange(5), _poses(5))
    s.append_event(1, "event", {"name": "x"})
    assert s.discard_pending() == 5
    assert s.flush() == 0 and s.events() == []


def test_seek_finds_long_and_short_chunks(tmp_path):
    s = StreamStore(tmp_path / "s.sqlite", writable=True, fps=24, origin_ns=0, flush_interval=3600)
    s.add_mocap_stream("ada")
    poses = _poses(300)
    s.append("mocap/ada", np.arange(0, 200) * 10, poses[:200])  # one long chunk: 0..1990
    s.flush()
    assert len(s.read_mocap("ada", 1500, 1600)) == 11  # found although it starts long before
    for i in range(200, 300):  # then short chunks
        s.append("mocap/ada", [i * 10], poses[i])
        s.flush()
    assert len(s.read_mocap("ada", 2500, 2520)) == 3
    assert len(s.read_mocap("ada", 1985, 2015)) == 3  # 1990 (end of the long chunk), 2000, 2010
    s.close()
    ro = StreamStore(tmp_path / "s.sqlite")
    assert len(ro.read_mocap("ada", 1500, 1600)) == 11 and len(ro.read_mocap("ada")) == 300

import numpy as np
import pytest

from machinima.imageseq import ImageSeqError, contact_sheet, list_frames, read_image, read_sequence, read_video, write_image, write_video
from machinima.passes import CameraFrame, PassError, PassSet, intrinsics, look_at


def test_png_exr_roundtrip(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 255, (20, 30, 3), dtype=np.uint8)
    write_image(tmp_path / "seq" / "000001.png", rgb)
    assert np.array_equal(read_image(tmp_path / "seq" / "000001.png"), rgb)
    depth = np.linspace(0.5, 12.0, 600, dtype=np.float32).reshape(20, 30)
    write_image(tmp_path / "d.exr", depth)
    assert np.allclose(read_image(tmp_path / "d.exr"), depth)
    assert list(list_frames(tmp_path / "seq")) == [1]
    with pytest.raises(ImageSeqError, match="missing frames"):
        list(read_sequence(tmp_path / "seq", [1, 2]))
    with pytest.raises(ImageSeqError, match="exr"):
        write_image(tmp_path / "bad.png", depth)


def test_corrupt_image(tmp_path):
    p = tmp_path / "000000.png"
    p.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(ImageSeqError, match="not a readable image"):
        read_image(p)


def test_video_roundtrip_and_sheet(tmp_path):
    frames = [np.full((36, 64, 3), i * 20, np.uint8) for i in range(8)]
    write_video(tmp_path / "v.mp4", frames, fps=24)
    back = list(read_video(tmp_path / "v.mp4"))
    assert len(back) == 8 and abs(int(back[5].mean()) - 100) <= 3
    sheet = contact_sheet(back, columns=4, width=256, labels=[str(i) for i in range(8)])
    assert sheet.shape == (2 * 36, 256, 3)
    (tmp_path / "junk.mp4").write_bytes(b"nope")
    with pytest.raises(ImageSeqError):
        list(read_video(tmp_path / "junk.mp4"))


def test_mux_audio_adds_the_line_and_copies_the_pictures(tmp_path):
    """The video stream is copied packet for packet (a watermark in the pixels survives); PyAV
    reads back both streams and the audio's length."""
    import wave

    import av

    from machinima.imageseq import mux_audio

    frames = [np.full((32, 48, 3), 40 * i, np.uint8) for i in range(6)]
    mp4 = write_video(tmp_path / "v.mp4", frames, fps=24)
    with av.open(str(mp4)) as c:
        before = [bytes(p) for p in c.demux(video=0) if p.size]
    with wave.open(str(tmp_path / "line.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes((np.sin(np.arange(4000) / 5.0) * 8000).astype("<i2").tobytes())
    mux_audio(mp4, tmp_path / "line.wav")
    with av.open(str(mp4)) as c:
        assert len(c.streams.audio) == 1 and len(c.streams.video) == 1
        assert float(c.streams.audio[0].duration * c.streams.audio[0].time_base) == pytest.approx(0.25, abs=0.05)
        after = [bytes(p) for p in c.demux(video=0) if p.size]
    assert after == before
    assert not list(tmp_path.glob(".*"))  # no temporary left


def test_passes_projection_and_errors(tmp_path):
    cam = CameraFrame(intrinsics(64, 36, 50, 36), look_at(np.array([0, 1.6, 5.0]), np.array([0, 1.6, 0])), 64, 36)
    px, depth = cam.project(np.array([[0, 1.6, 0.0], [0, 1.6, -3.0]]))
    assert np.allclose(px[0], [32, 18]) and np.allclose(depth, [5, 8])
    ps = PassSet.create(tmp_path / "passes", width=64, height=36, fps="24")
    ps.write("depth", 0, np.full((36, 64), 5.0, np.float32))
    ps.write_cameras({0: cam})
    ps.save()
    ps = PassSet.open(tmp_path / "passes")
    assert ps.read("depth", 0).mean() == 5.0 and ps.frames == [0]
    assert np.allclose(ps.cameras()[0].K, cam.K)
    with pytest.raises(PassError, match="no 'rgb' pass"):
        ps.read("rgb", 0)
    with pytest.raises(PassError, match="no frame 3"):
        ps.read("depth", 3)
    with pytest.raises(PassError, match="render them first"):
        PassSet.open(tmp_path / "none")


def test_other_passes_pick_png_or_exr_by_dtype(tmp_path):
    ps = PassSet.create(tmp_path / "passes", width=8, height=4, fps="24")
    assert ps.write("light", 0, np.full((4, 8), 0.5, np.float32)).suffix == ".exr"
    assert ps.write("shadow", 0, np.full((4, 8), 128, np.uint8)).suffix == ".png"
    assert np.allclose(ps.read("light", 0), 0.5) and ps.read("shadow", 0).max() == 128

"""A step's movie re-marks frames that already carry their own marks (one manifest id per
frame). Marked one by one, a still background jumps between neighbouring lattice points from
frame to frame and the codec pays for the flicker; ``WatermarkMemory`` keeps the previous
point where the picture is still. Truth: the payload read back (by our decoder, after PyAV's
H.264) and the bytes x264 needs, beside the same frames marked without memory."""

import io

import numpy as np

from machinima import provenance as pv
from machinima.provenance import watermark as wm

VIDEO = "urn:c2pa:6c1b5f0e-3a44-4f7e-9d0a-2b8e1c5d7f90"
KEY = b"production secret"


def _clip(photo, n=6):
    """A still real photo (the background) with a block moving across it, at 512x512."""
    frames = []
    for f in range(n):
        fr = photo.copy()
        fr[300:400, 40 + 40 * f:140 + 40 * f] = (200, 40, 40)
        frames.append(fr)
    return frames


def _h264_bytes(frames):
    import av

    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as c:
        st = c.add_stream("libx264", rate=24)
        st.width, st.height, st.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        st.options = {"crf": "18"}
        for fr in frames:
            for p in st.encode(av.VideoFrame.from_ndarray(fr, format="rgb24")):
                c.mux(p)
        for p in st.encode():
            c.mux(p)
    data = buf.getvalue()
    with av.open(io.BytesIO(data)) as c:
        decoded = [fr.to_ndarray(format="rgb24") for fr in c.decode(video=0)]
    return len(data), decoded


def test_a_still_background_keeps_a_still_mark_in_the_movie(photo):
    frames = [wm.embed_watermark(f, "film", f"urn:c2pa:frame-{i}", KEY) for i, f in enumerate(_clip(photo))]  # the step's PNGs
    plain = [wm.embed_watermark(f, "film", VIDEO, KEY) for f in frames]
    memory = pv.WatermarkMemory()
    still = [wm.embed_watermark(f, "film", VIDEO, KEY, memory=memory) for f in frames]
    bg = (slice(0, 280), slice(None))  # rows the moving block never touches
    flicker = lambda seq: np.mean([np.abs(a[bg].astype(int) - b[bg]).mean() for a, b in zip(seq, seq[1:])])  # noqa: E731
    assert flicker(still) < 0.5 * flicker(plain), (flicker(still), flicker(plain))
    assert memory.kept > 0.8 * memory.carriers  # most carriers sit on a still background
    for f in still:  # every frame still names the video's manifest, tag authentic
        r = pv.decode_watermark(f)
        assert r.found and r.names_manifest(VIDEO) and r.authentic(KEY), r.to_doc()
    size_plain, _ = _h264_bytes(plain)
    size_still, decoded = _h264_bytes(still)
    assert size_still < 0.92 * size_plain, (size_still, size_plain)
    r = pv.decode_watermark(decoded)
    assert r.found and r.names_manifest(VIDEO) and r.authentic(KEY) and r.frames == len(still)
    r = pv.decode_watermark(decoded[3])  # one frame of the movie on its own
    assert r.found and r.names_manifest(VIDEO)


def test_memory_never_keeps_a_point_of_another_payload_or_size(photo):
    memory = pv.WatermarkMemory()
    a = wm.embed_watermark(photo, "film", VIDEO, KEY, memory=memory)
    b = wm.embed_watermark(photo, "film", "urn:c2pa:other", KEY, memory=memory)  # another id: its own lattice
    assert memory.carriers == 0 and pv.decode_watermark(b).names_manifest("urn:c2pa:other")
    small = np.ascontiguousarray(photo[:256, :384])
    wm.embed_watermark(small, "film", VIDEO, KEY, memory=memory)
    assert memory.carriers == 0 and pv.decode_watermark(a).names_manifest(VIDEO)

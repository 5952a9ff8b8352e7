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


def _grainy_clip(photo, n=6, seed=0):
    """The still photo with a block moving across it and fresh film grain in every frame (a
    composite's grain, a render's noise): the picture is still, its pixels are not."""
    rng = np.random.default_rng(seed)
    out = []
    for fr in _clip(photo, n):
        grain = rng.normal(0, 2.0, fr.shape)
        out.append(np.clip(fr + grain, 0, 255).astype(np.uint8))
    return out


def test_qoi_frames_are_marked_in_frame_order_with_memory_and_the_movie_keeps_their_mark(project, photo, monkeypatch):
    """The writer pool runs frames out of order; the step loop marks them in order with one
    memory, so the mark of a still background stays still (truth: the same frames marked one by
    one, and the pixels read back from the QOI files). The movie made from the frames carries
    their mark, the step's sequence id, pixel for pixel; its signed manifest says so and
    ``verify`` accepts it there only."""
    pytest = __import__("pytest")
    pytest.importorskip("qoi")
    from machinima import imageseq
    from machinima.imageseq import read_image
    from machinima.poststep import PostStep

    root, take = project
    src = _grainy_clip(photo)
    step = PostStep(take / "post" / "look", "stylize", {"n": len(src)}, intermediate="qoi")
    step.run(range(len(src)), lambda fr: [{"rgb": src[f]} for f in fr], batch_size=2, progress=False)
    seq = step.sequence_manifest_id()
    got = [read_image(step.output_path("rgb", f)) for f in range(len(src))]
    alone = [wm.embed_watermark(f, "film", seq, step.disclosure.secret) for f in src]
    bg = (slice(0, 280), slice(None))  # rows the moving block never touches
    jumps = lambda seq_: np.mean([(np.abs((a[bg].astype(int) - s0[bg]) - (b[bg].astype(int) - s1[bg])) > 3).mean()  # noqa: E731
                                  for a, b, s0, s1 in zip(seq_, seq_[1:], src, src[1:])])
    assert jumps(got) < 0.5 * jumps(alone), (jumps(got), jumps(alone))  # the mark itself, frame to frame
    memory = step._marker.memories["rgb"]
    assert memory.kept > 0.8 * memory.carriers
    for f in got:
        r = pv.decode_watermark(f)
        assert r.found and r.names_manifest(seq) and r.authentic(step.disclosure.secret)

    # the movie: x264 gets the frames exactly as the step wrote them (nothing re-marked)
    fed = []
    real = imageseq.write_video

    def spy(path, frames, *a, **kw):
        frames = list(frames)
        fed.extend(frames)
        return real(path, frames, *a, **kw)

    monkeypatch.setattr(imageseq, "write_video", spy)
    movie = step.write_video(step.out_dir / "look.mp4", got)
    assert len(fed) == len(got) and all(np.array_equal(a, b) for a, b in zip(fed, got))
    rep = pv.verify_file(movie)
    assert rep.status == "ok" and rep.sequence_manifests == [seq] and rep.watermark_matches, rep.to_doc()
    assert seq not in rep.manifest_ids  # the movie's own manifest is its own; the mark names the sequence's
    # frames that do not carry the mark (PNG-era frames, a float output) are marked with it in full
    fed.clear()
    movie2 = step.write_video(step.out_dir / "plain.mp4", src)
    assert not any(np.array_equal(a, b) for a, b in zip(fed, src))
    assert pv.verify_file(movie2).status == "ok"
    monkeypatch.setattr(imageseq, "write_video", real)

    # the claim lives in the signed manifest only: the same marked frames under a manifest that
    # does not name the sequence are a mismatch; a mark made with another key is forged
    d = step.disclosure
    stray = imageseq.write_video(step.out_dir / "stray.mp4", got)
    pv.sign_file(stray, d.manifest(stray.name, "video/mp4", manifest_id=pv.new_manifest_id()), d.identity)
    rep = pv.verify_file(stray)
    assert rep.status == "mismatch" and rep.bad, rep.to_doc()
    fake = [wm.embed_watermark(f, "film", seq, b"not the production's key") for f in src]
    forged = imageseq.write_video(step.out_dir / "forged.mp4", fake)
    pv.sign_file(forged, d.manifest(forged.name, "video/mp4", manifest_id=pv.new_manifest_id(), sequence_id=seq), d.identity)
    rep = pv.verify_file(forged)
    assert rep.status == "forged" and rep.bad, rep.to_doc()

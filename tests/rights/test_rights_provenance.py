"""Disclosure (machinima.provenance): signed PNG/JPEG/MP4 read back by c2pa-python's reader with
the expected assertions, tampering is detected, the keyed watermark survives JPEG q75 and H.264,
bad certificates and keys are refused before anything is signed."""

import io

import numpy as np
import pytest

from machinima import provenance as pv
from machinima.rights import DisclosureError

TAKE, STEP = "film_s1_a_t001", "faceswap-merge-1"
MID = "urn:c2pa:0b6f2c4e-2d5e-4c7a-9b51-6f1d2f0a9e11"
KEY = b"production secret for the tests!"
RIGHTS = {"records": [{"id": "alice", "kind": "person", "subject": "Alice", "production": "film", "scopes": ["face_replacement"],
                       "expires": "2099-01-01", "document_sha256": "ab" * 32}], "override": None}


def _disclosure(identity, **kw):
    return pv.Disclosure(identity=identity, take_id=TAKE, step_id=STEP, step_kind="faceswap-merge", rights=RIGHTS, production="film", **kw)


def _trust(identity):
    """What a production's verify knows: its anchor and its watermark secret."""
    anchors = identity.trust_anchors_pem
    return pv.Trust([pv.trust.Anchor("production anchors", anchors, False, pv.trust._organizations(anchors))],
                    secrets=[("film", identity.watermark_secret())])


def _flip_in(data: bytes, marker: bytes, offset: int) -> bytes:
    d = bytearray(data)
    i = d.find(marker, 64)
    assert i > 0
    d[i + offset] ^= 0x5A
    return bytes(d)


@pytest.mark.parametrize("ext", [".png", ".jpg"])
def test_signed_image_reads_back_valid(tmp_path, identity, photo, ext):
    data = _disclosure(identity).encode(photo, f"x{ext}", frame=7, ext=ext)
    p = tmp_path / f"out{ext}"
    p.write_bytes(data)
    rep = pv.verify_file(p, trust=_trust(identity))
    assert rep.manifest == "trusted" and rep.status == "ok", rep.to_doc()
    assert rep.source_type == "compositeWithTrainedAlgorithmicMedia"
    assert rep.actions == ["c2pa.created", "c2pa.edited"]
    assert (rep.production, rep.take, rep.step, rep.kind) == ("film", TAKE, STEP, "faceswap-merge")
    assert rep.records == ["alice"] and rep.override is None
    assert rep.watermark.found and rep.watermark_matches and rep.watermark_authentic
    # without the production's anchor the same file is a stranger's: refused, with the reason
    rep2 = pv.verify_file(p, trust=pv.Trust())
    assert rep2.manifest == "valid" and rep2.status == "untrusted" and rep2.bad and "not issued by a trusted anchor" in rep2.reason


def test_pixel_change_after_signing_is_tampered(tmp_path, identity, photo):
    data = _disclosure(identity).encode(photo, "x.png")
    p = tmp_path / "t.png"
    p.write_bytes(_flip_in(data, b"IDAT", 4000))
    rep = pv.verify_file(p, trust=_trust(identity))
    assert rep.manifest == "invalid" and rep.status == "tampered" and rep.bad
    assert any("mismatch" in f for f in rep.failures) and "changed after it was signed" in rep.reason
    jpg = _disclosure(identity).encode(photo, "x.jpg", ext=".jpg")
    pj = tmp_path / "t.jpg"
    pj.write_bytes(jpg[:-3000] + bytes(b ^ 0x21 for b in jpg[-3000:-2990]) + jpg[-2990:])
    assert pv.verify_file(pj, trust=_trust(identity)).status == "tampered"


def test_signed_mp4_valid_then_tampered(tmp_path, identity, photo):
    frames = [np.roll(photo[:288, :512], 4 * i, axis=1) for i in range(12)]
    p = pv.write_disclosed_video(tmp_path / "shot.mp4", frames, _disclosure(identity), fps=24, crf=23)
    rep = pv.verify_file(p, trust=_trust(identity))
    assert rep.manifest == "trusted" and rep.status == "ok", rep.to_doc()
    assert rep.take == TAKE and rep.records == ["alice"]
    assert rep.watermark.found and rep.watermark.frames >= 10 and rep.watermark_matches and rep.watermark_authentic
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(_flip_in(p.read_bytes(), b"mdat", 3000))
    assert pv.verify_file(bad, trust=_trust(identity)).status == "tampered"


def _h264_roundtrip(img, crf=23):
    import av

    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as c:
        st = c.add_stream("libx264", rate=24)
        st.width, st.height, st.pix_fmt = img.shape[1], img.shape[0], "yuv420p"
        st.options = {"crf": str(crf)}
        for _ in range(2):
            for pk in st.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")):
                c.mux(pk)
        for pk in st.encode():
            c.mux(pk)
    buf.seek(0)
    with av.open(buf) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)][-1]


def _photos(photo):
    import cv2
    import matplotlib.cbook
    import skimage.data

    hopper = cv2.imread(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))[..., ::-1]
    return {"astronaut": photo, "hopper": np.ascontiguousarray(hopper), "coffee": skimage.data.coffee(),
            "astronaut-720p": cv2.resize(photo, (1280, 720))}


def test_watermark_survives_jpeg75_and_h264(photo):
    """Stated accuracy: 96/96 payload bits after JPEG q75 and after H.264 (crf 23), on three
    photos at 512-600 px and one at 720p; soft confidence (1 = clean, about 0.1 on unmarked
    images) above 0.6 after JPEG q75 and 0.3 after H.264. The tag checks with the key only."""
    import cv2

    bits = pv.payload_bits("film", MID, KEY)
    for name, img in _photos(photo).items():
        img = img[: img.shape[0] // 2 * 2, : img.shape[1] // 2 * 2]
        marked = pv.embed_watermark(img, "film", MID, KEY)
        assert cv2.PSNR(img, marked) > 40, name
        clean = pv.decode_watermark(marked)
        ok, enc = cv2.imencode(".jpg", marked[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 75])
        jpeg = pv.decode_watermark(cv2.imdecode(enc, cv2.IMREAD_COLOR)[..., ::-1])
        h264 = pv.decode_watermark(_h264_roundtrip(marked))
        for label, res, raw_min in (("jpeg75", jpeg, 0.6), ("h264", h264, 0.3)):
            assert res.found and res.names_manifest(MID) and res.of_production("film"), (name, label, res.to_doc())
            assert res.authentic(KEY) and not res.authentic(b"another production's key"), (name, label)
            assert np.array_equal(res.bits, bits), (name, label)
            assert res.confidence > raw_min, (name, label, res.confidence)
        assert clean.confidence > 0.9
        unmarked = pv.decode_watermark(img)
        assert not unmarked.found and unmarked.confidence < pv.WM_FOUND_CONFIDENCE, (name, unmarked.to_doc())


def test_watermark_survives_rescale_and_label(photo):
    import cv2

    d = pv.Disclosure(identity=None, take_id=TAKE, step_id=STEP, step_kind="k", label="AI-modified", production="film", secret=KEY)  # type: ignore[arg-type]
    img = cv2.resize(photo, (1280, 720))
    marked = d.mark(img, MID)
    assert (np.abs(marked[-40:, -200:].astype(int) - img[-40:, -200:]).max()) > 100  # the label is visible
    small = cv2.resize(marked, (960, 540), interpolation=cv2.INTER_AREA)
    assert pv.decode_watermark(small).names_manifest(MID)
    assert not pv.decode_watermark(img).found
    for size in ((128, 128), (320, 256)):  # small frames: fewer coefficients, a stricter threshold, no false mark
        small_unmarked = cv2.resize(photo, size)
        assert not pv.decode_watermark(small_unmarked).found
        assert pv.decode_watermark(pv.embed_watermark(small_unmarked, "film", MID, KEY)).authentic(KEY)
    assert not pv.decode_watermark(photo[:64, :64]).found  # too small: says so, no crash
    assert "too small" in pv.decode_watermark(photo[:64, :64]).reason
    # marking again with another manifest id replaces the payload (a step video re-marks its frames)
    again = pv.decode_watermark(pv.embed_watermark(marked, "film", "urn:c2pa:other", KEY))
    assert again.names_manifest("urn:c2pa:other") and not again.names_manifest(MID)


def test_corrupt_cert_and_mismatched_key_refused(tmp_path, chain, identity, photo):
    corrupt = tmp_path / "corrupt.pem"
    corrupt.write_text(chain.cert.read_text()[:200] + "garbage\n-----END CERTIFICATE-----\n")
    with pytest.raises(DisclosureError, match="not a valid PEM certificate"):
        pv.load_identity(corrupt, chain.key)
    other = pv.make_test_chain(tmp_path / "other")
    with pytest.raises(DisclosureError, match="does not belong to the certificate"):
        pv.load_identity(chain.cert, other.key)
    with pytest.raises(DisclosureError, match="cannot read the private key"):
        pv.load_identity(chain.cert, tmp_path / "nope.key")
    bad_key = tmp_path / "bad.key"
    bad_key.write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    with pytest.raises(DisclosureError, match="not a valid PEM private key"):
        pv.load_identity(chain.cert, bad_key)
    import datetime as dt

    with pytest.raises(DisclosureError, match="not now"):
        pv.load_identity(chain.cert, chain.key, now=dt.datetime(2100, 1, 1, tzinfo=dt.timezone.utc))
    # a root CA is not a signing certificate
    with pytest.raises(DisclosureError, match="is a CA"):
        pv.load_identity(chain.root_cert, chain.root_key)


def test_nothing_written_when_signing_fails(tmp_path, chain, identity, photo):
    """A key that does not match, forced past the check, makes c2pa fail: no file is left."""
    other = pv.make_test_chain(tmp_path / "o")
    wrong = pv.SigningIdentity(identity.chain_pem, pv.load_identity(other.cert, other.key).key_pem, "ES256", "x", "x", "2099-01-01")
    src = tmp_path / "a.png"
    import cv2

    cv2.imwrite(str(src), photo)
    with pytest.raises(DisclosureError, match="nothing was written"):
        pv.sign_file(src, _disclosure(identity).manifest("a.png", "image/png"), wrong, tmp_path / "signed.png")
    assert not (tmp_path / "signed.png").exists()
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".png"] == ["a.png"]
    with pytest.raises(DisclosureError):
        _disclosure(wrong).encode(photo, "x.png")


def test_unreadable_and_unmarked_files(tmp_path, photo):
    import cv2

    (tmp_path / "garbage.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    cv2.imwrite(str(tmp_path / "plain.png"), photo)
    reps = {r.path.rsplit("/", 1)[-1]: r for r in pv.verify_path(tmp_path)}
    assert reps["garbage.png"].status == "unreadable" and reps["garbage.png"].bad
    assert reps["plain.png"].status == "unmarked" and reps["plain.png"].bad
    with pytest.raises(DisclosureError, match="does not exist"):
        pv.verify_path(tmp_path / "missing.png")


def test_unknown_source_type_refused():
    with pytest.raises(DisclosureError, match="digital source type"):
        pv.build_manifest(title="x", mime="image/png", take_id="t", step_id="s", step_kind="k", source_type="photo")


def test_png_single_idat_is_the_same_image(photo):
    import cv2

    ok, buf = cv2.imencode(".png", np.ascontiguousarray(np.tile(photo, (2, 2, 1))))
    data = buf.tobytes()
    merged = pv.png_single_idat(data)
    assert merged.count(b"IDAT") == 1 < data.count(b"IDAT")
    assert np.array_equal(cv2.imdecode(np.frombuffer(merged, np.uint8), -1), cv2.imdecode(buf, -1))
    assert pv.png_single_idat(b"not a png") == b"not a png"
    assert pv.png_single_idat(data[:5000]) == data[:5000]  # truncated: left alone


def test_stripped_manifest_and_mismatch(tmp_path, identity, photo):
    """A JPEG re-encode drops the manifest but keeps the watermark: 'watermark-only' fails (the
    mark says "ours" and nothing backs it); a frame whose watermark names another manifest
    than the one it carries is a mismatch."""
    import cv2

    marked = _disclosure(identity).mark(photo, MID)
    cv2.imwrite(str(tmp_path / "reencoded.jpg"), marked[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 75])
    rep = pv.verify_file(tmp_path / "reencoded.jpg", trust=_trust(identity))
    assert rep.status == "watermark-only" and rep.bad and rep.watermark.names_manifest(MID) and "no manifest" in rep.reason
    other = pv.Disclosure(identity=identity, take_id="another_take", step_id=STEP, step_kind="k", watermark=False)
    (tmp_path / "mixed.png").write_bytes(other.encode(marked, "mixed.png"))
    rep = pv.verify_file(tmp_path / "mixed.png", trust=_trust(identity))
    assert rep.status == "mismatch" and rep.bad and "names another manifest" in rep.reason

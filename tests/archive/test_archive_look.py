import json
import subprocess
import sys

import numpy as np
import pytest

from machinima.imageseq import find_frame, list_frames

from stylize.archive import ArchiveError, ArchiveLook, fit, list_presets, load_preset, parse_preset, psnr

# Documented (docs/stylize.md, "Archive look"): PSNR of each preset against the source fitted
# into the format's frame, on textured moving test footage.
PSNR_RANGE = (12.0, 32.0)


def footage(h=120, w=200):
    rng = np.random.default_rng(7)
    base = rng.integers(0, 255, (h // 8, w // 8, 3), dtype=np.uint8)
    import cv2

    base = cv2.resize(base, (w, h), interpolation=cv2.INTER_CUBIC)
    return lambda f: np.roll(base, 3 * f, axis=1)


@pytest.mark.parametrize("name", ["vhs-1994", "dv-2003", "phone-2009", "super8"])
def test_presets_deterministic_random_access_and_measurable(name):
    pre = load_preset(name)
    src = footage()
    a = ArchiveLook(pre, src, seed=3, source_fps=24, last_frame=13)
    seq = [a.render(f) for f in range(14)]
    b = ArchiveLook(pre, src, seed=3, source_fps=24, last_frame=13)
    assert np.array_equal(b.render(9), seq[9])  # any frame alone == the same frame in sequence
    assert np.array_equal(b.render(2), seq[2])
    c = ArchiveLook(pre, src, seed=4, source_fps=24, last_frame=13)
    assert not np.array_equal(c.render(9), seq[9])
    assert seq[0].shape == (pre.size[1], pre.size[0], 3)
    values = [psnr(out, fit(src(a.held_frame(f)), pre.size)) for f, out in enumerate(seq)]
    assert PSNR_RANGE[0] < np.mean(values) < PSNR_RANGE[1], (name, np.mean(values))


def test_all_shipped_presets_listed():
    assert set(list_presets()) >= {"vhs-1994", "dv-2003", "phone-2009", "super8"}


def test_codec_reencode_really_encodes():
    pre = parse_preset({"size": [320, 240], "effects": [{"kind": "codec", "codec": "mpeg2video", "bitrate": 200000, "gop": 6}]})
    src = footage()
    look = ArchiveLook(pre, src, seed=0, source_fps=24, last_frame=11)
    out = [look.render(f) for f in range(12)]
    ref = [fit(src(f), pre.size) for f in range(12)]
    q = [psnr(o, r) for o, r in zip(out, ref)]
    assert all(15 < v < 40 for v in q)  # lossy, but the picture is still there


def test_held_frames_for_slower_formats():
    look = ArchiveLook(load_preset("super8"), footage(), source_fps=24)
    held = [look.held_frame(f) for f in range(12)]
    # 18 fps inside 24: 3 distinct images per 4 frames, each the source frame at the format
    # frame's exposure time, never ahead of the output frame
    assert held == [0, 0, 1, 2, 4, 4, 5, 6, 8, 8, 9, 10]
    assert all(h <= f for f, h in enumerate(held))


@pytest.mark.parametrize(
    "doc, match",
    [
        ({"effects": [{"kind": "sepia"}]}, "unknown kind 'sepia'"),
        ({"effects": [{"kind": "grain", "amout": 1}]}, "unknown field"),
        ({"effects": [{"kind": "grain", "amount": -1}]}, "must not be negative"),
        ({"effects": [{"kind": "jpeg", "quality": "low"}]}, "must be a number"),
        ({"size": [10]}, "'size'"),
        ({"fps": "fast"}, "'fps'"),
    ],
)
def test_bad_presets_name_the_field(doc, match):
    with pytest.raises(ArchiveError, match=match):
        parse_preset(doc)


def test_bad_stamp_date_and_missing_preset(tmp_path):
    pre = parse_preset({"effects": [{"kind": "stamp", "text": "x", "clock_from": "yesterday"}]})
    with pytest.raises(ArchiveError, match="ISO"):
        ArchiveLook(pre, footage()).render(0)
    with pytest.raises(ArchiveError, match="presets:"):
        load_preset("vhs-2099")


def test_cli_on_a_take_resumes(tmp_path):
    from machinima.passes import PassSet
    from machinima.take import Take

    take = Take.create(tmp_path / "takes", production="p", scene="1", shot="1", fps=24)
    take.finalize()
    ps = PassSet.create(take.passes_dir(), width=96, height=54, fps="24")
    src = footage(54, 96)
    for f in range(6):
        ps.write("rgb", f, src(f))
    ps.save()
    cmd = [sys.executable, "-m", "machinima", "archive", str(take.path), "--preset", "phone-2009", "--seed", "2"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    step = take.post_dir("archive-phone-2009")
    assert len(list_frames(step / "frames")) == 6 and (step / "archive-phone-2009.mp4").exists()
    params = json.loads((step / "params.json").read_text())
    assert params["step"] == "archive" and params["params"]["seed"] == 2
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert "0 frames aged, 6 already done" in r.stdout
    r = subprocess.run([sys.executable, "-m", "machinima", "archive", str(tmp_path / "nothing-here")], capture_output=True, text=True)
    assert r.returncode == 1 and "Traceback" not in r.stderr


@pytest.mark.parametrize("name", ["vhs-1994", "dv-2003", "phone-2009", "super8"])
@pytest.mark.parametrize("frames", [list(range(0, 24, 2)), list(range(10, 18))], ids=["every-2nd", "range"])
def test_every_preset_ages_frames_that_exist_only(name, frames):
    """Passes every 2nd frame or a range crashed dv-2003/phone-2009/super8 (KeyError on frames
    that do not exist): now the look runs on the frames there are, in any order."""
    src = footage()
    asked = []

    def source(f):
        assert f in frames, f"frame {f} does not exist"
        asked.append(f)
        return src(f)

    pre = load_preset(name)
    seq = {f: ArchiveLook(pre, source, seed=5, source_fps=24, frames=frames).render(f) for f in frames}
    backwards = ArchiveLook(pre, source, seed=5, source_fps=24, frames=frames)
    for f in reversed(frames):  # random access: the same pixels whatever the order
        assert np.array_equal(backwards.render(f), seq[f]), f
    assert set(asked) <= set(frames)


def test_interlace_weaves_the_previous_frame_that_exists():
    pre = parse_preset({"size": [200, 120], "effects": [{"kind": "interlace"}]})
    src = footage()
    look = ArchiveLook(pre, src, frames=[0, 2, 4])
    out = look.render(4)
    assert np.array_equal(out[0::2], fit(src(4), pre.size)[0::2])
    assert np.array_equal(out[1::2], fit(src(2), pre.size)[1::2])  # frame 3 was never rendered
    with pytest.raises(ArchiveError, match="not in the source"):
        look.render(3)


def _sparse_take(tmp_path, frames):
    from machinima.passes import PassSet
    from machinima.take import Take

    take = Take.create(tmp_path / "takes", production="p", scene="1", shot="1", fps=24)
    take.finalize()
    ps = PassSet.create(take.passes_dir(), width=96, height=54, fps="24")
    src = footage(54, 96)
    for f in frames:
        ps.write("rgb", f, src(f))
    ps.save()
    from machinima.imageseq import write_image

    for f in frames:  # an earlier step's output with the same holes
        write_image(take.post_dir("stylize-x") / "frames" / f"{f:06d}.png", src(f)[::-1].copy())
    return take


def test_cli_on_passes_every_2nd_frame_from_a_post_step_says_what_it_did(tmp_path):
    import av

    frames = list(range(0, 12, 2))
    take = _sparse_take(tmp_path, frames)
    cmd = [sys.executable, "-m", "machinima", "archive", str(take.path), "--from", "post/stylize-x", "-p", "dv-2003", "--seed", "2"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    step = take.post_dir("archive-dv-2003")
    assert sorted(list_frames(step / "frames")) == frames
    assert "every 2nd frame (0..10, 6 frames)" in r.stdout and "holds each frame" in r.stdout
    with av.open(str(step / "archive-dv-2003.mp4")) as c:
        assert sum(1 for _ in c.decode(video=0)) == 11  # frames 0..10 at the take's rate: held, not sped up


def test_cli_ray_on_passes_every_2nd_frame_matches_local(tmp_path):
    pytest.importorskip("ray")
    frames = list(range(0, 16, 2))
    take = _sparse_take(tmp_path, frames)
    from machinima.provenance import record_decision  # pixel-exact: each output's watermark names its own manifest

    record_decision(take.path, False, "pixel-exact Ray vs local test")
    base = [sys.executable, "-m", "machinima", "archive", str(take.path), "-p", "phone-2009", "--no-mp4"]
    r = subprocess.run(base + ["--ray", "local", "--step-id", "ray"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = subprocess.run(base + ["--step-id", "here"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    from machinima.imageseq import read_image

    for f in frames:
        a = read_image(find_frame(take.post_dir("ray") / "frames", f))
        assert np.array_equal(a, read_image(find_frame(take.post_dir("here") / "frames", f))), f

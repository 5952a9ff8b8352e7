"""End-to-end composites of tiny synthetic scenes built here with PassSet.create/write and numpy."""

from __future__ import annotations


import numpy as np

from machinima.imageseq import find_frame, list_frames
import pytest

from composite_scenes import ACTOR_RGB, WALL_X, H, W, make_plate, make_take, plain

from composite.chain import ChainSettings
from composite.errors import ModelError, PassMismatchError, PlateError, SettingsError
from composite.pipeline import CompositeSettings, run_composite
from composite.placement import PlacementSettings
from machinima.imageseq import read_image, write_image
from machinima.take import Take

def test_plate_behind_wall_is_hidden_exactly_where_the_set_is_nearer(tmp_path):
    take = make_take(tmp_path)
    plate = make_plate(tmp_path, [48, 48])
    res = run_composite(take, plain(plate), progress=False)
    out = read_image(find_frame(res.out_dir / "rgb", 0))
    cover = read_image(find_frame(res.out_dir / "alpha", 0))
    set_rgb = read_image(take / "passes" / "rgb" / "000000.png")
    band = 3  # the soft edge (Gaussian sigma 1 px) lives within 3 px of the wall's edge
    rows = slice(10, 53)
    assert np.array_equal(out[rows, 32:WALL_X - band], set_rgb[rows, 32:WALL_X - band])
    assert np.all(cover[rows, 32:WALL_X - band] == 0)
    shown = out[rows, WALL_X + band:56]
    assert np.all(shown == np.array(ACTOR_RGB, np.uint8))
    assert np.all(cover[rows, WALL_X + band:56] == 255)
    # the edge itself is soft: intermediate coverage, no stair-step
    edge = cover[30, WALL_X - band - 1:WALL_X + band + 1]
    assert edge.min() == 0 and edge.max() == 255 and np.any((edge > 0) & (edge < 255))
    # outside the actor the set is untouched
    assert np.array_equal(out[:, 60:], set_rgb[:, 60:])
    # a second run resumes: nothing is redone
    again = run_composite(take, plain(plate), progress=False)
    assert again.report.done == [] and again.report.skipped == [0, 1]


def test_walking_into_shadow_darkens_by_the_pass_factor(tmp_path):
    light = np.full((H, W, 3), 255, np.uint8)
    light[:, 60:] = 102  # factor 0.4 on the right
    take = make_take(tmp_path, light=light)
    plate = make_plate(tmp_path, [72, 72], name="lit_plate")
    # the same actor standing in the shadow (feet at x=72) and in the light (x=52)
    lit = make_plate(tmp_path, [52, 52], name="lit")
    res_dark = run_composite(take, plain(plate, light="pass", step_id="dark"), progress=False)
    res_lit = run_composite(take, plain(lit, light="pass", step_id="lit"), progress=False)
    dark = read_image(find_frame(res_dark.out_dir / "rgb", 0))[30, 72].astype(int)
    bright = read_image(find_frame(res_lit.out_dir / "rgb", 0))[30, 52].astype(int)
    # per pixel: the floor's light at the actor's depth (the shadow edge 8 px away takes a level at most)
    assert np.abs(bright - ACTOR_RGB).max() <= 1
    assert np.abs(dark - [round(v * 0.4) for v in ACTOR_RGB]).max() <= 1
    assert res_dark.info["light"] == ["pass", "light"]
    # --light contact: one factor from the pass at the feet, exact
    at_feet = run_composite(take, plain(lit, light="contact", step_id="contact"), progress=False)
    assert tuple(read_image(find_frame(at_feet.out_dir / "rgb", 0))[30, 52]) == ACTOR_RGB


def test_walk_from_lit_to_shadow_within_one_take(tmp_path):
    light = np.full((H, W, 3), 255, np.uint8)
    light[:, 60:] = 102
    take = make_take(tmp_path, light=light)
    plate = make_plate(tmp_path, [52, 72])  # frame 0 lit, frame 1 in the shadow
    res = run_composite(take, plain(plate, light="pass"), progress=False)
    f0 = read_image(find_frame(res.out_dir / "rgb", 0))[30, 52].astype(float)
    f1 = read_image(find_frame(res.out_dir / "rgb", 1))[30, 72].astype(float)
    assert np.allclose(f1, np.round(f0 * 0.4), atol=0.5)


def test_green_key_video_plate_demo_runs_with_mp4(tmp_path):
    from composite.demo_scene import make_demo

    take, plate, pos = make_demo(tmp_path, width=160, height=90, frames=6)
    res = run_composite(take, CompositeSettings(plate=plate, matte="green", placement=PlacementSettings(position=pos)), progress=False)
    assert res.video is not None and res.video.stat().st_size > 0
    assert len(res.report.done) == 6
    params = (res.out_dir / "params.json").read_text()
    assert "screen_rgb" in params and "composite" in params


# --- clear errors ---------------------------------------------------------------------------

def test_missing_passes(tmp_path):
    take = Take.create(tmp_path / "takes", production="t", scene="s", shot="c", fps=24)
    take.finalize()
    path = take.path
    take.close()
    plate = make_plate(tmp_path, [48])
    with pytest.raises(PassMismatchError, match="no passes"):
        run_composite(path, plain(plate), progress=False)
    take2 = make_take(tmp_path / "b", passes=("rgb",))
    with pytest.raises(PassMismatchError, match="depth"):
        run_composite(take2, plain(plate), progress=False)
    take3 = make_take(tmp_path / "c")
    with pytest.raises(PassMismatchError, match="light"):
        run_composite(take3, plain(make_plate(tmp_path, [48, 48], name="p3"), light="pass"), progress=False)


def test_mismatched_sizes(tmp_path):
    take = make_take(tmp_path, depth_size=(48, 32))
    with pytest.raises(PassMismatchError, match="48x32"):
        run_composite(take, plain(make_plate(tmp_path, [48, 48])), progress=False)
    take2 = make_take(tmp_path / "b", light=np.full((32, 48, 3), 255, np.uint8))
    with pytest.raises(PassMismatchError, match="light pass is 48x32"):
        run_composite(take2, plain(make_plate(tmp_path, [48, 48], name="p2"), light="pass"), progress=False)
    # a plate whose frames change size
    plate = make_plate(tmp_path, [48], name="p3")
    write_image(plate / "000001.png", np.zeros((10, 10, 4), np.uint8))
    with pytest.raises(PlateError, match="10x10"):
        run_composite(take2, plain(plate, frames=(0, 2)), progress=False)


def test_plate_shorter_than_take(tmp_path):
    take = make_take(tmp_path, frames=4)
    plate = make_plate(tmp_path, [48, 48])
    with pytest.raises(PlateError, match="shorter than the take: it has 2 frames") as exc:
        run_composite(take, plain(plate), progress=False)
    assert "--frames 0:2" in str(exc.value)
    with pytest.raises(PlateError, match="starts after the take"):
        run_composite(take, plain(plate, offset=-1), progress=False)
    res = run_composite(take, plain(plate, frames=(0, 2)), progress=False)
    assert res.report.done == [0, 1]


def test_bad_inputs(tmp_path):
    take = make_take(tmp_path)
    with pytest.raises(PlateError, match="does not exist"):
        run_composite(take, plain(tmp_path / "nope.mp4"), progress=False)
    opaque = make_plate(tmp_path, [48, 48], alpha=False)
    with pytest.raises(PlateError, match="no alpha channel"):
        run_composite(take, plain(opaque), progress=False)
    with pytest.raises(ModelError, match="depth model not found"):
        run_composite(take, plain(opaque, matte="green", depth_model=tmp_path / "no-model"), progress=False)
    with pytest.raises(SettingsError, match="--key"):
        run_composite(take, plain(opaque, matte="purple"), progress=False)


def test_cli_runs_and_reports_errors_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("MACHINIMA_PROJECT", str(tmp_path))  # no machinima.toml from the current directory
    from typer.testing import CliRunner

    from composite.cli import app

    take = make_take(tmp_path)
    plate = make_plate(tmp_path, [48, 48])
    r = CliRunner().invoke(app, [str(take), "--plate", str(plate), "--key", "alpha", "--place", "0,0,-5", "--ground-contact", "48,52",
                                 "--plate-scale", "1", "--no-video", "--grain", "none"])
    assert r.exit_code == 0, r.output
    assert find_frame(take / "post" / "composite" / "rgb", 1).exists()
    r = CliRunner().invoke(app, [str(take), "--plate", str(plate), "--place", "0,0"])
    assert isinstance(r.exception, SettingsError) and "--place needs 3" in str(r.exception)


def test_demo_actor_walks_behind_the_pillar_and_in_front_of_the_crate(tmp_path):
    from composite.demo_scene import make_demo

    take, plate, pos = make_demo(tmp_path, width=160, height=90, frames=12, plate_as="png")
    settings = dict(plate=plate, matte="green", placement=PlacementSettings(position=pos), video=False, grain="none")
    run_composite(take, CompositeSettings(**settings), progress=False)
    run_composite(take, CompositeSettings(**settings, step_id="front", chain=ChainSettings(depth_bias=50.0)), progress=False)
    set_rgb = read_image(take / "passes" / "rgb" / "000000.png").astype(int)
    depth = read_image(take / "passes" / "depth" / "000000.exr")
    depth = depth[..., 0] if depth.ndim == 3 else depth
    import cv2

    def region(rgb, near, far):
        m = ((np.abs(set_rgb - np.array(rgb)).sum(-1) < 12) & (depth > near) & (depth < far)).astype(np.uint8)
        return cv2.erode(m, np.ones((9, 9), np.uint8)) > 0  # away from the soft edge (3 px)

    pillar = region((144, 68, 51), 3.0, 5.6)  # nearer than the actor's path (about 6 m)
    crate = region((48, 40, 24), 6.5, 10.0)  # farther (and in the shadow band: 0.4 of its colour)
    assert pillar.sum() > 50 and crate.sum() > 20
    cover = [read_image(find_frame(take / "post" / "composite" / "alpha", f)) for f in range(12)]
    front = [read_image(find_frame(take / "post" / "front" / "alpha", f)) for f in range(12)]
    assert max(int(c[pillar].max()) for c in front) == 255  # the actor does cross the pillar's pixels...
    assert max(int(c[pillar].max()) for c in cover) == 0  # ...and is hidden there by the pillar
    assert max(int(c[crate].max()) for c in cover) == 255  # but covers the crate behind the path


def test_plate_at_another_frame_rate_is_resampled(tmp_path):
    take = make_take(tmp_path, frames=4)  # 24 fps
    colors = [(200, 60, 40), (100, 160, 40), (40, 60, 220)]
    plate = make_plate(tmp_path, [48, 48, 48], colors=colors)
    res = run_composite(take, plain(plate, plate_fps="12", resample="blend"), progress=False)
    px = [tuple(int(v) for v in read_image(find_frame(res.out_dir / "rgb", f))[30, 50]) for f in range(4)]
    assert px[0] == colors[0] and px[2] == colors[1]
    assert all(abs(a - (b + c) / 2) <= 1 for a, b, c in zip(px[1], colors[0], colors[1]))  # halfway: a mix
    assert all(abs(a - (b + c) / 2) <= 1 for a, b, c in zip(px[3], colors[1], colors[2]))
    nearest = run_composite(take, plain(plate, plate_fps="12", step_id="nearest"), progress=False)
    assert tuple(int(v) for v in read_image(find_frame(nearest.out_dir / "rgb", 1))[30, 50]) in (colors[0], colors[1])
    with pytest.raises(PlateError, match="shorter"):
        run_composite(take, plain(plate, plate_fps="12", offset=1, step_id="late"), progress=False)


def test_rerendered_pass_or_new_plate_redoes_only_those_frames(tmp_path):
    import os

    take = make_take(tmp_path, frames=3)
    plate = make_plate(tmp_path, [48, 48, 48])
    assert run_composite(take, plain(plate), progress=False).report.done == [0, 1, 2]
    rgb = take / "passes" / "rgb" / "000001.png"
    os.utime(rgb, ns=(rgb.stat().st_atime_ns, rgb.stat().st_mtime_ns + 10**9))
    write_image(plate / "000002.png", read_image(plate / "000002.png"))
    again = run_composite(take, plain(plate), progress=False)
    assert again.report.done == [1, 2] and again.report.skipped == [0]


def test_cli_model_path_from_config_says_where_to_put_it(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from composite.cli import app
    from machinima.errors import ConfigError

    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "machinima.toml").write_text('models_dir = "models"\n\n[composite]\ndepth_model = "depth/dpt-small"\n')
    monkeypatch.setenv("MACHINIMA_PROJECT", str(tmp_path / "proj"))
    take = make_take(tmp_path)
    r = CliRunner().invoke(app, [str(take), "--plate", str(make_plate(tmp_path, [48, 48])), "--key", "alpha"])
    assert isinstance(r.exception, ConfigError)
    assert str(tmp_path / "proj" / "models" / "depth" / "dpt-small") in str(r.exception) and "put it there" in str(r.exception)


def test_alpha_video_plate_aligned_by_its_timecode(tmp_path):
    from fractions import Fraction

    import av

    colors = [(200, 60, 40), (100, 160, 40), (40, 60, 220)]
    path = tmp_path / "plate.mov"
    with av.open(str(path), "w") as c:  # PNG-in-MOV with alpha and a timecode track, as a finishing house sends
        st = c.add_stream("png", rate=Fraction(24))
        st.width, st.height, st.pix_fmt = W, H, "rgba"
        st.metadata["timecode"] = "01:00:00:02"
        for col in colors:
            img = np.zeros((H, W, 4), np.uint8)
            img[10:53, 40:56] = (*col, 255)
            for pk in st.encode(av.VideoFrame.from_ndarray(img, format="rgba")):
                c.mux(pk)
        for pk in st.encode():
            c.mux(pk)
    take = make_take(tmp_path, timecode_in="01:00:00:03")  # the take starts one frame into the plate
    res = run_composite(take, plain(path, matte="auto", align_timecode=True), progress=False)
    assert res.info["matte"] == "alpha"
    assert tuple(read_image(find_frame(res.out_dir / "rgb", 0))[30, 50]) == colors[1]
    assert tuple(read_image(find_frame(res.out_dir / "rgb", 1))[30, 50]) == colors[2]
    with pytest.raises(PlateError, match="carries no timecode"):
        run_composite(take, plain(make_plate(tmp_path, [48, 48]), align_timecode=True, step_id="x"), progress=False)


def test_cli_demo_plate_for_an_existing_take(tmp_path, monkeypatch):
    monkeypatch.setenv("MACHINIMA_PROJECT", str(tmp_path))
    from typer.testing import CliRunner

    from composite.cli import app

    take = make_take(tmp_path, frames=3)
    r = CliRunner().invoke(app, [str(take), "--demo", str(tmp_path / "demo"), "--no-video", "--grain", "none"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "demo" / "t_s_c_t001_plate.mp4").exists()
    covers = [read_image(find_frame(take / "post" / "composite" / "alpha", f)) for f in range(3)]
    assert covers[0].max() == 0  # the actor starts behind the wall (left, 3 m) ...
    assert covers[2].max() == 255  # ... and walks out from behind it


def test_exr_frames_and_movie(tmp_path):
    take = make_take(tmp_path)
    res = run_composite(take, plain(make_plate(tmp_path, [48, 48]), output_format="exr", video=True), progress=False)
    exr = read_image(res.out_dir / "rgb" / "000000.exr")
    assert exr.dtype == np.float32 and np.allclose(exr[30, 50], np.array(ACTOR_RGB) / 255.0, atol=1e-6)
    assert res.video is not None and res.video.name == "composite.mp4" and res.video.stat().st_size > 0


def test_passes_every_2nd_frame_composite_the_frames_there_are_and_keep_the_timing(tmp_path):
    import av

    take = make_take(tmp_path, frames=[0, 2, 4, 6])
    plate = make_plate(tmp_path, [40 + 4 * i for i in range(7)])  # one plate frame per take frame
    res = run_composite(take, plain(plate, video=True), progress=False)
    assert sorted(list_frames(res.out_dir / "rgb")) == [0, 2, 4, 6]
    dense = run_composite(make_take(tmp_path / "dense", frames=7), plain(plate, video=False), progress=False)
    for f in (2, 4, 6):  # take frame f shows plate frame f, as in a take rendered every frame (not the i-th plate frame)
        assert np.array_equal(read_image(find_frame(res.out_dir / "rgb", f)), read_image(find_frame(dense.out_dir / "rgb", f)))
    assert res.frames_note.startswith("every 2nd frame (0..6, 4 frames)") and "holds each frame" in res.frames_note
    with av.open(str(res.video)) as c:
        assert sum(1 for _ in c.decode(video=0)) == 7  # 0..6 at 24 fps, each frame held for two


def test_passes_for_a_frame_range_composite_those_frames_at_their_plate_time(tmp_path):
    """Passes rendered for frames 10..13 only (`blender render --frames 10:13`): the composite makes
    those four, each with the plate frame at its own time (not plate frames 0..3), and says so."""
    take = make_take(tmp_path, frames=list(range(10, 14)))
    plate = make_plate(tmp_path, [36 + 2 * i for i in range(14)])
    res = run_composite(take, plain(plate, video=False), progress=False)
    assert sorted(list_frames(res.out_dir / "rgb")) == [10, 11, 12, 13]
    assert res.frames_note == "frames 10..13 only"
    dense = run_composite(make_take(tmp_path / "dense", frames=14), plain(plate, video=False), progress=False)
    for f in (10, 13):
        assert np.array_equal(read_image(find_frame(res.out_dir / "rgb", f)), read_image(find_frame(dense.out_dir / "rgb", f)))
    assert not np.array_equal(read_image(find_frame(res.out_dir / "rgb", 10)), read_image(find_frame(dense.out_dir / "rgb", 0)))

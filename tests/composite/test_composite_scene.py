"""End-to-end composites of tiny synthetic scenes built here with PassSet.create/write and numpy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from composite.chain import ChainSettings
from composite.errors import ModelError, PassMismatchError, PlateError, SettingsError
from composite.pipeline import CompositeSettings, run_composite
from composite.placement import PlacementSettings
from machinima.imageseq import read_image, write_image
from machinima.passes import BACKGROUND_DEPTH, CameraFrame, PassSet, look_at
from machinima.take import Take

W, H = 96, 64
K = np.array([[100.0, 0, 48], [0, 100.0, 32], [0, 0, 1]])
# camera 1 m above the floor looking straight down -Z: the floor row 52 is 5 m away (32 + 100 * 1/5)
CAM = CameraFrame(K, look_at(np.array([0.0, 1.0, 0.0]), np.array([0.0, 1.0, -1.0])), W, H)
WALL_X = 44  # the wall covers columns < 44, 3 m away (nearer than the actor at 5 m)
ACTOR_RGB = (200, 60, 40)


def make_take(tmp: Path, *, frames: int = 2, passes: tuple[str, ...] = ("rgb", "depth"), light: np.ndarray | None = None,
              depth_size: tuple[int, int] | None = None) -> Path:
    take = Take.create(tmp / "takes", production="t", scene="s", shot="c", fps=24)
    take.finalize()
    ps = PassSet.create(take.passes_dir(), width=W, height=H, fps="24")
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[:] = (90, 110, 130)
    rgb[:, :WALL_X] = (30, 160, 30)
    depth = np.full((H, W), BACKGROUND_DEPTH, np.float32)
    depth[:, :WALL_X] = 3.0
    rows = np.arange(H, dtype=np.float32)[:, None] + 0.5
    with np.errstate(divide="ignore"):
        floor = np.where(rows > 32, 100.0 / (rows - 32), BACKGROUND_DEPTH)  # the floor y=0, seen from 1 m up
    depth = np.minimum(depth, np.broadcast_to(floor, depth.shape)).astype(np.float32)
    for f in range(frames):
        if "rgb" in passes:
            ps.write("rgb", f, rgb)
        if "depth" in passes:
            d = depth if depth_size is None else np.full((depth_size[1], depth_size[0]), 10.0, np.float32)
            ps.write("depth", f, d)
        if light is not None:
            ps.write("light", f, light)
    ps.save()
    ps.write_cameras({f: CAM for f in range(frames)})
    path = take.path
    take.close()
    return path


def make_plate(tmp: Path, feet_x: list[int], *, alpha: bool = True, name: str = "plate") -> Path:
    """RGBA frames: an actor rectangle 16 px wide whose bottom row (the feet) is row 52."""
    folder = tmp / name
    for i, fx in enumerate(feet_x):
        img = np.zeros((H, W, 4 if alpha else 3), np.uint8)
        img[..., :3] = (40, 190, 60)
        img[10:53, fx - 8:fx + 8, :3] = ACTOR_RGB
        if alpha:
            img[10:53, fx - 8:fx + 8, 3] = 255
        write_image(folder / f"{i:06d}.png", img)
    return folder


def plain(plate: Path, **kw) -> CompositeSettings:
    """Everything that changes colours off, so pixels can be compared exactly."""
    chain = ChainSettings(wrap_strength=0.0, shadow_opacity=0.0, edge_px=1.0)
    base = dict(plate=plate, matte="alpha", placement=PlacementSettings(position=(0.0, 0.0, -5.0), contact=(48.0, 52.0), scale=1.0),
                light="none", color_match="none", grain="none", chain=chain, video=False)
    base.update(kw)
    return CompositeSettings(**base)


def test_plate_behind_wall_is_hidden_exactly_where_the_set_is_nearer(tmp_path):
    take = make_take(tmp_path)
    plate = make_plate(tmp_path, [48, 48])
    res = run_composite(take, plain(plate), progress=False)
    out = read_image(res.out_dir / "rgb" / "000000.png")
    cover = read_image(res.out_dir / "alpha" / "000000.png")
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
    dark = read_image(res_dark.out_dir / "rgb" / "000000.png")[30, 72]
    bright = read_image(res_lit.out_dir / "rgb" / "000000.png")[30, 52]
    assert tuple(bright) == ACTOR_RGB
    assert tuple(dark) == tuple(round(v * 0.4) for v in ACTOR_RGB)
    assert res_dark.info["light"] == ["pass", "light"]


def test_walk_from_lit_to_shadow_within_one_take(tmp_path):
    light = np.full((H, W, 3), 255, np.uint8)
    light[:, 60:] = 102
    take = make_take(tmp_path, light=light)
    plate = make_plate(tmp_path, [52, 72])  # frame 0 lit, frame 1 in the shadow
    res = run_composite(take, plain(plate, light="pass"), progress=False)
    f0 = read_image(res.out_dir / "rgb" / "000000.png")[30, 52].astype(float)
    f1 = read_image(res.out_dir / "rgb" / "000001.png")[30, 72].astype(float)
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


def test_cli_runs_and_reports_errors_in_one_line(tmp_path):
    from typer.testing import CliRunner

    from composite.cli import app

    take = make_take(tmp_path)
    plate = make_plate(tmp_path, [48, 48])
    r = CliRunner().invoke(app, [str(take), "--plate", str(plate), "--key", "alpha", "--place", "0,0,-5", "--ground-contact", "48,52",
                                 "--plate-scale", "1", "--no-video", "--grain", "none"])
    assert r.exit_code == 0, r.output
    assert (take / "post" / "composite" / "rgb" / "000001.png").exists()
    r = CliRunner().invoke(app, [str(take), "--plate", str(plate), "--place", "0,0"])
    assert isinstance(r.exception, SettingsError) and "--place needs 3" in str(r.exception)

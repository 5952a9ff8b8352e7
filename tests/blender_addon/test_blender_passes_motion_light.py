"""The motion pass against an object whose motion the test sets, the light pass, OpenImageDenoise
on a flat wall (real bpy, tiny renders)."""

from __future__ import annotations

import numpy as np
import pytest

from machinima.passes import BACKGROUND_DEPTH, PassSet

bpy = pytest.importorskip("bpy")

NOISE_MAX = 0.5  # 8-bit levels of noise on a flat wall: the threshold for clean passes (docs/blender.md)
STEP_X, STEP_Y = 0.4, 0.15  # metres per frame the box moves (world X right, Z up in Blender)


def _moving_box(scene):
    """A 2 m box moving STEP_X, STEP_Y a frame, under a camera 10 m up looking straight down (-Z)."""
    bpy.ops.mesh.primitive_cube_add(size=2.0, location=(0.0, 0.0, 0.0))
    box = bpy.context.object
    for f in range(3):
        box.location = (STEP_X * f, STEP_Y * f, 0.0)
        box.keyframe_insert("location", frame=f)
    cam = bpy.data.objects.new("cam", bpy.data.cameras.new("cam"))
    scene.collection.objects.link(cam)
    cam.location = (0.0, 0.0, 10.0)  # looking down -Z: image x = world X, image up = world Y
    scene.camera = cam
    scene.frame_start, scene.frame_end = 0, 2
    return box


def test_motion_pass_is_backward_flow_in_image_coordinates(scene, tmp_path):
    from blender_addon.render import RenderSettings, render_passes

    _moving_box(scene)
    settings = RenderSettings(passes=("rgb", "depth", "motion"), width=64, height=48, frames=(0, 2), engine="workbench")
    render_passes(tmp_path, settings, scene, progress=False)
    ps = PassSet.open(tmp_path)
    assert ps.meta["passes"]["motion"]["units"] == "px" and ps.meta["passes"]["motion"]["channels"] == ["dx", "dy"]
    cams = ps.cameras()
    assert np.array_equal(ps.read("motion", 0), np.zeros((48, 64, 2), np.float32))  # first frame: zeros
    for f in (1, 2):
        flow, depth = ps.read("motion", f), ps.read("depth", f)
        assert flow.shape == (48, 64, 2) and flow.dtype == np.float32
        # truth: the box's top face (z = 1) projected through this frame's camera at f-1 and f
        top = lambda k: np.array([STEP_X * k, 1.0, -STEP_Y * k])  # canonical Y-up world: Blender (x, y, z) -> (x, z, -y)  # noqa: E731
        (x1, y1), _ = cams[f].project(top(f))
        (x0, y0), _ = cams[f].project(top(f - 1))
        expect = np.array([x0 - x1, y0 - y1])  # backward: where the content was in the previous frame
        assert expect[0] < -3 and expect[1] > 1  # moved right (x grows) and up (y shrinks) on screen
        on_box = depth < 9.5  # the top face is 9 m from the camera, the floor-less background is 10000
        inner = on_box & (np.abs(np.arange(64)[None] + 0.5 - x1) < 6) & (np.abs(np.arange(48)[:, None] + 0.5 - y1) < 6)
        assert inner.sum() > 50
        assert np.allclose(flow[inner], expect, atol=0.02), (flow[inner].mean(0), expect)
        assert np.all(flow[depth >= BACKGROUND_DEPTH] == 0)
        # and as a warp: the box mask of frame N is the mask of frame N-1 fetched at (x + dx, y + dy)
        prev_box = ps.read("depth", f - 1) < 9.5
        yy, xx = np.nonzero(inner)
        fetched = prev_box[np.round(yy + 0.5 + flow[yy, xx, 1] - 0.5).astype(int), np.round(xx + 0.5 + flow[yy, xx, 0] - 0.5).astype(int)]
        assert fetched.all()
    # stylize reads Blender's file as its exact motion (auto picks it; flow(N, N-1) is the pass itself)
    from stylize.motion import choose_motion
    from stylize.sources import PassSource

    motion = choose_motion("auto", "", PassSource(tmp_path))
    assert motion.describe()["method"] == "motion-pass"
    assert np.array_equal(motion.flow(2, 1), ps.read("motion", 2)) and np.array_equal(motion.flow(1, 0), ps.read("motion", 1))


def _wall_and_lamp(scene, *, soft: bool = False):
    """A white matte wall facing the camera, lit by a point light off to one side (``soft``: a
    large area light and a grey sky instead, the light that makes path tracing grainy)."""
    bpy.ops.mesh.primitive_plane_add(size=12.0, location=(0.0, 0.0, 0.0))
    wall = bpy.context.object
    mat = bpy.data.materials.new("white")
    mat.use_nodes = True
    bsdf = mat.node_tree.nodes.get("Principled BSDF")
    bsdf.inputs["Base Color"].default_value = (0.8, 0.8, 0.8, 1.0)
    bsdf.inputs["Roughness"].default_value = 1.0
    if "Specular IOR Level" in bsdf.inputs:
        bsdf.inputs["Specular IOR Level"].default_value = 0.0
    wall.data.materials.append(mat)
    lamp = bpy.data.objects.new("lamp", bpy.data.lights.new("lamp", "AREA" if soft else "POINT"))
    lamp.data.energy = 400.0
    lamp.location = (-2.5, 0.0, 1.0)
    scene.collection.objects.link(lamp)
    if soft:
        lamp.data.size = 4.0
        lamp.location = (-3.0, 0.0, 3.0)
        lamp.rotation_euler = (0.0, -0.8, 0.0)
        scene.world = bpy.data.worlds.new("sky")
        scene.world.use_nodes = True
        scene.world.node_tree.nodes["Background"].inputs["Color"].default_value = (0.3, 0.3, 0.3, 1.0)
    cam = bpy.data.objects.new("cam", bpy.data.cameras.new("cam"))
    cam.location = (0.0, 0.0, 6.0)
    scene.collection.objects.link(cam)
    scene.camera = cam
    scene.frame_start = scene.frame_end = 0
    scene.view_settings.view_transform = "Standard"
    return wall


def test_light_pass_is_the_linear_light_the_render_shows_on_a_white_wall(scene, tmp_path):
    from blender_addon.render import RenderSettings, render_passes

    _wall_and_lamp(scene)
    render_passes(tmp_path, RenderSettings(passes=("rgb", "light"), width=48, height=32, samples=64, frames=(0, 0)), scene, progress=False)
    ps = PassSet.open(tmp_path)
    light, rgb = ps.read("light", 0), ps.read("rgb", 0)
    assert light.dtype == np.float32 and light.shape == (32, 48, 3)
    assert ps.meta["passes"]["light"]["kind"] == "irradiance" and ps.meta["passes"]["light"]["linear"]
    row = light[16, :, 0]
    assert row[8] > 2 * row[40]  # brighter on the lamp's side: a gradient, not one factor
    # the render is the wall's colour (0.8) times that light, through the Standard view (sRGB)
    lin = rgb.astype(np.float64) / 255
    lin = np.where(lin <= 0.04045, lin / 12.92, ((lin + 0.055) / 1.055) ** 2.4)
    lit = (light[..., 0] * 0.8 > 0.05) & (light[..., 0] * 0.8 < 0.95)
    assert np.median(np.abs(lin[..., 0][lit] / (0.8 * light[..., 0][lit]) - 1)) < 0.05


def _noise(img: np.ndarray) -> float:
    """Immerkaer's noise sigma (8-bit levels) of the flat wall, green channel (composite's measure)."""
    from composite.grain import measure_noise

    return float(measure_noise(img)[1])


def test_denoise_brings_the_flat_wall_below_the_noise_threshold(scene, tmp_path):
    from blender_addon.render import RenderSettings, render_passes

    _wall_and_lamp(scene, soft=True)
    base = dict(passes=("rgb",), width=96, height=64, samples=4, frames=(0, 0))
    render_passes(tmp_path / "raw", RenderSettings(**base, denoise=False), scene, progress=False)
    render_passes(tmp_path / "oidn", RenderSettings(**base, denoise=True), scene, progress=False)
    raw = _noise(PassSet.open(tmp_path / "raw").read("rgb", 0))
    clean = _noise(PassSet.open(tmp_path / "oidn").read("rgb", 0))
    print({"noise_4spp": round(raw, 2), "noise_4spp_oidn": round(clean, 2)})
    assert raw > 0.8  # 4 samples without a denoiser: grainy (the eye sees ~0.5 level of grain on a flat wall)
    assert clean < NOISE_MAX and clean < raw / 4


def test_motion_pass_every_2nd_frame_is_said_before_the_render():
    """Blender's Vector pass is the motion to the scene frame before: with --step 2 that frame is
    not rendered, so the CLI says so up front (stylize then estimates the motion, tests/stylize)."""
    from blender_addon.render import RenderSettings

    assert RenderSettings(passes=("rgb", "motion"), step=1).warnings() == []
    assert RenderSettings(passes=("rgb", "depth"), step=2).warnings() == []
    (w,) = RenderSettings(passes=("rgb", "motion"), step=2).warnings()
    assert w.startswith("motion: with --step 2") and "not rendered" in w

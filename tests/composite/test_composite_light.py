"""Light per pixel against a real render: an actor stand-in beside a point light, rendered with
bpy, and a flat plate actor composited in its place with the render's own light pass."""

from __future__ import annotations

import cv2
import numpy as np

from machinima.imageseq import find_frame
import pytest

from composite.chain import ChainSettings
from composite.pipeline import CompositeSettings, run_composite
from composite.placement import PlacementSettings
from machinima.imageseq import read_image, write_image
from machinima.passes import PassSet
from machinima.take import Take

CARD_W, CARD_H = 0.6, 1.8  # metres: the stand-in where the actor will stand
ALBEDO = 0.8  # the stand-in's colour (linear); the plate's grey is the same colour in sRGB
PLATE_GREY = 231  # sRGB 8-bit of linear 0.8


def _lin(u8: np.ndarray) -> np.ndarray:
    v = u8.astype(np.float64) / 255
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def _render_set(take_dir, w: int, h: int) -> None:
    """Floor, a white matte card 0.6 x 1.8 m standing 5 m in front of the camera, a point light
    0.9 m to its left and in front: rendered into the take's passes (rgb, depth, normal, light)."""
    bpy = pytest.importorskip("bpy")
    from blender_addon.render import RenderSettings, render_passes

    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene

    def matte(name, grey):
        mat = bpy.data.materials.new(name)
        mat.use_nodes = True
        bsdf = mat.node_tree.nodes.get("Principled BSDF")
        bsdf.inputs["Base Color"].default_value = (grey, grey, grey, 1.0)
        bsdf.inputs["Roughness"].default_value = 1.0
        if "Specular IOR Level" in bsdf.inputs:
            bsdf.inputs["Specular IOR Level"].default_value = 0.0
        return mat

    bpy.ops.mesh.primitive_plane_add(size=20.0, location=(0.0, 0.0, 0.0))
    bpy.context.object.data.materials.append(matte("floor", 0.3))
    bpy.ops.mesh.primitive_plane_add(size=1.0, location=(0.0, 0.0, CARD_H / 2), rotation=(np.pi / 2, 0.0, 0.0))
    card = bpy.context.object
    card.scale = (CARD_W, CARD_H, 1.0)
    card.data.materials.append(matte("card", ALBEDO))
    lamp = bpy.data.objects.new("lamp", bpy.data.lights.new("lamp", "POINT"))
    lamp.data.energy = 40.0
    lamp.data.shadow_soft_size = 0.05
    lamp.location = (-0.9, -0.6, 1.3)
    scene.collection.objects.link(lamp)
    cam = bpy.data.objects.new("cam", bpy.data.cameras.new("cam"))
    cam.location = (0.0, -5.0, 0.9)
    cam.rotation_euler = (np.pi / 2, 0.0, 0.0)  # looking along +Y, level
    cam.data.lens = 35
    scene.collection.objects.link(cam)
    scene.camera = cam
    scene.frame_start = scene.frame_end = 0
    scene.view_settings.view_transform = "Standard"
    render_passes(take_dir / "passes", RenderSettings(passes=("rgb", "depth", "normal", "light"), width=w, height=h, samples=64,
                                                      frames=(0, 0)), scene, progress=False)


def test_actor_beside_a_point_light_gets_the_renders_gradient(tmp_path):
    pytest.importorskip("bpy")
    w, h = 96, 72
    take = Take.create(tmp_path / "takes", production="t", scene="light", shot="c", fps=24)
    take.finalize()
    take_dir = take.path
    take.close()
    _render_set(take_dir, w, h)
    ps = PassSet.open(take_dir / "passes")
    render = ps.read("rgb", 0)
    # the plate: a flat grey actor of the card's shape, feet at the bottom, on an alpha matte
    plate = np.zeros((360, 240, 4), np.uint8)
    plate[30:330, 70:170, :3] = PLATE_GREY
    plate[30:330, 70:170, 3] = 255
    write_image(tmp_path / "plate" / "000000.png", plate)
    base = dict(plate=tmp_path / "plate", matte="alpha", color_match="none", grain="none", video=False,
                placement=PlacementSettings(position=(0.0, 0.0, 0.0), height_m=CARD_H),
                chain=ChainSettings(wrap_strength=0.0, shadow_opacity=0.0))
    ours = run_composite(take_dir, CompositeSettings(**base, light="pass", step_id="per-pixel"), progress=False)
    flat = run_composite(take_dir, CompositeSettings(**base, light="contact", step_id="at-feet"), progress=False)
    assert ours.info["light"] == ["pass", "light"]
    cover = read_image(find_frame(ours.out_dir / "alpha", 0))
    card = ps.read("normal", 0)[..., 2] > 0.9  # faces the camera: the stand-in
    inside = cv2.erode(((cover == 255) & card).astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    assert inside.sum() > 100
    inside &= render[..., 1] < 250  # not clipped by the 8-bit render
    truth = _lin(render[..., 1])[inside]  # what Blender renders on a surface of the plate's colour there
    got = _lin(read_image(find_frame(ours.out_dir / "rgb", 0))[..., 1])[inside]
    baseline = _lin(read_image(find_frame(flat.out_dir / "rgb", 0))[..., 1])[inside]
    assert truth.max() > 2 * truth.min()  # the light falls off across the body
    err, err_base = np.abs(got / truth - 1), np.abs(baseline / truth - 1)
    print({"within_5pct": round(float((err <= 0.05).mean()), 3), "median_err": round(float(np.median(err)), 4),
           "baseline_median_err": round(float(np.median(err_base)), 4)})
    assert np.median(err) < 0.02 and np.percentile(err, 95) <= 0.05  # the render's gradient within 5 %
    assert np.median(err_base) > 0.15  # one factor at the feet misses it

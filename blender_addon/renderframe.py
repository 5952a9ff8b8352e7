"""One frame's renders (bpy): the look (rgb, and the light pass from the same Cycles render) and the
data renders (depth + object ids, normals, and Cycles' Vector pass for ``motion``).

Every render changes the scene only through ``Saved``, which puts the artist's settings back.
Renders go to a temporary folder beside the passes; a multi-layer EXR (all view-layer passes)
is read back with ``exrlayers.read_passes``, the look's PNG is the render result saved with the
scene's own colour management, exactly what ``write_still`` to PNG gives.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import bpy
import numpy as np

from machinima.passes import BACKGROUND_DEPTH

from .build import node_tree
from .errors import RenderError

ENGINES = {"cycles": "CYCLES", "eevee": "BLENDER_EEVEE", "workbench": "BLENDER_WORKBENCH"}


class Saved:
    """Remember attributes and put them back (data renders must not change the artist's scene)."""

    def __init__(self) -> None:
        self.items: list[tuple[Any, str, Any]] = []

    def set(self, owner: Any, attr: str, value: Any) -> None:
        self.items.append((owner, attr, getattr(owner, attr)))
        setattr(owner, attr, value)

    def maybe(self, owner: Any, attr: str, value: Any) -> None:
        """``set`` when this Blender has the attribute and accepts the value (enum items change between versions)."""
        if hasattr(owner, attr):
            try:
                self.set(owner, attr, value)
            except TypeError:
                self.items.pop()

    def restore(self) -> None:
        for owner, attr, value in reversed(self.items):
            try:
                setattr(owner, attr, value)
            except (AttributeError, TypeError, ReferenceError):
                pass
        self.items.clear()


def engine_id(name: str) -> str:
    ident = ENGINES[name]
    items = {e.identifier for e in bpy.types.RenderSettings.bl_rna.properties["engine"].enum_items}
    if ident == "BLENDER_EEVEE" and ident not in items and "BLENDER_EEVEE_NEXT" in items:
        return "BLENDER_EEVEE_NEXT"  # Blender 4.2-4.4
    return ident


def view_layer(scene: bpy.types.Scene) -> bpy.types.ViewLayer:
    """The view layer a render of ``scene`` uses (single-layer renders render the active one)."""
    return bpy.context.view_layer if bpy.context.scene == scene else scene.view_layers[0]


# The render's temporary EXR is written once and read back at once: no compression codes fastest
# both ways (the disk is not the bottleneck). The passes kept are encoded by machinima.passes.PASS_ENCODING.
TEMP_EXR_CODEC = "NONE"


def _multilayer(saved: Saved, im: Any) -> None:
    """Render output: a float multi-layer EXR with every view-layer pass (4.2-4.x: a file format; 5.x: a media type)."""
    if "media_type" in im.bl_rna.properties and "MULTI_LAYER_IMAGE" in {e.identifier for e in im.bl_rna.properties["media_type"].enum_items}:
        saved.set(im, "media_type", "MULTI_LAYER_IMAGE")
    else:
        saved.set(im, "file_format", "OPEN_EXR_MULTILAYER")
    saved.set(im, "color_depth", "32")
    saved.maybe(im, "exr_codec", TEMP_EXR_CODEC)


def _override_material(kind: str) -> bpy.types.Material:
    name = f"machinima {kind} pass"
    mat = bpy.data.materials.get(name)
    if mat is not None:
        return mat
    mat = bpy.data.materials.new(name)
    nt = node_tree(mat)
    nt.nodes.clear()
    out = nt.nodes.new("ShaderNodeOutputMaterial")
    em = nt.nodes.new("ShaderNodeEmission")
    em.inputs["Strength"].default_value = 1.0
    nt.links.new(em.outputs[0], out.inputs["Surface"])
    comb = nt.nodes.new("ShaderNodeCombineXYZ")
    nt.links.new(comb.outputs[0], em.inputs["Color"])
    if kind == "depth":
        cam = nt.nodes.new("ShaderNodeCameraData")
        info = nt.nodes.new("ShaderNodeObjectInfo")
        nt.links.new(cam.outputs["View Z Depth"], comb.inputs[0])
        nt.links.new(info.outputs["Object Index"], comb.inputs[1])
    else:
        geo = nt.nodes.new("ShaderNodeNewGeometry")
        vt = nt.nodes.new("ShaderNodeVectorTransform")
        vt.vector_type, vt.convert_from, vt.convert_to = "NORMAL", "WORLD", "CAMERA"
        nt.links.new(geo.outputs["Normal"], vt.inputs[0])
        sep = nt.nodes.new("ShaderNodeSeparateXYZ")
        nt.links.new(vt.outputs[0], sep.inputs[0])
        # Cycles' camera space is +X right, +Y up, +Z forward (into the scene): flip Z for OpenGL axes
        neg_z = nt.nodes.new("ShaderNodeMath")
        neg_z.operation = "MULTIPLY"
        neg_z.inputs[1].default_value = -1.0
        nt.links.new(sep.outputs[0], comb.inputs[0])
        nt.links.new(sep.outputs[2], neg_z.inputs[0])
        nt.links.new(sep.outputs[1], comb.inputs[1])
        nt.links.new(neg_z.outputs[0], comb.inputs[2])
    return mat


def _data_world(value: tuple[float, float, float]) -> bpy.types.World:
    name = f"machinima data world {value}"
    world = bpy.data.worlds.get(name) or bpy.data.worlds.new(name)
    nt = node_tree(world)
    bg = next((n for n in nt.nodes if n.type == "BACKGROUND"), None) or nt.nodes.new("ShaderNodeBackground")
    out = next((n for n in nt.nodes if n.type == "OUTPUT_WORLD"), None) or nt.nodes.new("ShaderNodeOutputWorld")
    nt.links.new(bg.outputs[0], out.inputs["Surface"])
    bg.inputs["Color"].default_value = (*value, 1.0)
    bg.inputs["Strength"].default_value = 1.0
    return world


def _render_to(scene: bpy.types.Scene, path: Path) -> None:
    scene.render.filepath = str(path)
    bpy.ops.render.render(write_still=True, scene=scene.name)
    if not path.exists():
        raise RenderError(f"Blender rendered nothing to {path}; check the console for Blender's own error")


def data_render(scene: bpy.types.Scene, kind: str, tmp: Path, frame: int, *, vector: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """(emitted data HxWx3, Cycles Vector pass HxWx4 or None): one Cycles sample at each pixel
    centre with a material override that emits depth + object index (``depth``) or the normal."""
    from machinima.imageseq import read_image

    saved = Saved()
    try:
        r = scene.render
        saved.set(r, "engine", "CYCLES")
        c = scene.cycles
        for attr, val in (("samples", 1), ("use_denoising", False), ("max_bounces", 0), ("filter_width", 0.01),
                          ("pixel_filter_type", "BOX"), ("use_adaptive_sampling", False), ("device", "CPU"),
                          ("film_transparent_glass", False)):
            saved.maybe(c, attr, val)
        saved.set(r, "film_transparent", False)
        saved.set(r, "use_motion_blur", False)  # (Cycles writes the Vector pass only without motion blur)
        saved.set(r, "use_compositing", False)  # the artist's compositor must not touch data
        saved.set(r, "use_sequencer", False)
        saved.set(r, "use_single_layer", True)
        vs = scene.view_settings
        saved.set(vs, "view_transform", "Standard")
        saved.set(vs, "look", "None")
        saved.set(vs, "exposure", 0.0)
        saved.set(vs, "gamma", 1.0)
        vl = view_layer(scene)
        saved.set(vl, "material_override", _override_material(kind))
        saved.set(scene, "world", _data_world((BACKGROUND_DEPTH, 0.0, 0.0) if kind == "depth" else (0.0, 0.0, 0.0)))
        if scene.camera and scene.camera.type == "CAMERA":
            saved.set(scene.camera.data.dof, "use_dof", False)
        im = r.image_settings
        path = tmp / f"{kind}_{frame}.exr"
        if vector:
            saved.set(vl, "use_pass_vector", True)
            _multilayer(saved, im)
            _render_to(scene, path)
            from .exrlayers import read_passes

            layers = read_passes(path)
            return layers["Combined"][..., :3], layers["Vector"]
        saved.set(im, "file_format", "OPEN_EXR")
        saved.set(im, "color_depth", "32")
        saved.set(im, "color_mode", "RGB")
        saved.maybe(im, "exr_codec", TEMP_EXR_CODEC)
        _render_to(scene, path)
        return read_image(path), None
    finally:
        saved.restore()


def look_render(scene: bpy.types.Scene, engine: str, samples: int, denoise: bool, tmp: Path, frame: int, *,
                light: bool = False) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(rgb uint8 as the scene's colour management shows it, {pass: array}) of the lit scene.

    ``light`` (Cycles only): the diffuse direct/indirect passes of the same render, read from a
    multi-layer EXR; the PNG is the same render result saved with the scene's colour management.
    ``denoise`` (Cycles): OpenImageDenoise on the image with albedo and normal guides.
    """
    from machinima.imageseq import read_image

    if light and engine != "cycles":
        raise RenderError("the light pass comes from Cycles", hint="render it with --engine cycles")
    saved = Saved()
    try:
        r = scene.render
        saved.set(r, "engine", engine_id(engine))
        if engine == "cycles":
            saved.set(r, "use_persistent_data", True)  # keep the BVH between frames of a shot
            saved.set(scene.cycles, "samples", samples)
            saved.set(scene.cycles, "device", "CPU")
            saved.set(scene.cycles, "use_denoising", bool(denoise))
            if denoise:
                saved.maybe(scene.cycles, "denoiser", "OPENIMAGEDENOISE")
                saved.maybe(scene.cycles, "denoising_input_passes", "RGB_ALBEDO_NORMAL")
                saved.maybe(scene.cycles, "denoising_prefilter", "FAST")  # ACCURATE costs 4x the render at 8 samples here
        elif engine == "eevee" and hasattr(scene.eevee, "taa_render_samples"):
            saved.set(scene.eevee, "taa_render_samples", samples)
        elif engine == "workbench":
            saved.set(scene.display.shading, "color_type", "MATERIAL")
            saved.set(scene.display.shading, "light", "STUDIO")
        saved.set(r, "film_transparent", False)
        im = r.image_settings
        png = tmp / f"rgb_{frame}.png"
        if not light:
            saved.set(im, "file_format", "PNG")
            saved.set(im, "color_mode", "RGB")
            saved.set(im, "color_depth", "8")
            _render_to(scene, png)
            return read_image(png), {}
        vl = view_layer(scene)
        saved.set(r, "use_single_layer", True)
        for attr in ("use_pass_diffuse_direct", "use_pass_diffuse_indirect"):
            saved.set(vl, attr, True)
        _multilayer(saved, im)
        exr = tmp / f"look_{frame}.exr"
        _render_to(scene, exr)
        from .exrlayers import read_passes

        layers = read_passes(exr)
        saved.restore()  # back to the artist's output format: the PNG is saved as they would see it
        im = r.image_settings
        saved.set(im, "file_format", "PNG")
        saved.set(im, "color_mode", "RGB")
        saved.set(im, "color_depth", "8")
        bpy.data.images["Render Result"].save_render(str(png), scene=scene)
        return read_image(png), layers
    finally:
        saved.restore()

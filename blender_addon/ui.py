"""The panel (3D View sidebar > Machinima), its operators and settings (bpy).

Operators read their inputs from ``scene.machinima`` (the panel's fields), call the same
functions as the CLI, and report errors with ``self.report({'ERROR'}, message)``.
``register()`` / ``unregister()`` loop over ``classes``.
"""

from __future__ import annotations

from pathlib import Path

import bpy
from bpy.props import EnumProperty, IntProperty, PointerProperty, StringProperty

from machinima.errors import MachinimaError

from .kit import KIT

_LIVE: dict[str, object] = {}  # armature name -> LivePreview while the preview runs


def _settings(context: bpy.types.Context) -> "MachinimaSettings":
    return context.scene.machinima


def _abspath(p: str) -> str:
    return bpy.path.abspath(p) if p else p


class MachinimaSettings(bpy.types.PropertyGroup):
    set_path: StringProperty(name="Set file", subtype="FILE_PATH", description="The .toml/.json set file")
    take_path: StringProperty(name="Take", subtype="DIR_PATH", description="A take folder")
    kit_piece: EnumProperty(name="Piece", items=[(k, k.title(), f"Add a {k} at the 3D cursor") for k in sorted(KIT)], default="box")
    retarget_rig: PointerProperty(name="Rig", type=bpy.types.Object, poll=lambda self, ob: ob.type == "ARMATURE",
                                  description="Import onto this rig instead of making an armature (one performer)")
    bone_map: StringProperty(name="Bone map", subtype="FILE_PATH", description='JSON {"Hips": "rig bone", ...}')
    live_target: PointerProperty(name="Armature", type=bpy.types.Object, poll=lambda self, ob: ob.type == "ARMATURE")
    live_port: IntProperty(name="VMC port", default=39539, min=1, max=65535)
    passes: StringProperty(name="Passes", default="rgb,depth,mask,pose")
    engine: EnumProperty(name="Engine", items=[("cycles", "Cycles", ""), ("eevee", "EEVEE", ""), ("workbench", "Workbench", "")], default="cycles")
    res_x: IntProperty(name="Width", default=960, min=16, max=16384)
    res_y: IntProperty(name="Height", default=540, min=16, max=16384)
    samples: IntProperty(name="Samples", default=16, min=1, max=4096)
    export_path: StringProperty(name="Export to", subtype="FILE_PATH", default="//set.glb")
    export_engine: EnumProperty(name="For", items=[("unity", "Unity", ""), ("unreal", "Unreal", ""), ("godot", "Godot", ""),
                                                   ("blender", "Blender", "")], default="unity")
    export_bones: EnumProperty(name="Bones", items=[("canonical", "Unity humanoid", "Unity HumanBodyBones names"),
                                                    ("vrm0", "VRM 0.x", "VRM 0.x humanoid names (VSeeFace)"),
                                                    ("vrm1", "VRM 1.0", "VRM 1.0 humanoid names")], default="canonical")


class _Op:
    """Shared error reporting: MachinimaError -> one line in the status bar."""

    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):  # noqa: D102 - bpy API
        try:
            msg = self.run(context)
        except MachinimaError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        if msg:
            self.report({"INFO"}, msg)
        return {"FINISHED"}


class MACHINIMA_OT_load_set(_Op, bpy.types.Operator):
    """Choose a set file and build it"""

    bl_idname = "machinima.load_set"
    bl_label = "Load Set"
    filepath: StringProperty(subtype="FILE_PATH")
    filter_glob: StringProperty(default="*.toml;*.json", options={"HIDDEN"})

    def invoke(self, context, event):
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def run(self, context):
        _settings(context).set_path = self.filepath
        from .build import build_set

        return build_set(_abspath(self.filepath), context.scene).summary()


class MACHINIMA_OT_rebuild_set(_Op, bpy.types.Operator):
    """Rebuild the set from its file: changed entries update in place, removed ones go"""

    bl_idname = "machinima.rebuild_set"
    bl_label = "Rebuild Set"

    def run(self, context):
        from .build import build_set
        from .errors import SetFileError

        path = _settings(context).set_path
        if not path:
            raise SetFileError("no set file chosen", hint="use Load Set first")
        return build_set(_abspath(path), context.scene).summary()


class MACHINIMA_OT_add_kit_piece(_Op, bpy.types.Operator):
    """Add a kit piece at the 3D cursor and write it into the set file"""

    bl_idname = "machinima.add_kit_piece"
    bl_label = "Add at Cursor"

    def run(self, context):
        from .build import build_set
        from .errors import SetFileError
        from .setfile import append_prop, load_set, next_prop_id

        st = _settings(context)
        if not st.set_path:
            raise SetFileError("no set file chosen", hint="use Load Set first")
        path = _abspath(st.set_path)
        spec = load_set(path)
        c = context.scene.cursor.location
        pid = next_prop_id(spec, st.kit_piece)
        spec = append_prop(path, {"id": pid, "kit": st.kit_piece, "position": [round(c.x, 3), round(c.z, 3), round(-c.y, 3)]})
        build_set(spec, context.scene)
        return f"added {pid} to {Path(path).name}"


class MACHINIMA_OT_set_camera(_Op, bpy.types.Operator):
    """Make this camera the scene camera"""

    bl_idname = "machinima.set_camera"
    bl_label = "Use Camera"
    name: StringProperty()

    def run(self, context):
        from .errors import RenderError

        ob = bpy.data.objects.get(self.name)
        if ob is None or ob.type != "CAMERA":
            raise RenderError(f"no camera named {self.name!r}")
        context.scene.camera = ob
        return None


class MACHINIMA_OT_import_take(_Op, bpy.types.Operator):
    """Import the take: an armature per performer, engine cameras, markers, frame range"""

    bl_idname = "machinima.import_take"
    bl_label = "Import Take"

    def run(self, context):
        from .errors import TakeImportError
        from .takeimport import import_take

        st = _settings(context)
        if not st.take_path:
            raise TakeImportError("no take folder chosen")
        rig, mapping = None, None
        if st.retarget_rig is not None:
            rig = st.retarget_rig.name
            if st.bone_map:
                import json

                try:
                    mapping = json.loads(Path(_abspath(st.bone_map)).read_text())
                except (OSError, ValueError) as exc:
                    raise TakeImportError(f"bone map {st.bone_map} cannot be read: {exc}") from None
        return import_take(_abspath(st.take_path), context.scene, rig=rig, bone_map=mapping).summary()


class MACHINIMA_OT_live_preview(bpy.types.Operator):
    """Start or stop driving the armature from VMC (OSC over UDP)"""

    bl_idname = "machinima.live_preview"
    bl_label = "Live Preview"
    _timer = None

    def execute(self, context):
        from .live import LivePreview

        st = _settings(context)
        ob = st.live_target
        if ob is None:
            self.report({"ERROR"}, "choose an armature to drive")
            return {"CANCELLED"}
        if ob.name in _LIVE:
            _LIVE.pop(ob.name).close()  # the running modal sees it gone and ends
            self.report({"INFO"}, "live preview stopped")
            return {"FINISHED"}
        if context.window is None:
            self.report({"ERROR"}, "live preview needs the Blender UI; in scripts step blender_addon.live.LivePreview yourself")
            return {"CANCELLED"}
        try:
            _LIVE[ob.name] = LivePreview(ob, port=st.live_port)
        except MachinimaError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self._name = ob.name
        self._timer = context.window_manager.event_timer_add(1 / 60, window=context.window)
        context.window_manager.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        live = _LIVE.get(self._name)
        if live is None:
            context.window_manager.event_timer_remove(self._timer)
            return {"FINISHED"}
        if event.type == "TIMER":
            live.step()
        return {"PASS_THROUGH"}


class MACHINIMA_OT_render_passes(_Op, bpy.types.Operator):
    """Render the passes for post into the take's passes folder"""

    bl_idname = "machinima.render_passes"
    bl_label = "Render Passes"

    def run(self, context):
        from machinima.export import performer_frames
        from machinima.take import Take

        from .errors import RenderError
        from .render import RenderSettings, render_passes
        from .takeimport import take_frames

        st = _settings(context)
        if not st.take_path:
            raise RenderError("no take folder chosen", hint="passes are written into a take")
        take = Take.open(_abspath(st.take_path))
        poses = {}
        for name in take.store.performers():
            stamps, p = performer_frames(take, name)
            poses[name] = (take_frames(take, stamps), p)
        passes = tuple(p.strip() for p in st.passes.split(",") if p.strip())
        settings = RenderSettings(passes=passes, width=st.res_x, height=st.res_y, engine=st.engine, samples=st.samples)
        if "pose" in passes and not poses:
            settings.passes = tuple(p for p in passes if p != "pose")
        rep = render_passes(take.passes_dir(), settings, context.scene, take_poses=poses, fps=str(take.fps), progress=False)
        return rep.summary()


class MACHINIMA_OT_export_set(_Op, bpy.types.Operator):
    """Export the set as .glb or .fbx for Unity or Unreal"""

    bl_idname = "machinima.export_set"
    bl_label = "Export Set"

    def run(self, context):
        from .export import export_set

        st = _settings(context)
        out = export_set(_abspath(st.export_path), engine=st.export_engine, scene=context.scene)
        return f"exported {out}"


class MACHINIMA_OT_export_take(_Op, bpy.types.Operator):
    """Export the take (and the set, if one is built) animated, as .glb or .fbx"""

    bl_idname = "machinima.export_take"
    bl_label = "Export Take"

    def run(self, context):
        from .build import SET_TAG
        from .errors import ExportError
        from .take_export import TakeExportSettings, export_take

        st = _settings(context)
        if not st.take_path:
            raise ExportError("no take folder chosen")
        settings = TakeExportSettings(engine=st.export_engine, bone_names=st.export_bones)
        with_set = any(SET_TAG in o for o in context.scene.objects)
        return export_take(_abspath(st.take_path), _abspath(st.export_path), settings, scene=context.scene, with_set=with_set).summary()


class VIEW3D_PT_machinima(bpy.types.Panel):
    bl_label = "Machinima"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Machinima"

    def draw(self, context):
        from .build import ID_TAG, SET_TAG

        st = _settings(context)
        layout = self.layout
        box = layout.box()
        box.label(text="Set", icon="SCENE_DATA")
        box.prop(st, "set_path")
        row = box.row()
        row.operator("machinima.load_set", icon="FILE_FOLDER")
        row.operator("machinima.rebuild_set", icon="FILE_REFRESH")
        row = box.row()
        row.prop(st, "kit_piece", text="")
        row.operator("machinima.add_kit_piece", icon="ADD")
        cams = sorted((o for o in context.scene.objects if o.type == "CAMERA"), key=lambda o: o.name)
        if cams:
            col = box.column(align=True)
            col.label(text="Cameras")
            for cam in cams:
                r = col.row()
                icon = "CHECKMARK" if context.scene.camera == cam else "CAMERA_DATA"
                label = cam.get(ID_TAG, cam.name) if SET_TAG in cam else cam.name
                r.operator("machinima.set_camera", text=str(label), icon=icon).name = cam.name
        box = layout.box()
        box.label(text="Take", icon="ARMATURE_DATA")
        box.prop(st, "take_path")
        row = box.row()
        row.prop(st, "retarget_rig")
        row.prop(st, "bone_map", text="")
        box.operator("machinima.import_take", icon="IMPORT")
        row = box.row()
        row.prop(st, "live_target", text="")
        row.prop(st, "live_port", text="Port")
        running = st.live_target is not None and st.live_target.name in _LIVE
        box.operator("machinima.live_preview", text="Stop Live Preview" if running else "Start Live Preview",
                     icon="PAUSE" if running else "PLAY")
        box = layout.box()
        box.label(text="Passes", icon="RENDER_RESULT")
        box.prop(st, "passes")
        row = box.row()
        row.prop(st, "res_x")
        row.prop(st, "res_y")
        row = box.row()
        row.prop(st, "engine", text="")
        row.prop(st, "samples")
        box.operator("machinima.render_passes", icon="RENDER_ANIMATION")
        box = layout.box()
        box.label(text="Export", icon="EXPORT")
        box.prop(st, "export_path")
        row = box.row()
        row.prop(st, "export_engine", text="")
        row.prop(st, "export_bones", text="")
        row = box.row()
        row.operator("machinima.export_set", icon="EXPORT")
        row.operator("machinima.export_take", icon="ARMATURE_DATA")


classes = (
    MachinimaSettings,
    MACHINIMA_OT_load_set,
    MACHINIMA_OT_rebuild_set,
    MACHINIMA_OT_add_kit_piece,
    MACHINIMA_OT_set_camera,
    MACHINIMA_OT_import_take,
    MACHINIMA_OT_live_preview,
    MACHINIMA_OT_render_passes,
    MACHINIMA_OT_export_set,
    MACHINIMA_OT_export_take,
    VIEW3D_PT_machinima,
)


def register() -> None:
    for cls in classes:
        bpy.utils.register_class(cls)
    bpy.types.Scene.machinima = PointerProperty(type=MachinimaSettings)


def unregister() -> None:
    for live in list(_LIVE.values()):
        live.close()  # type: ignore[attr-defined]
    _LIVE.clear()
    if hasattr(bpy.types.Scene, "machinima"):
        del bpy.types.Scene.machinima
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)


__all__ = ["classes", "register", "unregister"]

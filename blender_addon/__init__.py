"""machinima's Blender extension: set builder, take import, live preview, render passes, export.

Installed in Blender (4.2+, 5.x) from the zip that ``machinima blender package`` builds, or used
as a Python package through the ``bpy`` module by ``machinima blender ...``. Only this package
imports bpy, and only in its bpy modules (``build``, ``takeimport``, ``armature``, ``rigpose``,
``live``, ``render``, ``export``, ``ui``); ``setfile``, ``kit``, ``posemap`` and ``package`` are plain Python.

Importing this package does not import bpy: ``register``/``unregister`` load the UI lazily.
"""

from __future__ import annotations


def register() -> None:
    from . import ui

    ui.register()


def unregister() -> None:
    from . import ui

    ui.unregister()

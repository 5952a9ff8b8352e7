"""The Blender add-on's exception family (no bpy here)::

    BlenderAddonError(MachinimaError)
    ├── SetFileError      a set file that cannot be read or has a bad entry (names entry and field)
    ├── TakeImportError   a take that cannot be put into the scene (no performers, bad bone map)
    ├── RenderError       render settings that do not make sense, or a missing camera
    ├── ExportError       glTF/FBX export problems
    └── PackageError      the extension zip cannot be built

Operators in the panel report these messages with ``self.report({'ERROR'}, str(exc))``; the
CLI prints them as one line.
"""

from __future__ import annotations

from machinima.errors import MachinimaError


class BlenderAddonError(MachinimaError):
    """Base of the add-on's errors meant for the artist."""


class SetFileError(BlenderAddonError):
    """A set file that cannot be parsed, or an entry with a bad field."""


class TakeImportError(BlenderAddonError):
    """A take that cannot be imported as asked."""


class RenderError(BlenderAddonError):
    """Render options or scene state that cannot give passes."""


class ExportError(BlenderAddonError):
    """The set cannot be exported as asked."""


class PackageError(BlenderAddonError):
    """The extension zip cannot be built."""

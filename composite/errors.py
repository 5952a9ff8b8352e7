"""The composite spoke's exception family (all are ``MachinimaError``: the CLI prints one line).

    CompositeError
    ├── PlateError        the plate is missing, unreadable, the wrong size or shorter than the take
    ├── PassMismatchError the take's passes are missing, or their sizes/frames do not fit together
    ├── PlacementError    the placement puts the actor behind the camera or off the ground
    ├── ModelError        a depth or segmentation model path that is missing or unusable
    └── SettingsError     option values that make no sense (key colour, ranges, modes)
"""

from __future__ import annotations

from machinima.errors import MachinimaError


class CompositeError(MachinimaError):
    """Base of every composite error."""


class PlateError(CompositeError):
    """A plate that cannot be used: missing, unreadable, empty matte or too short."""


class PassMismatchError(CompositeError):
    """Set passes missing or inconsistent (size, frames, camera)."""


class PlacementError(CompositeError):
    """A placement that cannot be seen through the set camera."""


class ModelError(CompositeError):
    """A model folder that is missing or cannot be loaded."""


class SettingsError(CompositeError):
    """An option out of range or an unknown mode."""

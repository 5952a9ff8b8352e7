"""The stylize package's exception family (all are ``MachinimaError``, printed as one line)::

    StylizeError            anything stylize cannot do as asked
    ├── LookError           a look file that cannot be used (names the field)
    ├── ModelMissingError   a model file/folder is not where the look says (names where to put it)
    ├── ControlError        a control cannot be made for a frame (missing pass, wrong size)
    └── SourceError         no frames to stylize (no rgb pass, empty folder, bad frame range)
"""

from __future__ import annotations

from machinima.errors import MachinimaError


class StylizeError(MachinimaError):
    """Stylize cannot do what was asked."""


class LookError(StylizeError):
    """A look file (TOML) that is invalid; the message names the field."""


class ModelMissingError(StylizeError):
    """A model named by the look is missing; the message says which file to put where."""


class ControlError(StylizeError):
    """A control image cannot be made (missing pass, unknown kind, wrong size)."""


class SourceError(StylizeError):
    """The frames to stylize cannot be found or read."""

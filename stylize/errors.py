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
    """A model named by the look is missing; the message says which file to put where, and where
    the trail goes on (issue 26: the one-line error used to be the end of it): which weights to
    get is ``machinima models check`` and docs/models.md."""

    def __str__(self) -> str:
        return f"{super().__str__()}; {WEIGHTS_TRAIL}"


WEIGHTS_TRAIL = "what each look needs and what is missing: `machinima models check`; which weights, from where: docs/models.md"


class ControlError(StylizeError):
    """A control image cannot be made (missing pass, unknown kind, wrong size)."""


class SourceError(StylizeError):
    """The frames to stylize cannot be found or read."""

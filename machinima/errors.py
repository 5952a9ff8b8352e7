"""The core's exception family.

Every error a person can cause (a bad file, a wrong flag, a full disk) is a ``MachinimaError``
with a message that says what to do. The CLI prints such errors as one line, no traceback.
Spokes derive their own family from ``MachinimaError`` so the CLI treats them the same way::

    MachinimaError
    ├── ConfigError          machinima.toml / MACHINIMA_* / flags that do not make sense
    ├── TimecodeError        a timecode string or rate that cannot be parsed
    ├── SkeletonError        unknown bone names, wrong pose array shapes
    ├── BVHError             a BVH file that cannot be read (names the line)
    ├── OSCError             bytes that are not a valid OSC packet (sans-I/O parser errors)
    ├── EditorialError       a cut that cannot be written or read (OTIO / EDL / FCP XML), a post version a take lacks
    └── TakeError            anything about a take folder
        ├── TakeFormatError  take.json missing, truncated or invalid (names the field)
        ├── TakeLockedError  a second writer on a take that is already open for writing
        ├── StoreError       streams.sqlite missing, corrupt, or a record of the wrong shape
        └── DiskFullError    the disk filled up while writing: what was written before stays
"""

from __future__ import annotations


class MachinimaError(Exception):
    """Base of every error meant for a person, not a developer."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint

    def __str__(self) -> str:
        msg = super().__str__()
        return f"{msg} ({self.hint})" if self.hint else msg


class ConfigError(MachinimaError):
    """Configuration that cannot be used."""


class TimecodeError(MachinimaError):
    """A timecode or frame rate that cannot be parsed or represented."""


class SkeletonError(MachinimaError):
    """A bone name or a pose array that does not fit the canonical skeleton."""


class BVHError(MachinimaError):
    """A BVH file that cannot be parsed."""


class OSCError(MachinimaError):
    """Bytes that are not a valid OSC packet."""


class EditorialError(MachinimaError):
    """A cut (timeline) that cannot be written or read, or a take version that does not exist."""


class TakeError(MachinimaError):
    """A take folder that cannot be used as asked."""


class TakeFormatError(TakeError):
    """take.json is missing, truncated, or has an invalid field."""


class TakeLockedError(TakeError):
    """The take is already open for writing by another process."""


class StoreError(TakeError):
    """The streams store is missing, corrupt, or was given a record of the wrong shape."""


class DiskFullError(TakeError):
    """The disk is full; data written before this error is intact."""

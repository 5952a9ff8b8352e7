"""The mocap package's exception family (all derive from ``machinima.errors.MachinimaError``)::

    MocapError              anything a person can fix about capture (ports, files, flags)
    ├── ProfileError        an OSC mapping profile (TOML) that cannot be used; names the field
    ├── XsensError          bytes that are not a usable MVN datagram (parser error; ``reason``)
    └── CalibrationError    a calibration file or capture that cannot be used

Parsers raise their error with a short ``reason`` (a counter key); listeners count and drop,
never crash. ``machinima.vmc.VMCError`` plays the same role for VMC.
"""

from __future__ import annotations

from machinima.errors import MachinimaError


class MocapError(MachinimaError):
    """A capture problem a person can fix."""


class ProfileError(MocapError):
    """An OSC mapping profile that cannot be loaded."""


class XsensError(MocapError):
    """A datagram that is not a usable Xsens MVN network-stream datagram."""

    def __init__(self, message: str, *, reason: str = "bad_datagram", hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.reason = reason


class CalibrationError(MocapError):
    """A calibration that cannot be captured, read or applied."""

"""The stage server's exception family::

    MachinimaError
    └── StageError            the server cannot start or do what was asked (says what to do)
        └── RecordingError    a take could not be created or written (disk full, locked take)

Protocol problems of one client are ``machinima.protocol.ProtocolError``: they are answered
with an ``error`` message or a close reason, never raised out of the server.
"""

from __future__ import annotations

from machinima.errors import MachinimaError


class StageError(MachinimaError):
    """The stage server cannot do what was asked."""


class RecordingError(StageError):
    """A take could not be created or written."""

"""The rights exception family (all ``MachinimaError``: one line, no traceback, on the command line)."""

from __future__ import annotations

from typing import Any, Sequence

from ..errors import MachinimaError


class RightsError(MachinimaError):
    """Base of rights and disclosure errors."""


class NotCleared(RightsError):
    """A subject has no valid rights record for this production and scope."""

    def __init__(self, message: str, *, hint: str | None = None, problems: Sequence[Any] = ()) -> None:
        super().__init__(message, hint=hint)
        self.problems = list(problems)


class RecordFormatError(RightsError):
    """A rights record file is missing a field or has a malformed one."""


class DisclosureError(RightsError):
    """Signing, certificate, manifest or watermark problems."""

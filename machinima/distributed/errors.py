"""The distributed hub's error: one line a person can act on."""

from __future__ import annotations

from ..errors import MachinimaError


class DistributedError(MachinimaError):
    """Ray is missing, the cluster cannot be reached or does not share the take's storage, or a
    chunk failed after its retries."""

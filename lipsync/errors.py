"""The lip-sync exception family (all ``MachinimaError``: one line, no traceback, at the CLI)::

    LipSyncError          lip sync cannot do what was asked
    ├── AudioError        audio that cannot be read: empty, not audio, truncated, no audio track
    ├── TranscriptError   dialogue text with words the dictionary does not know (names them)
    └── MouthModelError   Wav2Lip weights missing or of the wrong shape (says where to put them)
"""

from __future__ import annotations

from machinima.errors import MachinimaError


class LipSyncError(MachinimaError):
    """Lip sync cannot do what was asked."""


class AudioError(LipSyncError):
    """The audio cannot be read or holds no samples."""


class TranscriptError(LipSyncError):
    """The dialogue text cannot be aligned (unknown words, empty text)."""


class MouthModelError(LipSyncError):
    """The mouth network's weights are missing or do not fit the architecture."""

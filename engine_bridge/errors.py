"""The engine bridge's exception family (all are ``MachinimaError``: the CLI prints one line).

    BridgeError
    ├── MappingError          the TOML mapping file: unknown bone, target, bad field (names it)
    ├── PerformerMissingError the mapping asks for a performer the take (or stage) lacks
    ├── TargetError           an engine target that cannot be set up (bad address, port in use)
    └── PluginProtocolError   a plugin message that is not valid JSON / not the protocol

Network faults while running (an unreachable engine, a full socket buffer) are *not* raised:
targets count them and keep going; ``bridge play`` reports the counts at the end.
"""

from __future__ import annotations

from machinima.errors import MachinimaError


class BridgeError(MachinimaError):
    """Base of the engine bridge's errors."""


class MappingError(BridgeError):
    """A mapping file (or mapping flags) that cannot be used."""


class PerformerMissingError(BridgeError):
    """The mapping names a performer that is not in the take / on the stage."""


class TargetError(BridgeError):
    """An engine target that cannot be set up."""


class PluginProtocolError(BridgeError):
    """A plugin message that breaks the protocol; ``code`` is sent back in the error reply."""

    def __init__(self, message: str, *, code: str = "bad_message", hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.code = code

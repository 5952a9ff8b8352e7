"""The stage protocol's shared vocabulary: version, roles, array sizes, error and close codes and
``ProtocolError``. Apart so that the control, frame and token parts of ``machinima.protocol``
import it without importing each other; the protocol itself is specified in that module."""

from __future__ import annotations

from .errors import MachinimaError

PROTOCOL_VERSION = 1
SUBPROTOCOL = "machinima.stage.v1"
ROLES = ("director", "performer", "engine", "observer")
N_BONES = 55
POSE_WIDTH = 7
CAMERA_WIDTH = 12

ERROR_CODES = {
    "bad_json": "the text frame is not a JSON object",
    "bad_message": "a field is missing or has the wrong type",
    "unknown_type": "the message type is not part of this protocol version",
    "version": "the message is for another protocol version",
    "bad_frame": "a binary frame that cannot be decoded",
    "too_big": "a message larger than the server's max_size",
    "rate_limited": "more messages per second than the server allows",
    "forbidden": "the role of this connection may not do that",
    "bad_token": "the token is malformed or not signed by this server",
    "expired_token": "the token has expired",
    "not_recording": "the command needs a running take",
    "already_recording": "a take is already running",
    "not_found": "no such take or client",
    "disk_full": "the disk filled up; recording stopped, what was written stays",
    "server_error": "the server failed to do it (see its log)",
    "closed": "the connection is closed",
    "timeout": "no answer in time",
}

# WebSocket close codes the server uses (the close reason says more, in words).
CLOSE_NORMAL = 1000
CLOSE_TOO_BIG = 1009  # sent by the websockets library for a message over max_size
CLOSE_BAD_TOKEN = 4001
CLOSE_EXPIRED = 4002
CLOSE_FORBIDDEN = 4003
CLOSE_NO_HELLO = 4004
CLOSE_RATE = 4008
CLOSE_SLOW = 4009
CLOSE_KICKED = 4010
CLOSE_REPLACED = 4011  # the same name connected again (a reconnect replaced this one)
CLOSE_SHUTDOWN = 1001
FINAL_CLOSE_CODES = frozenset({CLOSE_BAD_TOKEN, CLOSE_EXPIRED, CLOSE_FORBIDDEN, CLOSE_KICKED, CLOSE_REPLACED})
"""Close codes after which reconnecting with the same token is pointless."""


class ProtocolError(MachinimaError):
    """A message, frame or token that breaks the stage protocol; ``code`` is in ERROR_CODES."""

    def __init__(self, code: str, message: str, *, hint: str | None = None, id: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.code = code
        self.id = id

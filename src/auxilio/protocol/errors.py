"""The one error type of the wire contract, with stable codes.

Codes are part of the protocol: peers and tests match on them, so a value never changes once
shipped. The message is for humans and may change freely.
"""

from __future__ import annotations

from enum import StrEnum


class ProtocolErrorCode(StrEnum):
    MALFORMED = "protocol.malformed"
    UNKNOWN_TYPE = "protocol.unknown_type"
    TOO_LARGE = "protocol.too_large"
    INVALID_FIELD = "protocol.invalid_field"
    UNSUPPORTED_VERSION = "protocol.unsupported_version"
    ILLEGAL_TRANSITION = "protocol.illegal_transition"


class ProtocolError(Exception):
    """A message or frame that does not follow the wire contract."""

    def __init__(self, code: ProtocolErrorCode, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message

"""The wire contract shared by server, agent and technician client.

Imports nothing else from ``auxilio``. See ``docs/protocol.md`` for the prose version.
"""

from auxilio.protocol.app import AppMessage, decode_app_message, encode_app_message
from auxilio.protocol.binary import (
    BINARY_FRAME_VERSION,
    HEADER_SIZE,
    MAX_BINARY_FRAME_BYTES,
    MAX_FRAME_PLAINTEXT,
    ChannelId,
    FrameHeader,
    parse_header,
)
from auxilio.protocol.errors import ProtocolError, ProtocolErrorCode
from auxilio.protocol.frames import (
    MAX_CONTROL_MESSAGE_BYTES,
    ControlMessage,
    encode_message,
    parse_message,
)
from auxilio.protocol.states import SupportSessionState, can_transition, check_transition
from auxilio.protocol.types import Capability, ConsentDecision, SignedDocument
from auxilio.protocol.version import MIN_PROTOCOL_VERSION, PROTOCOL_VERSION, negotiate_version

__all__ = [
    "BINARY_FRAME_VERSION",
    "HEADER_SIZE",
    "MAX_BINARY_FRAME_BYTES",
    "MAX_CONTROL_MESSAGE_BYTES",
    "MAX_FRAME_PLAINTEXT",
    "MIN_PROTOCOL_VERSION",
    "PROTOCOL_VERSION",
    "AppMessage",
    "Capability",
    "ChannelId",
    "ConsentDecision",
    "ControlMessage",
    "FrameHeader",
    "ProtocolError",
    "ProtocolErrorCode",
    "SignedDocument",
    "SupportSessionState",
    "can_transition",
    "check_transition",
    "decode_app_message",
    "encode_app_message",
    "encode_message",
    "negotiate_version",
    "parse_header",
    "parse_message",
]

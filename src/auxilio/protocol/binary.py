"""Binary WebSocket frames: a 3-byte clear header followed by end-to-end ciphertext.

    offset  size  field
    0       1     version   (BINARY_FRAME_VERSION)
    1       1     channel   (ChannelId)
    2       1     flags     (no flag is defined in version 1: must be 0)
    3       ...   E2E body  (8-byte counter, AES-GCM ciphertext + 16-byte tag; crypto.e2e)

The relay reads only the header (to route, meter and record by channel). The header is bound into
the AEAD associated data, so a relay that rewrites it makes the frame fail authentication.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from auxilio.protocol.errors import ProtocolError, ProtocolErrorCode

BINARY_FRAME_VERSION = 1
HEADER_SIZE = 3
# Plaintext limit per frame (the E2E layer enforces it); larger data is chunked by the capability.
MAX_FRAME_PLAINTEXT = 1024 * 1024
# Counter (8) + GCM tag (16) on top of the plaintext.
E2E_OVERHEAD = 8 + 16
MAX_BINARY_FRAME_BYTES = HEADER_SIZE + E2E_OVERHEAD + MAX_FRAME_PLAINTEXT


class ChannelId(IntEnum):
    """Logical channels multiplexed on one connection; each has its own frame counters."""

    CONTROL_E2E = 0  # key confirmation and end-to-end control (AppMessage JSON)
    CHAT = 1
    TERMINAL = 2
    FILES = 3
    SCREEN = 4
    INPUT = 5
    DIAGNOSTICS = 6
    RUNBOOKS = 7
    CLIPBOARD = 8


@dataclass(frozen=True, slots=True)
class FrameHeader:
    channel: ChannelId
    flags: int = 0
    version: int = BINARY_FRAME_VERSION

    def encode(self) -> bytes:
        return bytes((self.version, int(self.channel), self.flags))


def parse_header(frame: bytes) -> FrameHeader:
    """Read and check the clear header of a binary frame (the body is left to the E2E layer)."""
    if len(frame) > MAX_BINARY_FRAME_BYTES:
        raise ProtocolError(
            ProtocolErrorCode.TOO_LARGE,
            f"binary frame is {len(frame)} bytes, the limit is {MAX_BINARY_FRAME_BYTES}",
        )
    if len(frame) < HEADER_SIZE:
        raise ProtocolError(ProtocolErrorCode.MALFORMED, "binary frame shorter than its header")
    version, channel, flags = frame[0], frame[1], frame[2]
    if version != BINARY_FRAME_VERSION:
        raise ProtocolError(
            ProtocolErrorCode.UNSUPPORTED_VERSION, f"binary frame version {version}"
        )
    try:
        channel_id = ChannelId(channel)
    except ValueError:
        raise ProtocolError(
            ProtocolErrorCode.INVALID_FIELD, f"unknown channel id {channel}"
        ) from None
    if flags != 0:
        raise ProtocolError(ProtocolErrorCode.INVALID_FIELD, f"undefined flags 0x{flags:02x}")
    return FrameHeader(channel=channel_id, flags=flags, version=version)

"""Forwarding between the two peers of a support session, blind to content.

A binary frame is checked for its size and the version byte of its clear header, nothing else:
the rest is ciphertext that only the peers can open, and the peers (not the relay) detect a
replayed, reordered or altered frame. Text frames that the server relays unchanged (the E2E
handshake) are forwarded as the exact text received, so no re-serialisation can alter them.
"""

from __future__ import annotations

from auxilio.protocol.binary import BINARY_FRAME_VERSION, HEADER_SIZE, MAX_BINARY_FRAME_BYTES
from auxilio.protocol.errors import ProtocolError, ProtocolErrorCode
from auxilio.server.relay.bus import BusMessage
from auxilio.server.relay.hub import Hub, Peer


def check_binary_frame(frame: bytes) -> None:
    """Raise ``ProtocolError`` for a frame the relay must not forward."""
    if len(frame) > MAX_BINARY_FRAME_BYTES:
        raise ProtocolError(
            ProtocolErrorCode.TOO_LARGE,
            f"binary frame is {len(frame)} bytes, the limit is {MAX_BINARY_FRAME_BYTES}",
        )
    if len(frame) < HEADER_SIZE:
        raise ProtocolError(ProtocolErrorCode.MALFORMED, "binary frame shorter than its header")
    if frame[0] != BINARY_FRAME_VERSION:
        raise ProtocolError(
            ProtocolErrorCode.UNSUPPORTED_VERSION, f"binary frame version {frame[0]}"
        )


async def relay_binary(hub: Hub, support_session_id: str, sender: Peer, frame: bytes) -> int:
    """Check, record (a recorded session only) and forward one binary frame; the number of
    peers that took it (0 or 1). Recorded before forwarding, so the recording holds every frame
    the peer may have seen."""
    check_binary_frame(frame)
    hub.record_frame(support_session_id, sender, frame)
    return await hub.relay(support_session_id, sender, BusMessage.binary(frame))


async def relay_text(hub: Hub, support_session_id: str, sender: Peer, raw: str) -> int:
    """Forward a control message unchanged (E2E handshake, capability revocations)."""
    return await hub.relay(support_session_id, sender, BusMessage.text(raw))

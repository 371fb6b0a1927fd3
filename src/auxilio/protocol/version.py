"""Protocol version and the negotiation rule.

Rule: each peer announces the highest version it speaks and the lowest it still accepts. The
server picks the highest version both support, that is ``min(server_max, agent_max)``, provided it
is not below either peer's minimum; otherwise the connection is refused with
``protocol.unsupported_version``. A version number only ever grows; a change that an older peer
could misread (a renamed field, a new meaning) bumps it, while a new optional field or a new message
type that older peers answer with ``protocol.unknown_type`` does not.
"""

from __future__ import annotations

from auxilio.protocol.errors import ProtocolError, ProtocolErrorCode

PROTOCOL_VERSION = 1
MIN_PROTOCOL_VERSION = 1


def negotiate_version(
    *,
    peer_max: int,
    peer_min: int,
    local_max: int = PROTOCOL_VERSION,
    local_min: int = MIN_PROTOCOL_VERSION,
) -> int:
    """Return the version both peers will speak, or raise ``protocol.unsupported_version``."""
    if peer_min > peer_max:
        raise ProtocolError(
            ProtocolErrorCode.INVALID_FIELD,
            f"min_protocol_version {peer_min} is above protocol_version {peer_max}",
        )
    chosen = min(local_max, peer_max)
    if chosen < max(local_min, peer_min):
        raise ProtocolError(
            ProtocolErrorCode.UNSUPPORTED_VERSION,
            f"no common version: peer speaks {peer_min}..{peer_max}, "
            f"we speak {local_min}..{local_max}",
        )
    return chosen

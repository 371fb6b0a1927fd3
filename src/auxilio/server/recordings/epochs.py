"""Which E2E epoch a handshake starts, as the relay sees it (public values only)."""

from __future__ import annotations

from auxilio.crypto.e2e import transcript_hash
from auxilio.crypto.keys import b64url_decode
from auxilio.protocol.frames import E2EHello


def recording_epoch(hello: E2EHello) -> bytes:
    """The transcript hash of the handshake ``hello`` starts: the same value the agent names in
    its ``recording.key``, computed here from the two public keys the hello carries. A hello
    with mismatched keys simply names an epoch no sealed keys will ever match."""
    return transcript_hash(
        hello.support_session_id,
        b64url_decode(hello.agent_ephemeral_key),
        b64url_decode(hello.technician_ephemeral_key),
    )

"""What the agent seals to the auditor key named in its verified grant: activity details, and in
a recorded session each E2E epoch's keys. Without an auditor key in the grant nothing is sealed,
and nothing of the details leaves the device."""

from __future__ import annotations

from auxilio.agent.connection import new_id
from auxilio.crypto.e2e import SessionKeys
from auxilio.crypto.grants import Grant
from auxilio.crypto.keys import b64url_encode, decode_x25519_public_key
from auxilio.crypto.sealed import seal_activity_details, seal_recording_keys
from auxilio.protocol.frames import RecordingKey


def seal_details(grant: Grant, details: str) -> str | None:
    """base64url of the sealed details; ``None`` without an auditor key or details."""
    if grant.auditor_public_key is None or not details:
        return None
    recipient = decode_x25519_public_key(grant.auditor_public_key)
    return b64url_encode(seal_activity_details(recipient, grant.support_session_id, details))


def recording_key_message(grant: Grant, keys: SessionKeys) -> RecordingKey | None:
    """``recording.key`` for a new epoch of a recorded session; ``None`` when the grant does not
    say "recorded" (the person was told it is not) or names no auditor key."""
    if not grant.recorded or grant.auditor_public_key is None:
        return None
    box = seal_recording_keys(
        decode_x25519_public_key(grant.auditor_public_key),
        grant.support_session_id,
        epoch=keys.transcript,
        agent_to_technician=keys.agent_to_technician,
        technician_to_agent=keys.technician_to_agent,
    )
    return RecordingKey(
        id=new_id(),
        support_session_id=grant.support_session_id,
        epoch=b64url_encode(keys.transcript),
        sealed_keys=b64url_encode(box),
    )

"""What the agent seals to the grant's auditor key, and what it sends when there is none."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from auxilio.agent.sealing import recording_key_message, seal_details
from auxilio.crypto.e2e import derive_session_keys
from auxilio.crypto.keys import b64url_decode, b64url_encode
from auxilio.crypto.sealed import MAX_DETAILS_BYTES, open_activity_details, open_recording_keys
from tests.agent.factories import make_grant


def _keys() -> object:
    return derive_session_keys(
        bytes(range(32)),
        support_session_id="ss-1001",
        agent_public=bytes(32),
        technician_public=bytes([1]) * 32,
    )


def test_details_are_sealed_to_the_grant_auditor_key_and_bound_to_the_session() -> None:
    auditor = X25519PrivateKey.generate()
    _, grant = make_grant(
        Ed25519PrivateKey.generate(),
        Ed25519PrivateKey.generate().public_key(),
        X25519PrivateKey.generate(),
        auditor_public_key=auditor.public_key(),
    )
    sealed = seal_details(grant, "rm -rf ~/tmp/cache")
    assert sealed is not None and "rm -rf" not in sealed
    assert open_activity_details(auditor, "ss-1001", b64url_decode(sealed)) == "rm -rf ~/tmp/cache"


def test_long_details_are_cut_on_a_character_boundary() -> None:
    auditor = X25519PrivateKey.generate()
    _, grant = make_grant(
        Ed25519PrivateKey.generate(),
        Ed25519PrivateKey.generate().public_key(),
        X25519PrivateKey.generate(),
        auditor_public_key=auditor.public_key(),
    )
    sealed = seal_details(grant, "é" * MAX_DETAILS_BYTES)
    assert sealed is not None
    opened = open_activity_details(auditor, "ss-1001", b64url_decode(sealed))
    assert opened == "é" * (MAX_DETAILS_BYTES // 2)


def test_without_an_auditor_key_no_details_leave_the_device() -> None:
    _, grant = make_grant(
        Ed25519PrivateKey.generate(),
        Ed25519PrivateKey.generate().public_key(),
        X25519PrivateKey.generate(),
    )
    assert grant.auditor_public_key is None
    assert seal_details(grant, "cat /etc/passwd") is None


def test_recording_keys_are_sent_only_for_a_recorded_grant_with_an_auditor_key() -> None:
    auditor = X25519PrivateKey.generate()
    server, device = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate().public_key()
    keys = _keys()
    _, unrecorded = make_grant(
        server, device, X25519PrivateKey.generate(), auditor_public_key=auditor.public_key()
    )
    assert recording_key_message(unrecorded, keys) is None  # type: ignore[arg-type]
    _, recorded = make_grant(
        server,
        device,
        X25519PrivateKey.generate(),
        recorded=True,
        auditor_public_key=auditor.public_key(),
    )
    message = recording_key_message(recorded, keys)  # type: ignore[arg-type]
    assert message is not None
    assert message.epoch == b64url_encode(keys.transcript)  # type: ignore[attr-defined]
    a2t, t2a = open_recording_keys(
        auditor,
        "ss-1001",
        epoch=keys.transcript,  # type: ignore[attr-defined]
        box=b64url_decode(message.sealed_keys),
    )
    assert (a2t, t2a) == (keys.agent_to_technician, keys.technician_to_agent)  # type: ignore[attr-defined]

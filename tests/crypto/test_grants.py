from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from auxilio.crypto.errors import (
    CryptoError,
    GrantExpired,
    GrantMalformed,
    GrantNotYetValid,
    GrantSignatureInvalid,
    GrantWrongDevice,
)
from auxilio.crypto.grants import Grant, sign_grant, verify_grant
from auxilio.crypto.keys import encode_public_key, fingerprint
from auxilio.crypto.receipts import verify_receipt
from auxilio.crypto.signing import DocumentKind, sign_document
from auxilio.protocol.types import Capability, CapabilityGrant

from .factories import NOW, GrantFactory


def test_an_issued_grant_verifies_on_its_device(
    make_grant: GrantFactory,
    server_key: Ed25519PrivateKey,
    device_key: Ed25519PrivateKey,
    technician_key: X25519PrivateKey,
) -> None:
    signed, _ = make_grant()
    grant = verify_grant(
        server_key.public_key(),
        signed,
        device_id="dev-9",
        now=NOW,
        device_public_key=device_key.public_key(),
    )
    assert grant.technician_name == "Ana López"
    assert grant.technician_e2e_key == encode_public_key(technician_key.public_key())
    assert grant.technician_key_fingerprint == fingerprint(technician_key.public_key())
    assert [c.capability for c in grant.capabilities] == [Capability.TERMINAL, Capability.FILES]
    assert grant.capabilities[1].limits.paths == ("/var/log",)
    assert len(grant.nonce) == 22


def test_each_grant_gets_a_fresh_nonce(make_grant: GrantFactory) -> None:
    assert make_grant()[1].nonce != make_grant()[1].nonce


def test_it_rejects_a_grant_signed_by_another_server(make_grant: GrantFactory) -> None:
    signed, _ = make_grant()
    with pytest.raises(GrantSignatureInvalid) as caught:
        verify_grant(Ed25519PrivateKey.generate().public_key(), signed, device_id="dev-9", now=NOW)
    assert caught.value.code == "grant.bad_signature"
    assert isinstance(caught.value, CryptoError)


def test_it_rejects_an_expired_grant(
    make_grant: GrantFactory, server_key: Ed25519PrivateKey
) -> None:
    signed, _ = make_grant()
    with pytest.raises(GrantExpired) as caught:
        verify_grant(
            server_key.public_key(), signed, device_id="dev-9", now=NOW + timedelta(hours=1)
        )
    assert caught.value.code == "grant.expired"


def test_it_rejects_a_grant_for_another_device(
    make_grant: GrantFactory, server_key: Ed25519PrivateKey
) -> None:
    signed, _ = make_grant()
    with pytest.raises(GrantWrongDevice) as caught:
        verify_grant(server_key.public_key(), signed, device_id="dev-10", now=NOW)
    assert caught.value.code == "grant.wrong_device"


def test_it_rejects_a_grant_naming_another_device_key(
    make_grant: GrantFactory, server_key: Ed25519PrivateKey
) -> None:
    signed, _ = make_grant()
    with pytest.raises(GrantWrongDevice):
        verify_grant(
            server_key.public_key(),
            signed,
            device_id="dev-9",
            now=NOW,
            device_public_key=Ed25519PrivateKey.generate().public_key(),
        )


def test_it_tolerates_small_clock_skew_but_not_a_grant_from_the_future(
    make_grant: GrantFactory, server_key: Ed25519PrivateKey
) -> None:
    signed, _ = make_grant()
    public = server_key.public_key()
    verify_grant(public, signed, device_id="dev-9", now=NOW - timedelta(minutes=1))
    with pytest.raises(GrantNotYetValid) as caught:
        verify_grant(public, signed, device_id="dev-9", now=NOW - timedelta(minutes=5))
    assert caught.value.code == "grant.not_yet_valid"


def test_it_refuses_a_naive_now(make_grant: GrantFactory, server_key: Ed25519PrivateKey) -> None:
    signed, _ = make_grant()
    with pytest.raises(ValueError, match="aware"):
        verify_grant(
            server_key.public_key(),
            signed,
            device_id="dev-9",
            now=datetime(2025, 3, 14, 9, 30),  # noqa: DTZ001 - the naive value is the point of the test
        )


def test_a_grant_does_not_verify_as_a_consent_receipt(
    make_grant: GrantFactory, server_key: Ed25519PrivateKey
) -> None:
    signed, _ = make_grant()
    with pytest.raises(CryptoError) as caught:
        verify_receipt(server_key.public_key(), signed)
    assert caught.value.code == "receipt.bad_signature"


def test_a_capability_is_live_only_until_its_own_expiry(make_grant: GrantFactory) -> None:
    _, grant = make_grant()
    assert grant.capability(Capability.FILES, now=NOW) is not None
    assert grant.capability(Capability.FILES, now=NOW + timedelta(minutes=10)) is None
    assert grant.capability(Capability.TERMINAL, now=NOW + timedelta(minutes=10)) is not None
    assert grant.capability(Capability.SCREEN, now=NOW) is None


@pytest.mark.parametrize(
    "overrides",
    [
        {"not_after": NOW},
        {
            "capabilities": [
                CapabilityGrant(capability=Capability.CHAT, expires_at=NOW + timedelta(hours=2))
            ]
        },
        {
            "capabilities": [
                CapabilityGrant(capability=Capability.CHAT, expires_at=NOW + timedelta(minutes=1)),
                CapabilityGrant(capability=Capability.CHAT, expires_at=NOW + timedelta(minutes=2)),
            ]
        },
    ],
    ids=["ends-before-it-starts", "capability-outlives-grant", "duplicate-capability"],
)
def test_it_refuses_to_issue_an_inconsistent_grant(
    make_grant: GrantFactory, overrides: dict[str, object]
) -> None:
    with pytest.raises(ValueError, match="validation error"):
        make_grant(**overrides)


def test_a_validly_signed_but_malformed_grant_is_reported_apart_from_forgery(
    make_grant: GrantFactory, server_key: Ed25519PrivateKey
) -> None:
    _, grant = make_grant()
    payload = grant.model_dump(mode="json")
    payload["technician_key_fingerprint"] = "SHA256:0000"
    signed = sign_document(server_key, payload, kind=DocumentKind.GRANT)
    with pytest.raises(GrantMalformed) as caught:
        verify_grant(server_key.public_key(), signed, device_id="dev-9", now=NOW)
    assert caught.value.code == "grant.malformed"


def test_sign_grant_round_trips_a_grant_model(
    make_grant: GrantFactory, server_key: Ed25519PrivateKey
) -> None:
    _, grant = make_grant()
    again = verify_grant(
        server_key.public_key(), sign_grant(server_key, grant), device_id="dev-9", now=NOW
    )
    assert again == grant
    assert isinstance(again, Grant)

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from auxilio.crypto.e2e import E2ESession, Role, derive_session_keys
from auxilio.crypto.errors import HandshakeFailed, KeyConfirmationFailed
from auxilio.crypto.handshake import CONFIRMATION_TEXT, Handshake
from auxilio.crypto.keys import (
    b64url_encode,
    decode_x25519_public_key,
    encode_public_key,
    public_key_bytes,
)
from auxilio.protocol.binary import ChannelId
from auxilio.protocol.frames import E2EAccept, E2EHello, encode_message, parse_message

from .factories import GrantFactory


def test_a_complete_handshake_gives_matching_sessions(
    make_grant: GrantFactory, device_key: Ed25519PrivateKey, technician_key: X25519PrivateKey
) -> None:
    _, grant = make_grant()
    offer = Handshake.agent_offer(device_key=device_key, grant=grant)
    # The messages survive the trip through JSON, as they do through the relay.
    hello = parse_message(encode_message(offer.hello))
    assert isinstance(hello, E2EHello)
    pending = Handshake.technician_accept(hello, technician_key=technician_key, grant=grant)
    agent, confirm = offer.complete(pending.accept)
    technician = pending.complete(confirm)
    assert agent.keys == technician.keys
    frame = technician.seal(ChannelId.CONTROL_E2E, b"first real control message")
    assert frame[3:11] == (1).to_bytes(8, "big")  # counter 0 was the confirmation
    assert agent.open(frame) == (ChannelId.CONTROL_E2E, b"first real control message")


def test_a_relay_that_swaps_the_agent_key_is_detected(
    make_grant: GrantFactory, device_key: Ed25519PrivateKey, technician_key: X25519PrivateKey
) -> None:
    _, grant = make_grant()
    hello = Handshake.agent_offer(device_key=device_key, grant=grant).hello
    mitm_key = encode_public_key(X25519PrivateKey.generate().public_key())
    swapped = hello.model_copy(update={"agent_ephemeral_key": mitm_key})
    with pytest.raises(HandshakeFailed) as caught:
        Handshake.technician_accept(swapped, technician_key=technician_key, grant=grant)
    assert caught.value.code == "e2e.handshake_failed"


def test_a_relay_that_swaps_the_technician_key_is_detected(
    make_grant: GrantFactory, device_key: Ed25519PrivateKey, technician_key: X25519PrivateKey
) -> None:
    _, grant = make_grant()
    offer = Handshake.agent_offer(device_key=device_key, grant=grant)
    accept = Handshake.technician_accept(
        offer.hello, technician_key=technician_key, grant=grant
    ).accept
    mitm_key = encode_public_key(X25519PrivateKey.generate().public_key())
    with pytest.raises(HandshakeFailed):
        offer.complete(accept.model_copy(update={"technician_ephemeral_key": mitm_key}))


def test_a_mitm_that_answers_with_its_own_keys_fails_key_confirmation(
    make_grant: GrantFactory, device_key: Ed25519PrivateKey
) -> None:
    # The MITM names the grant's (public) technician key, as the agent requires, but holds only
    # its own private key: it derives other keys, so its confirmation cannot open at the agent.
    _, grant = make_grant()
    offer = Handshake.agent_offer(device_key=device_key, grant=grant)
    mitm_key = X25519PrivateKey.generate()
    agent_public = decode_x25519_public_key(offer.hello.agent_ephemeral_key)
    mitm_keys = derive_session_keys(
        mitm_key.exchange(agent_public),
        support_session_id=grant.support_session_id,
        agent_public=public_key_bytes(agent_public),
        technician_public=public_key_bytes(grant.technician_public_key()),
    )
    mitm = E2ESession(role=Role.TECHNICIAN, keys=mitm_keys)
    text = CONFIRMATION_TEXT + b"technician " + mitm_keys.transcript
    forged = E2EAccept(
        id="m1",
        support_session_id=grant.support_session_id,
        technician_ephemeral_key=grant.technician_e2e_key,
        confirmation=b64url_encode(mitm.seal(ChannelId.CONTROL_E2E, text)),
    )
    with pytest.raises(KeyConfirmationFailed) as caught:
        offer.complete(forged)
    assert caught.value.code == "e2e.key_confirmation_failed"


def test_a_garbled_agent_confirmation_is_detected_by_the_technician(
    make_grant: GrantFactory, device_key: Ed25519PrivateKey, technician_key: X25519PrivateKey
) -> None:
    _, grant = make_grant()
    offer = Handshake.agent_offer(device_key=device_key, grant=grant)
    pending = Handshake.technician_accept(offer.hello, technician_key=technician_key, grant=grant)
    _, confirm = offer.complete(pending.accept)
    garbled = confirm.model_copy(update={"confirmation": b64url_encode(bytes(60))})
    with pytest.raises(KeyConfirmationFailed):
        pending.complete(garbled)


def test_a_hello_signed_by_another_device_is_refused(
    make_grant: GrantFactory, technician_key: X25519PrivateKey
) -> None:
    _, grant = make_grant()
    impostor = Handshake.agent_offer(device_key=Ed25519PrivateKey.generate(), grant=grant)
    with pytest.raises(HandshakeFailed):
        Handshake.technician_accept(impostor.hello, technician_key=technician_key, grant=grant)


def test_the_technician_refuses_a_key_other_than_the_one_in_its_grant(
    make_grant: GrantFactory, device_key: Ed25519PrivateKey
) -> None:
    _, grant = make_grant()
    hello = Handshake.agent_offer(device_key=device_key, grant=grant).hello
    with pytest.raises(HandshakeFailed):
        Handshake.technician_accept(hello, technician_key=X25519PrivateKey.generate(), grant=grant)


def test_an_offer_completes_only_once(
    make_grant: GrantFactory, device_key: Ed25519PrivateKey, technician_key: X25519PrivateKey
) -> None:
    _, grant = make_grant()
    offer = Handshake.agent_offer(device_key=device_key, grant=grant)
    pending = Handshake.technician_accept(offer.hello, technician_key=technician_key, grant=grant)
    _, confirm = offer.complete(pending.accept)
    pending.complete(confirm)
    with pytest.raises(HandshakeFailed):
        offer.complete(pending.accept)
    with pytest.raises(HandshakeFailed):
        pending.complete(confirm)

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from auxilio.crypto.errors import SignatureInvalid
from auxilio.crypto.keys import b64url_decode, b64url_encode
from auxilio.crypto.signing import (
    DocumentKind,
    canonical_json,
    sign_agent_challenge,
    sign_document,
    verify_agent_challenge,
    verify_document,
)
from auxilio.protocol.types import SignedDocument


def test_canonical_json_sorts_keys_and_has_no_whitespace() -> None:
    assert canonical_json({"b": 1, "a": {"d": [1, 2], "c": "ñ"}}) == (
        '{"a":{"c":"ñ","d":[1,2]},"b":1}'.encode()
    )


def test_a_signed_document_verifies_and_returns_its_payload() -> None:
    key = Ed25519PrivateKey.generate()
    signed = sign_document(key, {"x": 1, "y": ["a"]}, kind="auxilio.test_thing.v1")
    assert verify_document(key.public_key(), signed, kind="auxilio.test_thing.v1") == {
        "x": 1,
        "y": ["a"],
    }


def test_the_kind_is_inside_the_signed_bytes() -> None:
    key = Ed25519PrivateKey.generate()
    signed = sign_document(key, {"x": 1}, kind=DocumentKind.GRANT)
    assert b64url_decode(signed.body) == b'{"kind":"auxilio.grant.v1","payload":{"x":1}}'


def test_a_grant_signature_does_not_verify_as_a_receipt() -> None:
    key = Ed25519PrivateKey.generate()
    signed = sign_document(key, {"support_session_id": "s"}, kind=DocumentKind.GRANT)
    with pytest.raises(SignatureInvalid) as caught:
        verify_document(key.public_key(), signed, kind=DocumentKind.CONSENT_RECEIPT)
    assert caught.value.code == "signature.invalid"


def test_it_rejects_a_document_signed_by_another_key() -> None:
    signed = sign_document(Ed25519PrivateKey.generate(), {"x": 1}, kind="auxilio.t.v1")
    with pytest.raises(SignatureInvalid):
        verify_document(Ed25519PrivateKey.generate().public_key(), signed, kind="auxilio.t.v1")


def test_it_rejects_an_altered_body() -> None:
    key = Ed25519PrivateKey.generate()
    signed = sign_document(key, {"x": 1}, kind="auxilio.t.v1")
    forged = SignedDocument(
        body=b64url_encode(b'{"kind":"auxilio.t.v1","payload":{"x":2}}'),
        signature=signed.signature,
    )
    with pytest.raises(SignatureInvalid):
        verify_document(key.public_key(), forged, kind="auxilio.t.v1")


def test_it_rejects_a_validly_signed_body_that_is_not_canonical() -> None:
    key = Ed25519PrivateKey.generate()
    body = b'{"payload":{"x":1}, "kind":"auxilio.t.v1"}'
    signed = SignedDocument(body=b64url_encode(body), signature=b64url_encode(key.sign(body)))
    with pytest.raises(SignatureInvalid, match="canonical"):
        verify_document(key.public_key(), signed, kind="auxilio.t.v1")


@pytest.mark.parametrize("kind", ["grant", "auxilio.grant", "other.grant.v1", "auxilio.Grant.v1"])
def test_it_refuses_to_sign_with_a_badly_shaped_kind(kind: str) -> None:
    with pytest.raises(ValueError, match="kind"):
        sign_document(Ed25519PrivateKey.generate(), {}, kind=kind)


def test_an_agent_challenge_answer_is_bound_to_the_server() -> None:
    key = Ed25519PrivateKey.generate()
    answer = sign_agent_challenge(key, challenge="c" * 22, server_fingerprint="SHA256:aa")
    verify_agent_challenge(
        key.public_key(), answer, challenge="c" * 22, server_fingerprint="SHA256:aa"
    )
    with pytest.raises(SignatureInvalid):
        verify_agent_challenge(
            key.public_key(), answer, challenge="c" * 22, server_fingerprint="SHA256:bb"
        )

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from auxilio.crypto.errors import ReceiptMalformed, ReceiptSignatureInvalid
from auxilio.crypto.grants import verify_grant
from auxilio.crypto.receipts import (
    SignedReceipt,
    prompt_digest,
    sign_receipt,
    verify_receipt,
)
from auxilio.crypto.signing import DocumentKind, sign_document
from auxilio.protocol.types import Capability, ConsentDecision

from .factories import NOW

PROMPT = "Ana López (Escuela) pide abrir una terminal en este equipo durante 60 minutos."


def _receipt(key: Ed25519PrivateKey, **overrides: Any) -> SignedReceipt:
    arguments: dict[str, Any] = {
        "support_session_id": "ss-1001",
        "device_id": "dev-9",
        "grant_nonce": "n" * 22,
        "prompt_text": PROMPT,
        "decisions": {
            Capability.TERMINAL: ConsentDecision.GRANTED,
            Capability.FILES: ConsentDecision.REFUSED,
        },
        "decided_at": NOW + timedelta(seconds=12),
        "timeout_seconds": 60,
        "timeout_default": "refused",
    }
    arguments.update(overrides)
    return sign_receipt(key, **arguments)


def test_a_signed_receipt_verifies_and_records_what_was_seen_and_decided(
    device_key: Ed25519PrivateKey,
) -> None:
    receipt = verify_receipt(device_key.public_key(), _receipt(device_key))
    assert receipt.prompt_sha256 == prompt_digest(PROMPT)
    assert receipt.prompt_text == PROMPT
    assert receipt.granted() == {Capability.TERMINAL}
    assert receipt.timeout_default == "refused"
    assert receipt.decided_at == NOW + timedelta(seconds=12)


def test_the_prompt_text_can_be_left_out_while_its_hash_stays(
    device_key: Ed25519PrivateKey,
) -> None:
    receipt = verify_receipt(
        device_key.public_key(), _receipt(device_key, include_prompt_text=False)
    )
    assert receipt.prompt_text is None
    assert receipt.prompt_sha256 == prompt_digest(PROMPT)


def test_a_timed_out_prompt_is_recorded_as_such(device_key: Ed25519PrivateKey) -> None:
    signed = _receipt(device_key, decisions={Capability.SCREEN: ConsentDecision.TIMED_OUT})
    receipt = verify_receipt(device_key.public_key(), signed)
    assert receipt.granted() == frozenset()
    assert receipt.decisions[0].decision == ConsentDecision.TIMED_OUT


def test_it_rejects_a_receipt_signed_by_another_device(device_key: Ed25519PrivateKey) -> None:
    with pytest.raises(ReceiptSignatureInvalid) as caught:
        verify_receipt(Ed25519PrivateKey.generate().public_key(), _receipt(device_key))
    assert caught.value.code == "receipt.bad_signature"


def test_a_receipt_does_not_verify_as_a_grant(device_key: Ed25519PrivateKey) -> None:
    from auxilio.crypto.errors import GrantSignatureInvalid

    with pytest.raises(GrantSignatureInvalid):
        verify_grant(device_key.public_key(), _receipt(device_key), device_id="dev-9", now=NOW)


def test_a_signed_receipt_whose_text_does_not_match_its_hash_is_malformed(
    device_key: Ed25519PrivateKey,
) -> None:
    payload = verify_receipt(device_key.public_key(), _receipt(device_key)).model_dump(mode="json")
    payload["prompt_text"] = "Something milder than what was shown."
    signed = sign_document(device_key, payload, kind=DocumentKind.CONSENT_RECEIPT)
    with pytest.raises(ReceiptMalformed) as caught:
        verify_receipt(device_key.public_key(), signed)
    assert caught.value.code == "receipt.malformed"


def test_it_refuses_to_sign_a_receipt_without_decisions(device_key: Ed25519PrivateKey) -> None:
    with pytest.raises(ValueError, match="decisions"):
        _receipt(device_key, decisions={})

"""The device-signed consent receipt: what the person saw and what they decided (DESIGN §5, R1).

The receipt is evidence for the person as much as for the organisation: it binds the exact prompt
text (by its SHA-256), each capability's decision, the time, and the default that a timeout
applied, to one grant (by its nonce) and one device key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Self

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import Field, StringConstraints, ValidationError, model_validator

from auxilio.crypto.errors import ReceiptMalformed, ReceiptSignatureInvalid, SignatureInvalid
from auxilio.crypto.signing import DocumentKind, sign_document, verify_document
from auxilio.protocol.types import (
    Base64Url,
    Capability,
    ConsentDecision,
    Identifier,
    Sha256Hex,
    SignedDocument,
    TimeoutDefault,
    UtcDatetime,
    WireModel,
)

SignedReceipt = SignedDocument


def prompt_digest(prompt_text: str) -> str:
    """Hex SHA-256 of the prompt text exactly as shown, UTF-8 encoded."""
    return hashlib.sha256(prompt_text.encode("utf-8")).hexdigest()


class CapabilityConsent(WireModel):
    capability: Capability
    decision: ConsentDecision


class ConsentReceipt(WireModel):
    support_session_id: Identifier
    device_id: Identifier
    grant_nonce: Annotated[Base64Url, StringConstraints(min_length=22, max_length=64)]
    prompt_sha256: Sha256Hex
    # Optional: the person may keep the text out of the server's copy; the hash still binds it.
    prompt_text: Annotated[str, StringConstraints(max_length=32 * 1024)] | None = None
    decisions: tuple[CapabilityConsent, ...] = Field(min_length=1, max_length=16)
    decided_at: UtcDatetime
    timeout_seconds: int = Field(gt=0)
    timeout_default: TimeoutDefault

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.prompt_text is not None and prompt_digest(self.prompt_text) != self.prompt_sha256:
            raise ValueError("prompt_sha256 does not match prompt_text")
        names = [item.capability for item in self.decisions]
        if len(names) != len(set(names)):
            raise ValueError("a capability is decided twice")
        return self

    def granted(self) -> frozenset[Capability]:
        return frozenset(
            item.capability for item in self.decisions if item.decision == ConsentDecision.GRANTED
        )


def sign_receipt(
    device_key: Ed25519PrivateKey,
    *,
    support_session_id: str,
    device_id: str,
    grant_nonce: str,
    prompt_text: str,
    decisions: Mapping[Capability, ConsentDecision],
    decided_at: datetime,
    timeout_seconds: int,
    timeout_default: TimeoutDefault,
    include_prompt_text: bool = True,
) -> SignedReceipt:
    receipt = ConsentReceipt(
        support_session_id=support_session_id,
        device_id=device_id,
        grant_nonce=grant_nonce,
        prompt_sha256=prompt_digest(prompt_text),
        prompt_text=prompt_text if include_prompt_text else None,
        decisions=tuple(
            CapabilityConsent(capability=name, decision=decision)
            for name, decision in sorted(decisions.items())
        ),
        decided_at=decided_at,
        timeout_seconds=timeout_seconds,
        timeout_default=timeout_default,
    )
    return sign_document(
        device_key, receipt.model_dump(mode="json"), kind=DocumentKind.CONSENT_RECEIPT
    )


def verify_receipt(device_public_key: Ed25519PublicKey, signed: SignedReceipt) -> ConsentReceipt:
    try:
        payload = verify_document(device_public_key, signed, kind=DocumentKind.CONSENT_RECEIPT)
    except SignatureInvalid as exc:
        raise ReceiptSignatureInvalid(str(exc)) from exc
    try:
        return ConsentReceipt.model_validate(payload)
    except ValidationError as exc:
        raise ReceiptMalformed(f"signed receipt is invalid: {exc.error_count()} error(s)") from exc


class ExtensionReceipt(WireModel):
    """The person's answer to one extension, signed by the device: which grant (by its nonce)
    they were asked about, the end it proposed, the reason they were shown, and their answer."""

    support_session_id: Identifier
    device_id: Identifier
    grant_nonce: Annotated[Base64Url, StringConstraints(min_length=22, max_length=64)]
    new_not_after: UtcDatetime
    reason_sha256: Sha256Hex
    decision: ConsentDecision
    decided_at: UtcDatetime


def sign_extension_receipt(
    device_key: Ed25519PrivateKey,
    *,
    support_session_id: str,
    device_id: str,
    grant_nonce: str,
    new_not_after: datetime,
    reason: str,
    decision: ConsentDecision,
    decided_at: datetime,
) -> SignedReceipt:
    receipt = ExtensionReceipt(
        support_session_id=support_session_id,
        device_id=device_id,
        grant_nonce=grant_nonce,
        new_not_after=new_not_after,
        reason_sha256=prompt_digest(reason),
        decision=decision,
        decided_at=decided_at,
    )
    return sign_document(
        device_key, receipt.model_dump(mode="json"), kind=DocumentKind.EXTENSION_RECEIPT
    )


def verify_extension_receipt(
    device_public_key: Ed25519PublicKey, signed: SignedReceipt
) -> ExtensionReceipt:
    try:
        payload = verify_document(device_public_key, signed, kind=DocumentKind.EXTENSION_RECEIPT)
    except SignatureInvalid as exc:
        raise ReceiptSignatureInvalid(str(exc)) from exc
    try:
        return ExtensionReceipt.model_validate(payload)
    except ValidationError as exc:
        raise ReceiptMalformed(f"signed receipt is invalid: {exc.error_count()} error(s)") from exc

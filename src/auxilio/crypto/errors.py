"""Typed crypto errors. Each has a stable ``code``: peers, the audit log and tests match on it.

Messages never contain key material or plaintext.
"""

from __future__ import annotations

from typing import ClassVar


class CryptoError(Exception):
    code: ClassVar[str] = "crypto.error"


class KeyFileInvalid(CryptoError):
    code = "key.invalid_file"


class KeyFileInsecure(CryptoError):
    code = "key.insecure_permissions"


class KeyEncodingInvalid(CryptoError):
    code = "key.bad_encoding"


class SealedDataInvalid(CryptoError):
    code = "seal.invalid"


class SignatureInvalid(CryptoError):
    """Bad signature, wrong signer, or a document signed for another purpose (``kind``)."""

    code = "signature.invalid"


class GrantError(CryptoError):
    code = "grant.error"


class GrantSignatureInvalid(GrantError):
    code = "grant.bad_signature"


class GrantMalformed(GrantError):
    code = "grant.malformed"


class GrantExpired(GrantError):
    code = "grant.expired"


class GrantNotYetValid(GrantError):
    code = "grant.not_yet_valid"


class GrantWrongDevice(GrantError):
    code = "grant.wrong_device"


class ReceiptError(CryptoError):
    code = "receipt.error"


class ReceiptSignatureInvalid(ReceiptError):
    code = "receipt.bad_signature"


class ReceiptMalformed(ReceiptError):
    code = "receipt.malformed"


class E2EError(CryptoError):
    """Any end-to-end failure. The caller must end the support session: the channel state is
    left unchanged by a rejected frame, but a peer or relay that sends one is not trustworthy."""

    code = "e2e.error"


class FrameReplayed(E2EError):
    code = "e2e.replayed"


class FrameOutOfOrder(E2EError):
    code = "e2e.out_of_order"


class FrameTampered(E2EError):
    code = "e2e.tampered"


class FrameTruncated(E2EError):
    code = "e2e.truncated"


class FrameTooLarge(E2EError):
    code = "e2e.too_large"


class CounterExhausted(E2EError):
    code = "e2e.counter_exhausted"


class HandshakeFailed(E2EError):
    """The peer's ephemeral key is not the authenticated one (signature or grant mismatch)."""

    code = "e2e.handshake_failed"


class KeyConfirmationFailed(E2EError):
    """The peers derived different keys: someone in the middle swapped an ephemeral key."""

    code = "e2e.key_confirmation_failed"

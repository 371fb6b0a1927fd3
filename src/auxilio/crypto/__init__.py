"""Keys, signed grants and consent receipts, end-to-end channels, sealing to the auditor key.

A pure library: no network, no database, no clock (``now`` is always passed in). Imports only
``auxilio.protocol`` from the rest of Auxilio.
"""

from auxilio.crypto.e2e import Channel, E2ESession, Role
from auxilio.crypto.errors import (
    CryptoError,
    E2EError,
    FrameOutOfOrder,
    FrameReplayed,
    FrameTampered,
    FrameTooLarge,
    FrameTruncated,
    GrantExpired,
    GrantSignatureInvalid,
    GrantWrongDevice,
    HandshakeFailed,
    KeyConfirmationFailed,
    ReceiptSignatureInvalid,
    SignatureInvalid,
)
from auxilio.crypto.grants import Grant, SignedGrant, issue_grant, read_grant, verify_grant
from auxilio.crypto.handshake import AgentOffer, Handshake, TechnicianPending
from auxilio.crypto.keys import (
    fingerprint,
    load_or_create_signing_key,
    load_signing_key,
    save_private_key,
    seal,
    unseal,
)
from auxilio.crypto.receipts import ConsentReceipt, SignedReceipt, sign_receipt, verify_receipt
from auxilio.crypto.signing import DocumentKind, sign_document, verify_document

__all__ = [
    "AgentOffer",
    "Channel",
    "ConsentReceipt",
    "CryptoError",
    "DocumentKind",
    "E2EError",
    "E2ESession",
    "FrameOutOfOrder",
    "FrameReplayed",
    "FrameTampered",
    "FrameTooLarge",
    "FrameTruncated",
    "Grant",
    "GrantExpired",
    "GrantSignatureInvalid",
    "GrantWrongDevice",
    "Handshake",
    "HandshakeFailed",
    "KeyConfirmationFailed",
    "ReceiptSignatureInvalid",
    "Role",
    "SignatureInvalid",
    "SignedGrant",
    "SignedReceipt",
    "TechnicianPending",
    "fingerprint",
    "issue_grant",
    "load_or_create_signing_key",
    "load_signing_key",
    "read_grant",
    "save_private_key",
    "seal",
    "sign_document",
    "sign_receipt",
    "unseal",
    "verify_document",
    "verify_grant",
    "verify_receipt",
]

"""The server-signed grant (DESIGN §5): what one technician may do on one device, until when.

The agent acts on a capability only if a grant it verified itself names it, unexpired: a
compromised server can sign, but it cannot make the person on the device consent (the receipt),
and it cannot sign for a device key it does not name.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Annotated, Self

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
from pydantic import Field, StringConstraints, ValidationError, model_validator

from auxilio.crypto.errors import (
    GrantExpired,
    GrantMalformed,
    GrantNotYetValid,
    GrantSignatureInvalid,
    GrantWrongDevice,
    KeyEncodingInvalid,
    SignatureInvalid,
)
from auxilio.crypto.keys import (
    b64url_encode,
    decode_ed25519_public_key,
    decode_x25519_public_key,
    encode_public_key,
    fingerprint,
)
from auxilio.crypto.signing import DocumentKind, sign_document, verify_document
from auxilio.protocol.types import (
    Base64Url,
    Capability,
    CapabilityGrant,
    ConsentTerms,
    ExtensionNote,
    ExtensionTerms,
    Identifier,
    Key32,
    ShortText,
    SignedDocument,
    UtcDatetime,
    WireModel,
)

# The wire form of a grant is a plain signed document; the alias says which kind to expect.
SignedGrant = SignedDocument

# Device clocks drift; a grant issued "in the future" by a couple of minutes is still accepted.
DEFAULT_CLOCK_SKEW = timedelta(minutes=2)


class Grant(WireModel):
    support_session_id: Identifier
    organisation_id: Identifier
    organisation_name: ShortText
    technician_id: Identifier
    technician_name: ShortText
    technician_e2e_key: Key32
    technician_key_fingerprint: ShortText
    device_id: Identifier
    device_public_key: Key32
    capabilities: tuple[CapabilityGrant, ...] = Field(max_length=16)
    policy_version: ShortText
    recorded: bool
    # What the person is shown and what decides the prompt (timeout, silence), and the most the
    # session may be extended: signed, so nothing on the way can change them.
    terms: ConsentTerms
    extensions: ExtensionTerms = ExtensionTerms()
    extension: ExtensionNote | None = None
    # The organisation's X25519 auditor key: the agent seals activity details and a recorded
    # session's keys to it. Signed, so a proxy cannot substitute a key of its own.
    auditor_public_key: Key32 | None = None
    issued_at: UtcDatetime
    not_after: UtcDatetime
    nonce: Annotated[Base64Url, StringConstraints(min_length=22, max_length=64)]

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.not_after <= self.issued_at:
            raise ValueError("not_after must be after issued_at")
        names = [item.capability for item in self.capabilities]
        if len(names) != len(set(names)):
            raise ValueError("a capability appears twice")
        if any(item.expires_at > self.not_after for item in self.capabilities):
            raise ValueError("a capability outlives the grant")
        purposes = {item.capability for item in self.terms.purposes}
        if not purposes <= set(names):
            raise ValueError("a purpose is given for a capability the grant does not name")
        try:
            technician_key = self.technician_public_key()
            self.device_key()
        except KeyEncodingInvalid as exc:
            raise ValueError(str(exc)) from exc
        if fingerprint(technician_key) != self.technician_key_fingerprint:
            raise ValueError("technician_key_fingerprint does not match technician_e2e_key")
        return self

    def technician_public_key(self) -> X25519PublicKey:
        return decode_x25519_public_key(self.technician_e2e_key)

    def device_key(self) -> Ed25519PublicKey:
        return decode_ed25519_public_key(self.device_public_key)

    def capability(self, name: Capability, *, now: datetime) -> CapabilityGrant | None:
        """The grant of ``name`` if the grant and that capability are both live at ``now``."""
        if now >= self.not_after:
            return None
        for item in self.capabilities:
            if item.capability == name and item.is_live(now):
                return item
        return None


def sign_grant(server_key: Ed25519PrivateKey, grant: Grant) -> SignedGrant:
    return sign_document(server_key, grant.model_dump(mode="json"), kind=DocumentKind.GRANT)


def issue_grant(
    server_key: Ed25519PrivateKey,
    *,
    support_session_id: str,
    organisation_id: str,
    organisation_name: str,
    technician_id: str,
    technician_name: str,
    technician_e2e_key: X25519PublicKey,
    device_id: str,
    device_public_key: Ed25519PublicKey,
    capabilities: Sequence[CapabilityGrant],
    policy_version: str,
    issued_at: datetime,
    not_after: datetime,
    terms: ConsentTerms,
    extensions: ExtensionTerms | None = None,
    extension: ExtensionNote | None = None,
    recorded: bool = False,
    auditor_public_key: X25519PublicKey | None = None,
) -> SignedGrant:
    """Build and sign a grant with a fresh 128-bit nonce (it ties the consent receipt to it and
    lets the agent refuse a replayed offer)."""
    grant = Grant(
        support_session_id=support_session_id,
        organisation_id=organisation_id,
        organisation_name=organisation_name,
        technician_id=technician_id,
        technician_name=technician_name,
        technician_e2e_key=encode_public_key(technician_e2e_key),
        technician_key_fingerprint=fingerprint(technician_e2e_key),
        device_id=device_id,
        device_public_key=encode_public_key(device_public_key),
        capabilities=tuple(capabilities),
        policy_version=policy_version,
        recorded=recorded,
        terms=terms,
        extensions=extensions or ExtensionTerms(),
        extension=extension,
        auditor_public_key=(
            encode_public_key(auditor_public_key) if auditor_public_key is not None else None
        ),
        issued_at=issued_at,
        not_after=not_after,
        nonce=b64url_encode(os.urandom(16)),
    )
    return sign_grant(server_key, grant)


def read_grant(server_public_key: Ed25519PublicKey, signed: SignedGrant) -> Grant:
    """Check the signature and shape only, not time or device (for the server's own records and
    for the technician client, which checks the device key through the E2E handshake)."""
    try:
        payload = verify_document(server_public_key, signed, kind=DocumentKind.GRANT)
    except SignatureInvalid as exc:
        raise GrantSignatureInvalid(str(exc)) from exc
    try:
        return Grant.model_validate(payload)
    except ValidationError as exc:
        # Signed by the server yet invalid: a server bug, reported apart from forgery.
        raise GrantMalformed(f"signed grant is invalid: {exc.error_count()} error(s)") from exc


def verify_grant(
    server_public_key: Ed25519PublicKey,
    signed: SignedGrant,
    *,
    device_id: str,
    now: datetime,
    device_public_key: Ed25519PublicKey | None = None,
    max_clock_skew: timedelta = DEFAULT_CLOCK_SKEW,
) -> Grant:
    """The agent's check: signed by the pinned server key, for this device, live at ``now``."""
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    grant = read_grant(server_public_key, signed)
    if grant.device_id != device_id:
        raise GrantWrongDevice(f"grant is for device {grant.device_id}, not {device_id}")
    if device_public_key is not None and grant.device_public_key != encode_public_key(
        device_public_key
    ):
        raise GrantWrongDevice("grant names another device key")
    if now >= grant.not_after:
        raise GrantExpired(f"grant expired at {grant.not_after.isoformat()}")
    if now + max_clock_skew < grant.issued_at:
        raise GrantNotYetValid(f"grant is valid from {grant.issued_at.isoformat()}")
    return grant

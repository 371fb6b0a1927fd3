"""Grants for the browser client's tests, naming a technician key the page made itself."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from auxilio.crypto.grants import Grant, SignedGrant, issue_grant, read_grant
from auxilio.crypto.keys import b64url_decode, b64url_encode, fingerprint
from auxilio.protocol.types import Capability, CapabilityGrant, CapabilityLimits, ConsentTerms

SID = "ss-web-1"
# A timestamp for messages; the grant's expiries take the time of make_grant's call.
NOW = datetime.now(UTC).replace(microsecond=0)


def make_grant(
    server_key: Ed25519PrivateKey,
    device_key: Ed25519PrivateKey,
    technician_public: str,
    *,
    capabilities: Sequence[Capability] = (Capability.CHAT, Capability.TERMINAL),
    limits: dict[Capability, CapabilityLimits] | None = None,
) -> tuple[SignedGrant, Grant]:
    # Now, not at import: a module imported at collection may run its tests many minutes later.
    now = datetime.now(UTC).replace(microsecond=0)
    granted = [
        CapabilityGrant(
            capability=capability,
            limits=(limits or {}).get(capability, CapabilityLimits()),
            expires_at=now + timedelta(hours=1),
        )
        for capability in capabilities
    ]
    signed = issue_grant(
        server_key,
        support_session_id=SID,
        organisation_id="org-7",
        organisation_name="Escuela Primaria Benito Juárez",
        technician_id="tech-42",
        technician_name="Ana López",
        technician_e2e_key=X25519PublicKey.from_public_bytes(b64url_decode(technician_public)),
        device_id="dev-9",
        device_public_key=device_key.public_key(),
        capabilities=granted,
        policy_version="school-2025.1",
        issued_at=now,
        not_after=now + timedelta(hours=1),
        terms=ConsentTerms(
            legal_text="términos", timeout_seconds=60, answer_by=now + timedelta(minutes=2)
        ),
    )
    return signed, read_grant(server_key.public_key(), signed)


def server_key_data(server_key: Ed25519PrivateKey) -> dict[str, str]:
    """The server key as the page gets it: base64url and its fingerprint."""
    public = server_key.public_key()
    return {"key": b64url_encode(public.public_bytes_raw()), "fingerprint": fingerprint(public)}

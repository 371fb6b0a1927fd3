"""Real keys, signed grants and offers for the agent tests (no server involved)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from auxilio.crypto.grants import Grant, SignedGrant, issue_grant, read_grant
from auxilio.crypto.keys import fingerprint
from auxilio.protocol.frames import ConsentPrompt, RequestedCapability, SessionOffer
from auxilio.protocol.types import Capability, CapabilityGrant, CapabilityLimits

LEGAL_TEXT = (
    "Sus datos se tratan conforme al RGPD y a la LFPDPPP. You may end this session at any time."
)


def now() -> datetime:
    return datetime.now(UTC)


def make_grant(
    server_key: Ed25519PrivateKey,
    device_public_key: Ed25519PublicKey,
    technician_key: X25519PrivateKey,
    *,
    capabilities: tuple[Capability, ...] = (Capability.CHAT, Capability.TERMINAL),
    shell: str | None = "/bin/sh",
    issued_at: datetime | None = None,
    minutes: int = 30,
    **overrides: Any,
) -> tuple[SignedGrant, Grant]:
    issued = issued_at or now()
    not_after = issued + timedelta(minutes=minutes)
    arguments: dict[str, Any] = {
        "support_session_id": "ss-1001",
        "organisation_id": "org-7",
        "organisation_name": "Escuela Primaria Benito Juárez",
        "technician_id": "tech-42",
        "technician_name": "Ana López",
        "technician_e2e_key": technician_key.public_key(),
        "device_id": "dev-9",
        "device_public_key": device_public_key,
        "capabilities": [
            CapabilityGrant(
                capability=name,
                limits=CapabilityLimits(shell=shell if name is Capability.TERMINAL else None),
                expires_at=not_after,
            )
            for name in capabilities
        ],
        "policy_version": "school-2025.1",
        "issued_at": issued,
        "not_after": not_after,
        "recorded": False,
    }
    arguments.update(overrides)
    signed = issue_grant(server_key, **arguments)
    return signed, read_grant(server_key.public_key(), signed)


def make_offer(
    signed: SignedGrant,
    grant: Grant,
    *,
    timeout_seconds: int = 60,
    timeout_default: str = "refused",
    **prompt_overrides: Any,
) -> SessionOffer:
    prompt: dict[str, Any] = {
        "technician_name": grant.technician_name,
        "organisation_name": grant.organisation_name,
        "technician_fingerprint": fingerprint(grant.technician_public_key()),
        "ticket_ref": "T-2025-0042",
        "capabilities": tuple(
            RequestedCapability(capability=item.capability, purpose=f"to fix {item.capability}")
            for item in grant.capabilities
        ),
        "max_duration_seconds": int((grant.not_after - grant.issued_at).total_seconds()),
        "recorded": grant.recorded,
        "legal_text": LEGAL_TEXT,
        "timeout_seconds": timeout_seconds,
        "timeout_default": timeout_default,
    }
    prompt.update(prompt_overrides)
    return SessionOffer(
        id="offer-1",
        support_session_id=grant.support_session_id,
        grant=signed,
        prompt=ConsentPrompt(**prompt),
    )

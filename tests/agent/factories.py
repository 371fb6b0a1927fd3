"""Real keys, signed grants and offers for the agent tests (no server involved)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from auxilio.crypto.grants import Grant, SignedGrant, issue_grant, read_grant
from auxilio.protocol.frames import SessionOffer
from auxilio.protocol.types import (
    Capability,
    CapabilityGrant,
    CapabilityLimits,
    CapabilityPurpose,
    ConsentTerms,
    ExtensionNote,
    ExtensionTerms,
)

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
    timeout_seconds: int = 60,
    on_timeout: str = "refused",
    extensions: ExtensionTerms | None = None,
    **overrides: Any,
) -> tuple[SignedGrant, Grant]:
    issued = issued_at or now()
    not_after = issued + timedelta(minutes=minutes)
    terms = ConsentTerms(
        ticket_ref="T-2025-0042",
        purposes=tuple(
            CapabilityPurpose(capability=name, purpose=f"to fix {name}") for name in capabilities
        ),
        legal_text=LEGAL_TEXT,
        timeout_seconds=timeout_seconds,
        on_timeout=on_timeout,  # type: ignore[arg-type]  # tests also sign a contradictory one
        answer_by=issued + timedelta(seconds=timeout_seconds + 60),
    )
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
        "terms": terms,
        "extensions": extensions or ExtensionTerms(max_count=2, max_total_seconds=1800),
    }
    arguments.update(overrides)
    signed = issue_grant(server_key, **arguments)
    return signed, read_grant(server_key.public_key(), signed)


def make_offer(signed: SignedGrant, grant: Grant) -> SessionOffer:
    return SessionOffer(id="offer-1", support_session_id=grant.support_session_id, grant=signed)


def make_extension(
    server_key: Ed25519PrivateKey,
    grant: Grant,
    *,
    minutes: int = 10,
    reason: str = "the update needs ten more minutes",
    note: dict[str, Any] | None = None,
    **overrides: Any,
) -> tuple[SignedGrant, Grant]:
    """The grant a server signs for the next extension of ``grant``: same terms, chained to it."""
    previous = grant.extension
    not_after = grant.not_after + timedelta(minutes=minutes)
    fields: dict[str, Any] = {
        "sequence": (previous.sequence if previous else 0) + 1,
        "reason": reason,
        "previous_nonce": grant.nonce,
        "original_not_after": previous.original_not_after if previous else grant.not_after,
        "answer_within_seconds": 120,
    }
    fields.update(note or {})
    arguments: dict[str, Any] = {
        "support_session_id": grant.support_session_id,
        "organisation_id": grant.organisation_id,
        "organisation_name": grant.organisation_name,
        "technician_id": grant.technician_id,
        "technician_name": grant.technician_name,
        "technician_e2e_key": grant.technician_public_key(),
        "device_id": grant.device_id,
        "device_public_key": grant.device_key(),
        "capabilities": [
            _extended(item, grant.not_after, not_after) for item in grant.capabilities
        ],
        "policy_version": grant.policy_version,
        "issued_at": now(),
        "not_after": not_after,
        "recorded": grant.recorded,
        "terms": grant.terms,
        "extensions": grant.extensions,
        "extension": ExtensionNote(**fields),
    }
    arguments.update(overrides)
    signed = issue_grant(server_key, **arguments)
    return signed, read_grant(server_key.public_key(), signed)


def _extended(item: CapabilityGrant, old_end: datetime, new_end: datetime) -> CapabilityGrant:
    # A capability that ran to the session's end runs to the new end; a shorter one keeps its own.
    return item.model_copy(
        update={"expires_at": new_end if item.expires_at >= old_end else item.expires_at}
    )

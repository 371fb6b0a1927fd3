"""Keys and grant factories shared by the crypto tests."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from auxilio.crypto.e2e import E2ESession
from auxilio.crypto.grants import Grant, SignedGrant, issue_grant, read_grant
from auxilio.crypto.handshake import Handshake
from auxilio.protocol.types import Capability, CapabilityGrant, CapabilityLimits, ConsentTerms

from .factories import NOW, GrantFactory


@pytest.fixture
def server_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def device_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def technician_key() -> X25519PrivateKey:
    return X25519PrivateKey.generate()


@pytest.fixture
def make_grant(
    server_key: Ed25519PrivateKey,
    device_key: Ed25519PrivateKey,
    technician_key: X25519PrivateKey,
) -> GrantFactory:
    def factory(**overrides: Any) -> tuple[SignedGrant, Grant]:
        arguments: dict[str, Any] = {
            "support_session_id": "ss-1001",
            "organisation_id": "org-7",
            "organisation_name": "Escuela Primaria Benito Juárez",
            "technician_id": "tech-42",
            "technician_name": "Ana López",
            "technician_e2e_key": technician_key.public_key(),
            "device_id": "dev-9",
            "device_public_key": device_key.public_key(),
            "capabilities": [
                CapabilityGrant(
                    capability=Capability.TERMINAL,
                    limits=CapabilityLimits(shell="/bin/bash"),  # noqa: S604 - a limit, not a subprocess
                    expires_at=NOW + timedelta(minutes=30),
                ),
                CapabilityGrant(
                    capability=Capability.FILES,
                    limits=CapabilityLimits(
                        paths=("/var/log",), direction="download", max_bytes=10_000_000
                    ),
                    expires_at=NOW + timedelta(minutes=10),
                ),
            ],
            "policy_version": "school-2025.1",
            "issued_at": NOW,
            "not_after": NOW + timedelta(hours=1),
            "recorded": True,
            "terms": ConsentTerms(
                legal_text="test", timeout_seconds=60, answer_by=NOW + timedelta(minutes=2)
            ),
        }
        arguments.update(overrides)
        signed = issue_grant(server_key, **arguments)
        return signed, read_grant(server_key.public_key(), signed)

    return factory


@pytest.fixture
def sessions(
    make_grant: GrantFactory, device_key: Ed25519PrivateKey, technician_key: X25519PrivateKey
) -> tuple[E2ESession, E2ESession]:
    """An agent and a technician session after a complete handshake."""
    _, grant = make_grant()
    offer = Handshake.agent_offer(device_key=device_key, grant=grant)
    pending = Handshake.technician_accept(offer.hello, technician_key=technician_key, grant=grant)
    agent, confirm = offer.complete(pending.accept)
    return agent, pending.complete(confirm)

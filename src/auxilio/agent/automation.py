"""Automated runs on the device: check a server-signed order against the owner's
pre-authorisation, run it with no technician attached, answer with a device-signed outcome."""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from auxilio.agent.state import AgentState
from auxilio.protocol.frames import AutomationResult
from auxilio.protocol.types import SignedDocument


async def handle_order(
    order: SignedDocument,
    *,
    state: AgentState,
    access: Any,  # auxilio.agent.access.AccessStore (H2)
    server_public_key: Ed25519PublicKey,
    device_id: str,
) -> AutomationResult:
    """The message to send for one ``automation.run`` order (a result or a signed refusal)."""
    raise NotImplementedError

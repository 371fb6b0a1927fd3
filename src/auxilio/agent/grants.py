"""The agent's own checks of server-signed grants, before a prompt and before an extension.

Everything the person is asked about, and everything the agent later opens, comes from a grant
that passed these checks: signed by the pinned server key, naming this device's key (and its id,
once the server has assigned one), live now, and consistent with the prompt shown beside it.
"""

from __future__ import annotations

from datetime import datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from auxilio.agent.errors import AgentError
from auxilio.crypto.errors import CryptoError
from auxilio.crypto.grants import Grant, read_grant, verify_grant
from auxilio.protocol.frames import SessionOffer
from auxilio.protocol.types import SignedDocument


def _verify(
    server_key: Ed25519PublicKey,
    signed: SignedDocument,
    *,
    device_key: Ed25519PublicKey,
    device_id: str | None,
    now: datetime,
) -> Grant:
    try:
        if device_id is None:
            # First join with this server: the device has no id yet, the server assigns it in
            # the grant. The device KEY is what binds the grant to this device in that case.
            device_id = read_grant(server_key, signed).device_id
        return verify_grant(
            server_key, signed, device_id=device_id, device_public_key=device_key, now=now
        )
    except CryptoError as exc:
        raise AgentError(exc.code, f"the server's grant was refused: {exc}") from exc


def check_offer(
    offer: SessionOffer,
    *,
    server_key: Ed25519PublicKey,
    device_key: Ed25519PublicKey,
    device_id: str | None,
    now: datetime,
) -> Grant:
    """The grant of ``offer``, verified; raises ``AgentError`` (with the grant error code)."""
    grant = _verify(server_key, offer.grant, device_key=device_key, device_id=device_id, now=now)
    prompt = offer.prompt
    if (
        grant.support_session_id != offer.support_session_id
        or grant.technician_key_fingerprint != prompt.technician_fingerprint
        or grant.technician_name != prompt.technician_name
        or grant.organisation_name != prompt.organisation_name
    ):
        raise AgentError("grant.mismatch", "the consent prompt does not match the signed grant")
    if not grant.capabilities:
        raise AgentError("grant.malformed", "the grant allows no capability")
    return grant


def check_extension(
    current: Grant,
    signed: SignedDocument | None,
    *,
    server_key: Ed25519PublicKey,
    device_key: Ed25519PublicKey,
    now: datetime,
) -> Grant:
    """A new grant may move ``not_after`` later and nothing else that widens the session: same
    support session, same technician key, no capability that the person was not asked about,
    the same limits for each, not recorded unless it already was."""
    if signed is None:
        raise AgentError("grant.missing", "the approved extension carries no grant")
    new = _verify(server_key, signed, device_key=device_key, device_id=current.device_id, now=now)
    # Same limits as asked about (a new grant must not swap the shell or widen paths, bytes),
    # and not recorded if the person was told it would not be.
    asked = {item.capability: item.limits for item in current.capabilities}
    if (
        new.support_session_id != current.support_session_id
        or new.technician_e2e_key != current.technician_e2e_key
        or any(asked.get(item.capability) != item.limits for item in new.capabilities)
        or (new.recorded and not current.recorded)
        or new.not_after < current.not_after
    ):
        raise AgentError("grant.mismatch", "the new grant is not an extension of this one")
    return new

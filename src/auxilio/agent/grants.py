"""The agent's own checks of server-signed grants, before a prompt and before an extension.

Everything the person is asked about, and everything the agent later opens, comes from a grant
that passed these checks: signed by the pinned server key, naming this device's key (and its id,
once the server has assigned one), live now, and, for an offer, not past its answer-by time.
"""

from __future__ import annotations

from datetime import datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from auxilio.agent.errors import AgentError
from auxilio.crypto.errors import CryptoError
from auxilio.crypto.grants import DEFAULT_CLOCK_SKEW, Grant, read_grant, verify_grant
from auxilio.protocol.frames import SessionOffer
from auxilio.protocol.types import CapabilityGrant, SignedDocument


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
    """The grant of ``offer``, verified; raises ``AgentError`` (with the grant error code).

    Everything the prompt shows comes from this grant (its ``terms`` included), so a passing
    check means every word of the prompt is the server's signed word."""
    grant = _verify(server_key, offer.grant, device_key=device_key, device_id=device_id, now=now)
    if grant.support_session_id != offer.support_session_id:
        raise AgentError("grant.mismatch", "the offer names another support session than its grant")
    if not grant.capabilities:
        raise AgentError("grant.malformed", "the grant allows no capability")
    if grant.extension is not None:
        raise AgentError("grant.mismatch", "an extension's grant cannot open a support session")
    if now > grant.terms.answer_by + DEFAULT_CLOCK_SKEW:
        raise AgentError(
            "offer.expired",
            f"the offer had to be answered by {grant.terms.answer_by.isoformat()}; "
            "an old offer is never shown again",
        )
    return grant


def check_extension(
    current: Grant,
    signed: SignedDocument | None,
    *,
    server_key: Ed25519PublicKey,
    device_key: Ed25519PublicKey,
    now: datetime,
) -> Grant:
    """A new grant may move ``not_after`` later and nothing else that widens the session, and
    only within the extension terms of the first grant the person consented to: same support
    session, technician key, terms and auditor key; the next extension in the chain; no
    capability the person was not asked about, the same limits for each, a capability's own
    shorter limit kept; not recorded unless it already was."""
    if signed is None:
        raise AgentError("grant.missing", "the approved extension carries no grant")
    new = _verify(server_key, signed, device_key=device_key, device_id=current.device_id, now=now)
    note = new.extension
    if note is None:
        raise AgentError("grant.mismatch", "the new grant does not say it is an extension")
    asked = {item.capability: item for item in current.capabilities}
    previous = current.extension
    original = previous.original_not_after if previous is not None else current.not_after
    if (
        new.support_session_id != current.support_session_id
        or new.technician_e2e_key != current.technician_e2e_key
        or new.terms != current.terms
        or new.extensions != current.extensions
        or new.auditor_public_key != current.auditor_public_key
        or (new.recorded and not current.recorded)
        or note.previous_nonce != current.nonce
        or note.sequence != (previous.sequence if previous is not None else 0) + 1
        or note.original_not_after != original
        or new.not_after <= current.not_after
        or any(not _same_or_narrower(asked.get(item.capability), item, current)
               for item in new.capabilities)
    ):  # fmt: skip
        raise AgentError("grant.mismatch", "the new grant is not an extension of this one")
    terms = current.extensions
    if note.sequence > terms.max_count:
        raise AgentError(
            "extension.beyond_limit",
            f"this would be extension {note.sequence}; the session allows {terms.max_count}",
        )
    total = (new.not_after - original).total_seconds()
    if total > terms.max_total_seconds:
        raise AgentError(
            "extension.beyond_limit",
            f"the extensions would add {int(total)} s; the session allows "
            f"{terms.max_total_seconds} s in all",
        )
    if current.terms.mode == "unattended":
        # The owner's pre-authorisation is the only yes of an unattended session; whoever is at
        # the device cannot stretch it (agent/unattended.py refuses such grants already).
        raise AgentError(
            "extension.unattended",
            "an unattended session is never extended past its pre-authorised end",
        )
    return new


def _same_or_narrower(before: CapabilityGrant | None, after: CapabilityGrant, grant: Grant) -> bool:
    if before is None or before.limits != after.limits:
        return False
    # A capability with a shorter limit of its own (the terminal's 30 minutes) keeps it.
    if before.expires_at < grant.not_after:
        return after.expires_at <= before.expires_at
    return True

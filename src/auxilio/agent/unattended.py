"""The unattended check (docs/unattended.md): an offer the service may accept with nobody asked.

The server's grant has passed ``grants.check_offer`` already (signed by the pinned key, for this
device's key, live, answered in time). Unattended, nobody on the device says yes, so the agent
takes the owner's pre-authorisation as the answer and checks the grant against ITS OWN copy of
it (the one the device signed), never against what the server says it stored:

- the grant's signed terms say ``mode`` unattended (an attended offer reaching the service is
  refused: there is nobody to ask) -> ``offer.attended``
- the pre-authorisation it names is on this device -> ``pre_authorisation.unknown``
- not revoked (from the moment the owner signed the revocation) -> ``pre_authorisation.revoked``
- for this device, organisation and server -> ``pre_authorisation.wrong_device``
- its window covers the whole session, now until the grant's ``not_after`` (an expired one
  never does) -> ``pre_authorisation.outside_window``
- every capability the grant names is in its scope -> ``pre_authorisation.scope``
- the grant allows no extension (``extensions.max_count`` 0): the owner's window is the only
  yes there is, and nobody at the device may stretch it -> ``pre_authorisation.extensions``

Pass: a receipt is signed without asking, every capability ``granted``, silence meaning
``granted`` (it is the owner's earlier yes), and a prompt text stating what stood for the answer.
Fail: a receipt with every capability ``refused`` and an ``error`` naming why.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from auxilio.agent.access import AccessEntry, AccessStore
from auxilio.agent.consent import clock_text
from auxilio.agent.errors import AgentError
from auxilio.crypto.grants import Grant
from auxilio.crypto.preauth import WEEKDAYS, AccessWindow
from auxilio.crypto.receipts import ConsentReceipt, SignedReceipt, sign_receipt, verify_receipt
from auxilio.protocol.types import ConsentDecision


class UnattendedRefused(AgentError):
    """The offer is not covered by the owner's pre-authorisation; ``code`` says why."""


def window_words(window: AccessWindow) -> str:
    """``Mon-Fri 09:00-17:00 (Europe/Madrid), 2026-12-02 10:00 until 2026-12-09 10:00``."""
    days = sorted(window.weekdays)
    names = [WEEKDAYS[d].capitalize() for d in days]
    if days == list(range(7)):
        day_text = "every day"
    elif len(days) > 2 and days == list(range(days[0], days[-1] + 1)):
        day_text = f"{names[0]}-{names[-1]}"
    else:
        day_text = ",".join(names)
    if window.daily_start is not None and window.daily_end is not None:
        hours = f"{window.daily_start:%H:%M}-{window.daily_end:%H:%M}"
    else:
        hours = "all day"
    zone = window.zone
    start = window.not_before.astimezone(zone)
    end = window.not_after.astimezone(zone)
    return (f"{day_text} {hours} ({window.timezone}), {start:%Y-%m-%d %H:%M} until "
            f"{end:%Y-%m-%d %H:%M}")  # fmt: skip


def check_unattended(
    grant: Grant,
    access: AccessStore,
    *,
    device_id: str,
    organisation_id: str,
    server_fingerprint: str,
    now: datetime,
) -> AccessEntry:
    """The pre-authorisation that covers ``grant``; ``UnattendedRefused`` (with its code) if
    none does."""
    terms = grant.terms
    if terms.mode != "unattended" or terms.pre_authorisation_id is None:
        raise UnattendedRefused(
            "offer.attended",
            "an attended offer reached the unattended service: nobody is here to be asked",
        )
    entry = access.get(terms.pre_authorisation_id)
    if entry is None:
        raise UnattendedRefused(
            "pre_authorisation.unknown",
            f"the pre-authorisation {terms.pre_authorisation_id} is not on this device",
        )
    document = entry.document
    if entry.revoked:
        raise UnattendedRefused(
            "pre_authorisation.revoked",
            f"the owner revoked the pre-authorisation {document.id}"
            + (f" at {entry.revoked_at.isoformat()}" if entry.revoked_at else ""),
        )
    if (
        grant.device_id != device_id
        or document.device_id != device_id
        or document.organisation_id != organisation_id
        or grant.organisation_id != organisation_id
        or document.server_fingerprint != server_fingerprint
    ):
        raise UnattendedRefused(
            "pre_authorisation.wrong_device",
            "the grant or the pre-authorisation is for another device, organisation or server",
        )
    window = document.window
    if not window.covers_span(now, grant.not_after):
        if now >= window.not_after:
            why = f"it expired at {window.not_after.isoformat()}"
        elif not window.covers(now):
            why = "it is shut now"
        else:
            why = f"it closes before the session would end ({grant.not_after.isoformat()})"
        raise UnattendedRefused(
            "pre_authorisation.outside_window",
            f"the pre-authorisation {document.id} does not cover this session: {why} "
            f"(window {window_words(window)})",
        )
    asked = {item.capability for item in grant.capabilities}
    if not document.allows(asked):
        extra = ", ".join(sorted(asked - set(document.scope)))
        raise UnattendedRefused(
            "pre_authorisation.scope",
            f"the grant asks for {extra}, outside the pre-authorisation's scope "
            f"({', '.join(document.scope)})",
        )
    if grant.extensions.max_count > 0 or grant.extensions.max_total_seconds > 0:
        raise UnattendedRefused(
            "pre_authorisation.extensions",
            "the grant allows extensions: an unattended session ends within the owner's "
            "pre-authorised window and is never extended",
        )
    return entry


def statement(grant: Grant, entry: AccessEntry) -> str:
    """The text a pre-authorised receipt hashes in place of a prompt nobody saw."""
    document = entry.document
    capabilities = ", ".join(item.capability for item in grant.capabilities)
    lines = [
        f"Unattended access pre-authorised by {document.owner_name} ({document.id}).",
        f"Scope: {', '.join(document.scope)}. Window: {window_words(document.window)}.",
        f"Technician: {grant.technician_name} ({grant.organisation_name}), key "
        f"{grant.technician_key_fingerprint}.",
        f"Capabilities: {capabilities}. Until: {clock_text(grant.not_after)}.",
        "Nobody was asked on the device: the owner's pre-authorisation stands for the answer.",
    ]
    if document.note:
        lines.append(f"Owner's note: {document.note}")
    return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class Answer:
    signed: SignedReceipt
    receipt: ConsentReceipt
    prompt_text: str


def sign_answer(
    device_key: Ed25519PrivateKey,
    grant: Grant,
    *,
    entry: AccessEntry | None,
    refusal: AgentError | None,
    now: datetime,
) -> Answer:
    """The receipt: every capability granted (``entry``, no ``refusal``) or refused."""
    if refusal is None and entry is not None:
        text, decision = statement(grant, entry), ConsentDecision.GRANTED
    else:
        reason = refusal.code if refusal is not None else "pre_authorisation.unknown"
        text = f"Unattended offer refused by the device: {reason}."
        decision = ConsentDecision.REFUSED
    signed = sign_receipt(
        device_key,
        support_session_id=grant.support_session_id,
        device_id=grant.device_id,
        grant_nonce=grant.nonce,
        prompt_text=text,
        decisions={item.capability: decision for item in grant.capabilities},
        decided_at=now,
        timeout_seconds=grant.terms.timeout_seconds,
        timeout_default="granted" if decision is ConsentDecision.GRANTED else "refused",
    )
    return Answer(signed=signed, receipt=verify_receipt(device_key.public_key(), signed),
                  prompt_text=text)  # fmt: skip

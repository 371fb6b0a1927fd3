"""The device's consent receipt (step 3 of docs/support-sessions.md): verified against the offer
it answers, kept, and the session made active, rejected or expired.

A receipt that does not answer this session's offer ends the session: ``AgentRefused`` with a
stable ``receipt.*`` code, audited in the caller's transaction, which the caller commits even
though the consent failed. An unattended session's automatic receipt is checked again against
the owner's pre-authorisation and the emergency state at the moment it arrives.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from auxilio.crypto.errors import KeyEncodingInvalid, ReceiptError
from auxilio.crypto.grants import Grant, read_grant
from auxilio.crypto.keys import decode_ed25519_public_key, fingerprint
from auxilio.crypto.receipts import ConsentReceipt, verify_receipt
from auxilio.protocol.frames import EndReason, Party
from auxilio.protocol.states import SupportSessionState
from auxilio.protocol.types import ConsentDecision, SignedDocument
from auxilio.server.audit.actions import AuditAction
from auxilio.server.audit.service import record
from auxilio.server.devices.models import Device
from auxilio.server.emergency import state as emergency
from auxilio.server.errors import DomainError
from auxilio.server.support_sessions import clock, unattended
from auxilio.server.support_sessions.consent import (
    RECEIPT_CLOCK_SKEW,
    UNATTENDED_END_REASONS,
    AgentRefused,
    agent_actor,
    current_grant,
)
from auxilio.server.support_sessions.models import ConsentReceiptRecord, SupportSession
from auxilio.server.support_sessions.service import (
    audit_target,
    end_support_session,
    move,
    technician_actor,
)
from auxilio.server.tickets import service as tickets

S = SupportSessionState


# Rounding of the agent's countdown and the server's own timestamps.
TIMEOUT_MARGIN = timedelta(seconds=2)


async def _refuse_receipt(
    db: AsyncSession, support_session: SupportSession, code: str, message: str,
    reason: EndReason = EndReason.PROTOCOL_ERROR,
) -> AgentRefused:
    """Audit the refused receipt and end the session with ``code``: a receipt that does not
    answer the offer made is never a reason to keep waiting for another one."""
    actor = agent_actor(support_session)
    await record(db, action=AuditAction.RECEIPT_REJECTED, actor=actor,
                 details={"code": code, "message": message}, **audit_target(support_session))
    await end_support_session(db, support_session=support_session, ended_by=Party.SERVER,
                              reason=reason, detail=code, actor=actor)
    return AgentRefused(code, message)


def receipt_mismatch(
    body: ConsentReceipt, grant: Grant, offered_at: datetime, received_at: datetime,
    *, unattended_session: bool = False,
) -> str | None:
    """What in ``body`` contradicts the offer the server made (``grant``), or ``None``.

    The server cannot see the person answer, but it knows what it offered: the capabilities,
    the timeout, that silence meant refusal, and when the answer was due. A receipt that says
    otherwise was not made by an honest agent from this offer."""
    offered = {item.capability for item in grant.capabilities}
    decided = {item.capability for item in body.decisions}
    if decided != offered:
        return "the receipt decides other capabilities than the offer named"
    if body.timeout_seconds != grant.terms.timeout_seconds:
        return (f"the receipt says the prompt waited {body.timeout_seconds} s; "
                f"the offer said {grant.terms.timeout_seconds} s")
    if grant.terms.mode == "unattended" or unattended_session:
        # Nobody was asked: the agent's automatic answer. Only for a session requested as
        # unattended whose signed offer said so; any other receipt saying so is refused.
        if grant.terms.mode != "unattended" or not unattended_session:
            return "the receipt answers an unattended offer this session did not make"
    elif body.timeout_default != "refused":
        return "the receipt says silence meant yes; the offer said silence is a refusal"
    if body.decided_at < offered_at - RECEIPT_CLOCK_SKEW:
        return "the receipt was decided before the offer was made"
    if body.decided_at > grant.terms.answer_by + RECEIPT_CLOCK_SKEW:
        return "the receipt was decided after the offer's answer-by time"
    if received_at > grant.terms.answer_by + RECEIPT_CLOCK_SKEW:
        return "the receipt arrived after the offer's answer-by time"
    # Judged on the server's own clock: the agent starts counting only once the offer reached
    # it, so an honest timeout never arrives before the offer's time plus the timeout.
    timed_out = any(item.decision is ConsentDecision.TIMED_OUT for item in body.decisions)
    earliest_timeout = offered_at + timedelta(seconds=grant.terms.timeout_seconds)
    if timed_out and received_at < earliest_timeout - TIMEOUT_MARGIN:
        return "the receipt says the prompt timed out before its timeout was up"
    return None


async def record_consent(
    db: AsyncSession, *, support_session: SupportSession, receipt: SignedDocument,
    server_key: Ed25519PrivateKey,
) -> SupportSession:
    """Verify and keep the receipt; the session becomes active, rejected or expired. A receipt
    that does not answer this session's offer ends the session (``AgentRefused`` with the code,
    after the session is ended in the same transaction)."""
    if support_session.state != S.AWAITING_CONSENT:
        raise AgentRefused("protocol.illegal_transition",
                           f"the support session is {support_session.state}, not awaiting consent")
    assert support_session.device_public_key is not None  # noqa: S101 -- set at join
    assert support_session.offered_at is not None  # noqa: S101 -- set with the offer
    signed_grant = current_grant(support_session)
    assert signed_grant is not None  # noqa: S101 -- made at the offer
    grant = read_grant(server_key.public_key(), signed_grant)
    try:
        body = verify_receipt(decode_ed25519_public_key(support_session.device_public_key),
                              receipt)
    except (ReceiptError, KeyEncodingInvalid) as exc:
        raise await _refuse_receipt(db, support_session, exc.code, str(exc)) from exc
    if (
        body.support_session_id != str(support_session.id)
        or body.device_id != str(support_session.device_id)
        or body.grant_nonce != support_session.grant_nonce
    ):
        raise await _refuse_receipt(db, support_session, "receipt.wrong_grant",
                                    "the receipt does not answer this support session's grant")
    received_at = clock.now()
    is_unattended = support_session.mode == "unattended"
    mismatch = receipt_mismatch(body, grant, support_session.offered_at, received_at,
                                unattended_session=is_unattended)
    if mismatch is not None:
        raise await _refuse_receipt(db, support_session, "receipt.mismatch", mismatch)
    if is_unattended and body.granted():
        # Never started during an emergency, whatever the policy says (declared between the
        # offer and this receipt): the offer is never made during one either.
        if await emergency.is_active(db, organisation_id=support_session.organisation_id):
            raise await _refuse_receipt(db, support_session, "emergency.unattended_locked",
                                        "unattended access is locked during an emergency",
                                        EndReason.EMERGENCY)
        # The owner's pre-authorisation stands for the person's answer: it must still be live
        # and hold what the agent granted (revoked or shut meanwhile: the session ends).
        try:
            assert support_session.device_id is not None  # noqa: S101 -- set at the request
            device = unattended.usable_device(
                await db.get(Device, support_session.device_id), support_session.device_id)
            await unattended.check_record(
                db, device=device, pre_authorisation_id=support_session.pre_authorisation_id,
                capabilities=body.granted(), now=received_at,
                server_fingerprint=fingerprint(server_key.public_key()))
        except DomainError as exc:
            raise await _refuse_receipt(
                db, support_session, exc.code, exc.message,
                UNATTENDED_END_REASONS.get(exc.code, EndReason.PROTOCOL_ERROR)) from None
    assert support_session.device_id is not None  # noqa: S101 -- checked through the receipt
    decisions = {str(d.capability): str(d.decision) for d in body.decisions}
    db.add(ConsentReceiptRecord(
        organisation_id=support_session.organisation_id, support_session_id=support_session.id,
        device_id=support_session.device_id, body=receipt.body, signature=receipt.signature,
        decisions=decisions, prompt_sha256=body.prompt_sha256, decided_at=body.decided_at,
        received_at=received_at,
    ))
    actor = agent_actor(support_session)
    await record(db, action=AuditAction.CONSENT_RECORDED, actor=actor,
                 details={"decisions": decisions, "decided_at": body.decided_at.isoformat(),
                          "timeout_default": body.timeout_default,
                          "prompt_sha256": body.prompt_sha256},
                 **audit_target(support_session))
    # The agent enforces the same intersection itself: receipt and grant must both say yes.
    granted = sorted(
        str(c) for c in body.granted() if str(c) in support_session.requested_capabilities
    )
    if granted:
        move(support_session, S.ACTIVE)
        support_session.granted_capabilities = granted
        support_session.activated_at = received_at
        # The person was reached: the ticket is worked on (new -> open, first response).
        await tickets.record_session_started(
            db, ticket_id=support_session.ticket_id,
            technician=await technician_actor(db, support_session), now=received_at,
        )
        await record(db, action=AuditAction.SUPPORT_SESSION_ACTIVATED, actor=actor,
                     details={"granted": granted,
                              "not_after": support_session.not_after.isoformat()
                              if support_session.not_after else None},
                     **audit_target(support_session))
        return support_session
    all_timed_out = all(d.decision == ConsentDecision.TIMED_OUT for d in body.decisions)
    if all_timed_out:
        return await end_support_session(
            db, support_session=support_session, ended_by=Party.AGENT,
            reason=EndReason.CONSENT_TIMED_OUT, actor=actor, state=S.EXPIRED,
        )
    # Unattended: the agent refused the offer itself (its error says why); nobody was asked.
    return await end_support_session(
        db, support_session=support_session,
        ended_by=Party.AGENT if is_unattended else Party.END_USER,
        reason=EndReason.CONSENT_REFUSED, actor=actor, state=S.REJECTED,
    )


async def list_receipts(
    db: AsyncSession, *, support_session_id: uuid.UUID | None = None,
    requester_id: uuid.UUID | None = None, organisation_id: uuid.UUID,
) -> list[ConsentReceiptRecord]:
    query = select(ConsentReceiptRecord).where(
        ConsentReceiptRecord.organisation_id == organisation_id
    )
    if support_session_id is not None:
        query = query.where(ConsentReceiptRecord.support_session_id == support_session_id)
    if requester_id is not None:
        query = query.join(
            SupportSession, SupportSession.id == ConsentReceiptRecord.support_session_id
        ).where(SupportSession.requester_id == requester_id)
    rows = await db.execute(query.order_by(ConsentReceiptRecord.received_at))
    return list(rows.scalars())

"""Extensions of a running support session (R5, docs/support-sessions.md §4).

The technician asks with a reason; the policy decides, and an approver answers where the policy
says so; then the person on the device accepts or refuses. Only an accepted extension moves the
session's end, on the server and on the device alike. The extension's grant is signed with the
technician's reason and chained to the grant the person last agreed to, so the agent can check
that it stays within the extension terms of the first grant.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from auxilio.crypto.errors import KeyEncodingInvalid, ReceiptError
from auxilio.crypto.grants import read_grant
from auxilio.crypto.keys import decode_ed25519_public_key
from auxilio.crypto.receipts import prompt_digest, verify_extension_receipt
from auxilio.policy import Decision, Effect, EvaluationContext, ExtendSession
from auxilio.protocol.states import SupportSessionState
from auxilio.protocol.types import CapabilityGrant, ConsentDecision, ExtensionNote, SignedDocument
from auxilio.server.audit.actions import AuditAction
from auxilio.server.audit.service import record
from auxilio.server.context import Actor
from auxilio.server.errors import (
    ExtensionInProgress,
    ExtensionNotFound,
    ExtensionNotPending,
    Forbidden,
    SupportSessionNotActive,
)
from auxilio.server.policies import service as policies
from auxilio.server.support_sessions import clock
from auxilio.server.support_sessions.consent import (
    EXTENSION_ANSWER_SECONDS,
    RECEIPT_CLOCK_SKEW,
    AgentRefused,
    adopt_grant,
    agent_actor,
    current_grant,
    sign_grant_for,
)
from auxilio.server.support_sessions.models import SessionExtension, SupportSession
from auxilio.server.support_sessions.service import audit_target

S = SupportSessionState
# Extensions that count against the policy's limits: taken, or on their way to the person.
_COUNTED = ("offered", "accepted")


@dataclass(frozen=True, slots=True)
class ExtensionOutcome:
    extension: SessionExtension
    decision: Decision
    grant: SignedDocument | None = None  # the grant proposed to the device, when allowed


def _require_active(support_session: SupportSession) -> None:
    if support_session.state != S.ACTIVE:
        raise SupportSessionNotActive(state=support_session.state)


async def _lapse_unanswered(db: AsyncSession, support_session_id: uuid.UUID) -> None:
    """An extension the person never answered lapses once its answer time (and the clock skew)
    is over, so that it neither counts nor blocks the next request."""
    cutoff = clock.now() - timedelta(seconds=EXTENSION_ANSWER_SECONDS) - RECEIPT_CLOCK_SKEW
    rows = await db.execute(select(SessionExtension).where(
        SessionExtension.support_session_id == support_session_id,
        SessionExtension.state == "offered", SessionExtension.offered_at < cutoff,
    ))
    for row in rows.scalars():
        row.state = "lapsed"


async def _counted_so_far(db: AsyncSession, support_session_id: uuid.UUID) -> list[int]:
    rows = await db.execute(select(SessionExtension.seconds).where(
        SessionExtension.support_session_id == support_session_id,
        SessionExtension.state.in_(_COUNTED),
    ))
    return [int(r) for r in rows.scalars()]


async def _in_progress(db: AsyncSession, support_session_id: uuid.UUID) -> bool:
    found = await db.execute(select(SessionExtension.id).where(
        SessionExtension.support_session_id == support_session_id,
        SessionExtension.state.in_(("pending", "offered")),
    ).limit(1))
    return found.first() is not None


async def _decide(
    db: AsyncSession, support_session: SupportSession, extension: SessionExtension, actor: Actor,
    *, approver: bool,
) -> Decision:
    assert support_session.not_after is not None  # noqa: S101 -- active sessions have one
    done = await _counted_so_far(db, support_session.id)
    return await policies.decide(
        db, actor=actor, organisation_id=support_session.organisation_id,
        context=EvaluationContext(now=clock.now()), target_type="support_session",
        target_id=support_session.id, policy=await policies.policy_for_session(db, support_session),
        request=ExtendSession(
            requested=timedelta(seconds=extension.seconds),
            current_end_at=support_session.not_after, reason=extension.reason,
            approver_role=actor.role if approver else None,
            extended_so_far=timedelta(seconds=sum(done)), extensions_so_far=len(done),
        ),
    )


async def _offer(
    db: AsyncSession, support_session: SupportSession, extension: SessionExtension,
    server_key: Ed25519PrivateKey, actor: Actor, decision: Decision,
) -> SignedDocument:
    """Sign the extension's grant for the person to answer; the session's end does not move."""
    signed_old = current_grant(support_session)
    assert signed_old is not None  # noqa: S101 -- granted at the offer
    old = read_grant(server_key.public_key(), signed_old)
    new_end = old.not_after + timedelta(seconds=extension.seconds)
    # Capabilities that ran to the session's end keep doing so; a shorter, per-capability
    # limit of the policy is not extended by a longer session.
    capabilities = [
        CapabilityGrant(capability=c.capability, limits=c.limits,
                        expires_at=new_end if c.expires_at >= old.not_after else c.expires_at)
        for c in old.capabilities
    ]
    previous = old.extension
    note = ExtensionNote(
        sequence=(previous.sequence if previous is not None else 0) + 1,
        reason=extension.reason,
        previous_nonce=old.nonce,
        original_not_after=previous.original_not_after if previous is not None else old.not_after,
        answer_within_seconds=EXTENSION_ANSWER_SECONDS,
    )
    now = clock.now()
    signed = await sign_grant_for(db, support_session=support_session, server_key=server_key,
                                  issued_at=now, not_after=new_end, capabilities=capabilities,
                                  terms=old.terms, extensions=old.extensions, extension=note)
    extension.state = "offered"
    extension.decided_by_id = actor.id
    extension.decided_at = now
    extension.decision_rule = decision.rule
    extension.grant_body = signed.body
    extension.grant_signature = signed.signature
    extension.grant_nonce = read_grant(server_key.public_key(), signed).nonce
    extension.offered_at = now
    await record(db, action=AuditAction.EXTENSION_APPROVED, actor=actor,
                 details={"extension_id": str(extension.id), "seconds": extension.seconds,
                          "proposed_not_after": new_end.isoformat(), "rule": decision.rule,
                          "policy_version": decision.policy_version,
                          "awaiting": "end_user", "grant_nonce": extension.grant_nonce},
                 **audit_target(support_session))
    return signed


async def _deny(
    db: AsyncSession, support_session: SupportSession, extension: SessionExtension, actor: Actor,
    rule: str, policy_version: str | None,
) -> None:
    extension.state = "denied"
    extension.decided_by_id = actor.id
    extension.decided_at = clock.now()
    extension.decision_rule = rule
    await record(db, action=AuditAction.EXTENSION_DENIED, actor=actor,
                 details={"extension_id": str(extension.id), "rule": rule,
                          "policy_version": policy_version},
                 **audit_target(support_session))


async def request_extension(
    db: AsyncSession, *, support_session: SupportSession, seconds: int, reason: str,
    actor: Actor, server_key: Ed25519PrivateKey,
) -> ExtensionOutcome:
    _require_active(support_session)
    if actor.id != support_session.technician_id:
        raise Forbidden("Only the session's technician can do this.")
    assert actor.id is not None  # noqa: S101 -- the technician is a person
    await _lapse_unanswered(db, support_session.id)
    if await _in_progress(db, support_session.id):
        raise ExtensionInProgress()
    extension = SessionExtension(support_session_id=support_session.id, requested_by_id=actor.id,
                                 seconds=seconds, reason=reason, state="pending",
                                 created_at=clock.now())
    db.add(extension)
    await db.flush()
    decision = await _decide(db, support_session, extension, actor, approver=False)
    await record(db, action=AuditAction.EXTENSION_REQUESTED, actor=actor,
                 details={"extension_id": str(extension.id), "seconds": seconds,
                          "reason": reason, "effect": str(decision.effect),
                          "rule": decision.rule, "policy_version": decision.policy_version},
                 **audit_target(support_session))
    if decision.effect is Effect.DENY:
        await _deny(db, support_session, extension, actor, decision.rule, decision.policy_version)
        return ExtensionOutcome(extension, decision)
    if decision.effect is Effect.REQUIRE_APPROVAL:
        extension.decision_rule = decision.rule
        return ExtensionOutcome(extension, decision)
    grant = await _offer(db, support_session, extension, server_key, actor, decision)
    return ExtensionOutcome(extension, decision, grant)


async def get_extension_or_raise(
    db: AsyncSession, *, support_session: SupportSession, extension_id: uuid.UUID
) -> SessionExtension:
    extension = await db.get(SessionExtension, extension_id, with_for_update=True)
    if extension is None or extension.support_session_id != support_session.id:
        raise ExtensionNotFound(extension_id=str(extension_id))
    return extension


async def decide_extension(
    db: AsyncSession, *, support_session: SupportSession, extension: SessionExtension,
    approve: bool, actor: Actor, server_key: Ed25519PrivateKey,
) -> ExtensionOutcome:
    """An approver's answer to a pending extension. A policy refusal of the approval (the
    approver's role is too low, the limit is spent) leaves it pending for someone who may."""
    if extension.state != "pending":
        raise ExtensionNotPending(state=extension.state)
    _require_active(support_session)
    if not approve:
        await _deny(db, support_session, extension, actor, "approver", None)
        return ExtensionOutcome(extension, Decision(Effect.DENY, "approver", "refused", None))
    decision = await _decide(db, support_session, extension, actor, approver=True)
    if decision.effect is not Effect.ALLOW:
        return ExtensionOutcome(extension, decision)
    grant = await _offer(db, support_session, extension, server_key, actor, decision)
    return ExtensionOutcome(extension, decision, grant)


async def record_extension_answer(
    db: AsyncSession, *, support_session: SupportSession, receipt: SignedDocument,
    server_key: Ed25519PrivateKey,
) -> SessionExtension:
    """The person's signed answer to the offered extension. Accepted: its grant becomes the
    session's and the end moves. Refused or unanswered: nothing changes. Refusals of the receipt
    raise ``AgentRefused`` (audited) and change nothing either."""
    _require_active(support_session)
    assert support_session.device_public_key is not None  # noqa: S101 -- set at join
    actor = agent_actor(support_session)

    async def refuse(code: str, message: str) -> AgentRefused:
        await record(db, action=AuditAction.RECEIPT_REJECTED, actor=actor,
                     details={"code": code, "message": message, "of": "extension"},
                     **audit_target(support_session))
        return AgentRefused(code, message)

    try:
        body = verify_extension_receipt(
            decode_ed25519_public_key(support_session.device_public_key), receipt
        )
    except (ReceiptError, KeyEncodingInvalid) as exc:
        raise await refuse(exc.code, str(exc)) from exc
    row = (await db.execute(select(SessionExtension).where(
        SessionExtension.support_session_id == support_session.id,
        SessionExtension.grant_nonce == body.grant_nonce,
    ).with_for_update())).scalar_one_or_none()
    if (
        row is None or body.support_session_id != str(support_session.id)
        or body.device_id != str(support_session.device_id)
    ):
        raise await refuse("receipt.wrong_grant", "the answer names no extension of this session")
    if row.state != "offered":
        raise await refuse("extension.not_offered", f"the extension is {row.state}")
    assert row.grant_body is not None and row.grant_signature is not None  # noqa: S101 -- offered
    assert row.offered_at is not None  # noqa: S101 -- set with the grant
    proposed = SignedDocument(body=row.grant_body, signature=row.grant_signature)
    grant = read_grant(server_key.public_key(), proposed)
    now = clock.now()
    late = now > row.offered_at + timedelta(seconds=EXTENSION_ANSWER_SECONDS) + RECEIPT_CLOCK_SKEW
    if body.new_not_after != grant.not_after or body.reason_sha256 != prompt_digest(row.reason):
        raise await refuse("receipt.mismatch", "the answer is about another end or reason "
                           "than the extension offered")
    row.answered_at = now
    accepted = body.decision is ConsentDecision.GRANTED and not late
    details = {"extension_id": str(row.id), "decision": str(body.decision),
               "decided_at": body.decided_at.isoformat(), "late": late}
    if not accepted:
        row.state = "declined"
        await record(db, action=AuditAction.EXTENSION_DECLINED, actor=actor, details=details,
                     **audit_target(support_session))
        return row
    adopt_grant(support_session, proposed, server_key)
    support_session.warned_at = None
    row.state = "accepted"
    await record(db, action=AuditAction.EXTENSION_ACCEPTED, actor=actor,
                 details={**details, "new_not_after": grant.not_after.isoformat()},
                 **audit_target(support_session))
    return row

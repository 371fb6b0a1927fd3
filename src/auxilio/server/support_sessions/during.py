"""What happens while a support session runs and after it ends: activity reports, warnings,
extensions, capability revocations, the technician's summary and the session report."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from auxilio.crypto.grants import read_grant
from auxilio.policy import Decision, Effect, EvaluationContext, ExtendSession
from auxilio.protocol.frames import Party
from auxilio.protocol.frames import SessionActivity as ActivityMessage
from auxilio.protocol.states import SupportSessionState
from auxilio.protocol.types import Capability, CapabilityGrant, SignedDocument
from auxilio.server.audit.actions import AuditAction
from auxilio.server.audit.service import record
from auxilio.server.context import Actor
from auxilio.server.errors import (
    ExtensionNotFound,
    ExtensionNotPending,
    Forbidden,
    SupportSessionNotActive,
    SupportSessionNotEnded,
)
from auxilio.server.identity import service as identity
from auxilio.server.policies import service as policies
from auxilio.server.support_sessions import clock
from auxilio.server.support_sessions.consent import sign_grant_for
from auxilio.server.support_sessions.models import SessionActivity, SessionExtension, SupportSession
from auxilio.server.support_sessions.service import audit_target, is_final

S = SupportSessionState


def _require_active(support_session: SupportSession) -> None:
    if support_session.state != S.ACTIVE:
        raise SupportSessionNotActive(state=support_session.state)


def _require_technician(support_session: SupportSession, actor: Actor) -> None:
    if actor.id != support_session.technician_id:
        raise Forbidden("Only the session's technician can do this.")


# ---- activity and warnings -------------------------------------------------------------------


async def report_activity(
    db: AsyncSession, *, support_session: SupportSession, message: ActivityMessage, actor: Actor
) -> SessionActivity:
    _require_active(support_session)
    row = SessionActivity(support_session_id=support_session.id, at=message.at,
                          capability=str(message.capability), kind=str(message.kind),
                          subject=message.subject)
    db.add(row)
    await record(db, action=AuditAction.ACTIVITY_REPORTED, actor=actor,
                 details={"capability": str(message.capability), "kind": str(message.kind),
                          "subject": message.subject, "at": message.at.isoformat(),
                          "granted": str(message.capability)
                          in support_session.granted_capabilities},
                 **audit_target(support_session))
    return row


async def mark_warned(db: AsyncSession, *, support_session: SupportSession) -> int:
    """Note the warning as sent; the seconds left."""
    now = clock.now()
    assert support_session.not_after is not None  # noqa: S101 -- active sessions have one
    support_session.warned_at = now
    remaining = max(0, int((support_session.not_after - now).total_seconds()))
    await record(db, action=AuditAction.SUPPORT_SESSION_WARNING_SENT, actor=Actor.system(
        support_session.organisation_id), details={
            "ends_at": support_session.not_after.isoformat(), "remaining_seconds": remaining},
        **audit_target(support_session))
    return remaining


async def revoke_capability(
    db: AsyncSession, *, support_session: SupportSession, capability: Capability,
    revoked_by: Party, reason: str, actor: Actor,
) -> None:
    _require_active(support_session)
    support_session.granted_capabilities = [
        c for c in support_session.granted_capabilities if c != str(capability)
    ]
    await record(db, action=AuditAction.CAPABILITY_REVOKED, actor=actor,
                 details={"capability": str(capability), "revoked_by": str(revoked_by),
                          "reason": reason, "remaining": support_session.granted_capabilities},
                 **audit_target(support_session))


# ---- extensions ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExtensionOutcome:
    extension: SessionExtension
    decision: Decision
    grant: SignedDocument | None = None  # the new grant when the extension took effect


async def _approved_so_far(db: AsyncSession, support_session_id: uuid.UUID) -> list[int]:
    rows = await db.execute(select(SessionExtension.seconds).where(
        SessionExtension.support_session_id == support_session_id,
        SessionExtension.state == "approved",
    ))
    return [int(r) for r in rows.scalars()]


async def _decide_extension(
    db: AsyncSession, support_session: SupportSession, extension: SessionExtension, actor: Actor,
    *, approver: bool,
) -> Decision:
    assert support_session.not_after is not None  # noqa: S101 -- active sessions have one
    done = await _approved_so_far(db, support_session.id)
    return await policies.decide(
        db, actor=actor, organisation_id=support_session.organisation_id,
        context=EvaluationContext(now=clock.now()), target_type="support_session",
        target_id=support_session.id,
        request=ExtendSession(
            requested=timedelta(seconds=extension.seconds),
            current_end_at=support_session.not_after, reason=extension.reason,
            approver_role=actor.role if approver else None,
            extended_so_far=timedelta(seconds=sum(done)), extensions_so_far=len(done),
        ),
    )


async def _apply(
    db: AsyncSession, support_session: SupportSession, extension: SessionExtension,
    server_key: Ed25519PrivateKey, actor: Actor, decision: Decision,
) -> SignedDocument:
    assert support_session.not_after is not None  # noqa: S101 -- active sessions have one
    assert support_session.grant_body is not None  # noqa: S101 -- granted at the offer
    assert support_session.grant_signature is not None  # noqa: S101 -- granted at the offer
    old_end = support_session.not_after
    new_end = old_end + timedelta(seconds=extension.seconds)
    old = read_grant(server_key.public_key(), SignedDocument(
        body=support_session.grant_body, signature=support_session.grant_signature))
    # Capabilities that ran to the session's end keep doing so; a shorter, per-capability
    # limit of the policy is not extended by a longer session.
    capabilities = [
        CapabilityGrant(capability=c.capability, limits=c.limits,
                        expires_at=new_end if c.expires_at >= old_end else c.expires_at)
        for c in old.capabilities
    ]
    grant = await sign_grant_for(db, support_session=support_session, server_key=server_key,
                                 issued_at=clock.now(), not_after=new_end,
                                 capabilities=capabilities)
    support_session.warned_at = None
    extension.state = "approved"
    extension.decided_by_id = actor.id
    extension.decided_at = clock.now()
    extension.decision_rule = decision.rule
    await record(db, action=AuditAction.EXTENSION_APPROVED, actor=actor,
                 details={"extension_id": str(extension.id), "seconds": extension.seconds,
                          "new_not_after": new_end.isoformat(), "rule": decision.rule,
                          "policy_version": decision.policy_version},
                 **audit_target(support_session))
    return grant


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
    _require_technician(support_session, actor)
    assert actor.id is not None  # noqa: S101 -- the technician is a person
    extension = SessionExtension(support_session_id=support_session.id, requested_by_id=actor.id,
                                 seconds=seconds, reason=reason, state="pending",
                                 created_at=clock.now())
    db.add(extension)
    await db.flush()
    decision = await _decide_extension(db, support_session, extension, actor, approver=False)
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
    grant = await _apply(db, support_session, extension, server_key, actor, decision)
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
    decision = await _decide_extension(db, support_session, extension, actor, approver=True)
    if decision.effect is not Effect.ALLOW:
        return ExtensionOutcome(extension, decision)
    grant = await _apply(db, support_session, extension, server_key, actor, decision)
    return ExtensionOutcome(extension, decision, grant)


# ---- after the end ---------------------------------------------------------------------------


async def write_summary(
    db: AsyncSession, *, support_session: SupportSession, summary: str, actor: Actor
) -> SupportSession:
    _require_technician(support_session, actor)
    if not is_final(support_session):
        raise SupportSessionNotEnded(state=support_session.state)
    support_session.summary = summary
    support_session.summary_at = clock.now()
    await record(db, action=AuditAction.SUMMARY_WRITTEN, actor=actor,
                 details={"length": len(summary)}, **audit_target(support_session))
    return support_session


async def list_activities(db: AsyncSession, support_session_id: uuid.UUID) -> list[SessionActivity]:
    rows = await db.execute(
        select(SessionActivity).where(SessionActivity.support_session_id == support_session_id)
        .order_by(SessionActivity.at)
    )
    return list(rows.scalars())


def _duration(start: datetime | None, end: datetime | None) -> float | None:
    return (end - start).total_seconds() if start and end else None


async def build_report(db: AsyncSession, *, support_session: SupportSession) -> dict[str, Any]:
    technician = await identity.get_user(db, organisation_id=support_session.organisation_id,
                                         user_id=support_session.technician_id)
    activities = await list_activities(db, support_session.id)
    return {
        "support_session_id": support_session.id,
        "ticket_id": support_session.ticket_id,
        "ticket_ref": support_session.ticket_ref,
        "technician": {"id": support_session.technician_id,
                       "name": technician.display_name if technician else ""},
        "state": support_session.state,
        "started_at": support_session.activated_at,
        "ended_at": support_session.ended_at,
        "duration_seconds": _duration(support_session.activated_at, support_session.ended_at),
        "capabilities_requested": support_session.requested_capabilities,
        "capabilities_granted": support_session.granted_capabilities,
        "capabilities_used": sorted({a.capability for a in activities}),
        "commands_run": [a.subject for a in activities if a.kind == "command_run"],
        "activities": [{"at": a.at, "capability": a.capability, "kind": a.kind,
                        "subject": a.subject} for a in activities],
        "recorded": support_session.recorded,
        "ended_by": support_session.ended_by,
        "end_reason": support_session.end_reason,
        "end_detail": support_session.end_detail,
        "summary": support_session.summary,
    }

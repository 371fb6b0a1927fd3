"""Declaring, lifting and reading an organisation's emergency (R18, docs/emergency.md).

Who may is the active policy's: ``emergency.declare`` asked of the engine with the person's
role (``emergency.declare_roles``); lifting is the same power. A declaration with
``end_all_sessions`` ends every live support session of the organisation in the same
transaction as the emergency row, each with its ``support_session:session:ended`` event
(reason ``emergency``); the peers are told after the commit (``announce.py``). While the
emergency is active, ``is_active`` makes new session requests evaluate with
``emergency_active=True`` (so ``lock_unattended`` denies unattended starts).

Escalation: the policy's ``escalate_to`` contacts are notified in the console (the banner
names them, and a person whose email or role is a contact is told so); no email is sent, since
the server sends no email yet. The notice is audited (``emergency:escalation:notified``).
"""

from __future__ import annotations

import unicodedata
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from auxilio.policy import Decision, DeclareEmergency, Effect, EvaluationContext
from auxilio.protocol.frames import EndReason, Party
from auxilio.server.audit.actions import AuditAction
from auxilio.server.audit.service import record
from auxilio.server.context import Actor
from auxilio.server.emergency.errors import (
    EmergencyAlreadyActive,
    EmergencyNotActive,
    EmergencyReasonInvalid,
    EmergencyReasonRequired,
    EmergencyReasonTooLong,
)
from auxilio.server.emergency.models import Emergency
from auxilio.server.emergency.state import current as current  # re-exported
from auxilio.server.emergency.state import is_active
from auxilio.server.errors import Forbidden
from auxilio.server.identity.models import User
from auxilio.server.policies import service as policies
from auxilio.server.support_sessions import clock
from auxilio.server.support_sessions import service as sessions
from auxilio.server.support_sessions.models import SupportSession
from auxilio.server.validation import forbidden_character

REASON_MAX = 2000
DECLARE_RULE = "emergency.declare_roles"
END_ALL = "end_all_sessions"
LOCK_UNATTENDED = "lock_unattended"


def check_reason(reason: str) -> str:
    """The reason as kept: NFC, trimmed, non-empty, at most ``REASON_MAX`` characters, no
    control characters but line breaks and tabs, and no bidirectional overrides (the banner
    shows it to everyone: it must read as what it is, as ``server.validation`` holds)."""
    text = unicodedata.normalize("NFC", reason).strip()
    if not text:
        raise EmergencyReasonRequired(field="reason")
    if len(text) > REASON_MAX:
        raise EmergencyReasonTooLong(
            f"The reason is {len(text)} characters; at most {REASON_MAX}.",
            field="reason", max_length=REASON_MAX,
        )  # fmt: skip
    if (found := forbidden_character(text, multiline=True)) is not None:
        raise EmergencyReasonInvalid(field="reason", position=found[0])
    return text


def _org(actor: Actor) -> uuid.UUID:
    if actor.organisation_id is None or actor.id is None or actor.role is None:
        raise Forbidden("An emergency is declared by a person of an organisation.")
    return actor.organisation_id


async def latest(db: AsyncSession, *, organisation_id: uuid.UUID) -> Emergency | None:
    """The organisation's most recent emergency, active or lifted."""
    query = (
        select(Emergency)
        .where(Emergency.organisation_id == organisation_id)
        .order_by(Emergency.declared_at.desc())
        .limit(1)
    )
    return (await db.execute(query)).scalar_one_or_none()


async def decide(db: AsyncSession, *, actor: Actor, now: datetime | None = None) -> Decision:
    """The policy's answer to "may this person declare (or lift) an emergency?", audited in
    ``db``'s transaction (``policy:decision:made`` / ``denied``)."""
    org = _org(actor)
    assert actor.role is not None  # noqa: S101 -- _org checked it
    return await policies.decide(
        db, actor=actor, organisation_id=org, request=DeclareEmergency(role=actor.role),
        context=EvaluationContext(now=now or clock.now(),
                                  emergency_active=await is_active(db, organisation_id=org)),
        target_type="emergency",
    )  # fmt: skip


def _allowed_or_raise(decision: Decision) -> None:
    if decision.effect is not Effect.ALLOW:
        raise policies.policy_denied(decision)


async def record_refusal(db: AsyncSession, *, actor: Actor) -> None:
    """After a refused declare or lift was rolled back: the policy's denial is asked again and
    committed on its own, so that the refusal stays on record (DESIGN.md: denials are audited)."""
    await decide(db, actor=actor)
    await db.commit()


@dataclass(frozen=True, slots=True)
class Declared:
    emergency: Emergency
    decision: Decision
    ended: list[SupportSession]  # ended in the declaration's transaction; tell their peers


async def declare(db: AsyncSession, *, actor: Actor, reason: str) -> Declared:
    """Declare the organisation's emergency and carry out the policy's actions."""
    text = check_reason(reason)
    org = _org(actor)
    assert actor.id is not None  # noqa: S101 -- _org checked it
    now = clock.now()
    decision = await decide(db, actor=actor, now=now)
    _allowed_or_raise(decision)
    if await is_active(db, organisation_id=org):
        raise EmergencyAlreadyActive()
    actions = list(decision.obligations.emergency_actions)
    contacts = list(decision.obligations.escalate_to)
    row = Emergency(
        organisation_id=org, declared_by=actor.id, declared_at=now, reason=text,
        policy_version=decision.policy_version, actions=actions, escalate_to=contacts,
        sessions_ended=0,
    )  # fmt: skip
    try:
        # A savepoint: on PostgreSQL a concurrent declaration that committed first makes this
        # insert fail on the partial unique index; the rest of the transaction stays usable.
        async with db.begin_nested():
            db.add(row)
            await db.flush()
    except IntegrityError:
        raise EmergencyAlreadyActive() from None
    ended = await end_live_sessions(db, organisation_id=org, emergency=row, actor=actor) \
        if END_ALL in actions else []  # fmt: skip
    row.sessions_ended = len(ended)
    await record(
        db, action=AuditAction.EMERGENCY_DECLARED, actor=actor, organisation_id=org,
        target_type="emergency", target_id=row.id,
        details={"reason": text, "actions": actions, "escalate_to": contacts,
                 "rule": decision.rule, "policy_version": decision.policy_version,
                 "sessions_ended": len(ended)},
    )  # fmt: skip
    if contacts:
        await record(
            db, action=AuditAction.EMERGENCY_ESCALATED, actor=actor, organisation_id=org,
            target_type="emergency", target_id=row.id,
            details={"contacts": contacts, "channel": "console", "email": "not_built"},
        )
    await db.flush()
    return Declared(emergency=row, decision=decision, ended=ended)


async def end_live_sessions(
    db: AsyncSession, *, organisation_id: uuid.UUID, emergency: Emergency, actor: Actor
) -> list[SupportSession]:
    """End every live support session of the organisation (requested, awaiting consent or
    active), each locked, moved and audited as any end is, with reason ``emergency``."""
    query = (
        select(SupportSession)
        .where(
            SupportSession.organisation_id == organisation_id,
            SupportSession.state.in_([str(s) for s in sessions.LIVE_STATES]),
        )
        .order_by(SupportSession.created_at)
        .with_for_update()
    )
    live = list((await db.execute(query)).scalars())
    # The technicians, loaded once and held: each end looks its technician up (the time spent
    # goes on the ticket), and the session's identity map keeps only what is referenced.
    technicians = list((await db.execute(
        select(User).where(User.id.in_({row.technician_id for row in live}))
    )).scalars()) if live else []  # fmt: skip
    # One flush at the end, not one before every query of every end: with hundreds of ended
    # sessions in the unit of work, autoflush would walk them all again for each (quadratic).
    with db.no_autoflush:
        for row in live:
            await sessions.end_support_session(
                db, support_session=row, ended_by=Party.SUPERVISOR, reason=EndReason.EMERGENCY,
                detail=f"emergency {emergency.id}", actor=actor,
            )  # fmt: skip
    await db.flush()
    del technicians
    return live


async def lift(db: AsyncSession, *, actor: Actor, reason: str) -> Emergency:
    """Lift the organisation's active emergency (the same power as declaring it)."""
    text = check_reason(reason)
    org = _org(actor)
    now = clock.now()
    decision = await decide(db, actor=actor, now=now)
    _allowed_or_raise(decision)
    query = select(Emergency).where(
        Emergency.organisation_id == org, Emergency.lifted_at.is_(None)
    )
    row = (await db.execute(query.with_for_update())).scalar_one_or_none()
    if row is None:
        raise EmergencyNotActive()
    row.lifted_by, row.lifted_at, row.lift_reason = actor.id, now, text
    await record(
        db, action=AuditAction.EMERGENCY_LIFTED, actor=actor, organisation_id=org,
        target_type="emergency", target_id=row.id,
        details={"reason": text, "declared_at": row.declared_at.isoformat(),
                 "duration_seconds": round((now - row.declared_at).total_seconds()),
                 "rule": decision.rule, "policy_version": decision.policy_version},
    )  # fmt: skip
    await db.flush()
    return row


@dataclass(frozen=True, slots=True)
class Banner:
    """What every signed-in person of the organisation sees while the emergency lasts: a plain
    copy, since error pages render after the request's transaction rolled back."""

    id: uuid.UUID
    declared_by: str
    declared_at: datetime
    reason: str
    escalate_to: tuple[str, ...]
    sessions_ended: int
    you_are_contact: bool  # this person's email or role is one of the escalation contacts


def is_contact(contacts: list[str] | tuple[str, ...], *, email: str, role: str) -> bool:
    wanted = {c.strip().casefold() for c in contacts}
    return email.casefold() in wanted or role.casefold() in wanted


async def banner(db: AsyncSession, *, user: User) -> Banner | None:
    """The banner for ``user``'s pages, None without an active emergency."""
    row = await current(db, organisation_id=user.organisation_id)
    if row is None:
        return None
    by = await db.get(User, row.declared_by)
    return Banner(
        id=row.id, declared_by=by.display_name if by else "?", declared_at=row.declared_at,
        reason=row.reason, escalate_to=tuple(row.escalate_to or ()),
        sessions_ended=row.sessions_ended,
        you_are_contact=is_contact(row.escalate_to or [], email=user.email, role=user.role),
    )  # fmt: skip

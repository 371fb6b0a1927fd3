"""The person's satisfaction survey (R13): made when a support session ends or a ticket is
resolved, sent after the policy's delay, answered or declined once, expired after
``SURVEY_LINK_DAYS``. docs/surveys.md says the same for readers.

Every state change here writes its audit event in the caller's transaction. Answering is one
``UPDATE ... WHERE state = 'sent' AND nonce = :nonce``: of two concurrent answers exactly one
changes the row, the other finds it answered.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession

from auxilio.policy.roles import STAFF_ROLES
from auxilio.server.audit.actions import AuditAction
from auxilio.server.audit.service import record
from auxilio.server.context import Actor
from auxilio.server.db.base import utcnow
from auxilio.server.errors import (
    SurveyAlreadyAnswered,
    SurveyCommentInvalid,
    SurveyCommentTooLong,
    SurveyLinkExpired,
    SurveyLinkInvalid,
    SurveyNotFound,
    SurveyNotThePerson,
    SurveyScoreOutOfScale,
    SurveyWrongSubject,
)
from auxilio.server.policies import service as policies
from auxilio.server.reporting.definitions import SURVEY_LINK_DAYS
from auxilio.server.surveys.models import Survey
from auxilio.server.surveys.tokens import LinkPayload, make_link_token, read_link_token
from auxilio.server.validation import forbidden_character

if TYPE_CHECKING:  # the callers pass their rows in; importing their services would be a cycle
    from auxilio.server.support_sessions.models import SupportSession
    from auxilio.server.tickets.models import Ticket

MAX_COMMENT = 2000
LINK_LIFETIME = timedelta(days=SURVEY_LINK_DAYS)


class SurveyState(StrEnum):
    SCHEDULED = "scheduled"
    SENT = "sent"
    ANSWERED = "answered"
    DECLINED = "declined"
    EXPIRED = "expired"


class Via(StrEnum):
    PORTAL = "portal"
    LINK = "link"
    AGENT = "agent"


FINISHED = frozenset({SurveyState.ANSWERED, SurveyState.DECLINED})


def session_subject(support_session_id: uuid.UUID) -> str:
    return f"session:{support_session_id}"


def ticket_subject(ticket_id: uuid.UUID) -> str:
    return f"ticket:{ticket_id}"


def sampled_in(subject: str, sampling: float) -> bool:
    """Deterministic: the subject's SHA-256 read as a number in [0, 1), below ``sampling``. The
    same session is always in or always out, whichever node decides, and 1.0 takes every one."""
    digest = hashlib.sha256(subject.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < sampling


async def _audit(
    db: AsyncSession, survey: Survey, action: AuditAction, *, actor: Actor, **details: object
) -> None:
    await record(db, action=action, actor=actor, organisation_id=survey.organisation_id,
                 target_type="survey", target_id=survey.id,
                 details={"subject": survey.subject, **details})


# ---- creating and sending ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Ties:
    organisation_id: uuid.UUID
    subject: str
    ticket_id: uuid.UUID
    support_session_id: uuid.UUID | None
    requester_id: uuid.UUID
    technician_id: uuid.UUID | None
    policy_version: str | None


async def schedule_for_support_session(
    db: AsyncSession, *, support_session: SupportSession, actor: Actor, now: datetime | None = None
) -> Survey | None:
    """At the end of a session that became active (the person consented): its survey, if the
    policy the session was decided with asks for one and samples this session in. None
    otherwise."""
    if support_session.activated_at is None:
        return None
    return await _schedule(db, _Ties(
        organisation_id=support_session.organisation_id,
        subject=session_subject(support_session.id),
        ticket_id=support_session.ticket_id,
        support_session_id=support_session.id,
        requester_id=support_session.requester_id,
        technician_id=support_session.technician_id,
        policy_version=support_session.policy_version,
    ), actor=actor, now=now or utcnow())  # fmt: skip


async def schedule_for_ticket(
    db: AsyncSession, *, ticket: Ticket, actor: Actor, now: datetime | None = None
) -> Survey | None:
    """Called as a ticket moves to resolved, *before* its ``resolved_at`` moves: a ticket whose
    sessions got a survey since it was last resolved or closed (or opened) gets none of its own;
    nor does one that already had its ticket survey (a subject is surveyed once)."""
    since = max(t for t in (ticket.created_at, ticket.resolved_at, ticket.closed_at) if t)
    by_session = await db.execute(
        select(Survey.id).where(
            Survey.ticket_id == ticket.id,
            Survey.support_session_id.is_not(None),
            Survey.created_at >= since,
        ).limit(1)
    )
    if by_session.first() is not None:
        return None
    return await _schedule(db, _Ties(
        organisation_id=ticket.organisation_id,
        subject=ticket_subject(ticket.id),
        ticket_id=ticket.id,
        support_session_id=None,
        requester_id=ticket.requester_id,
        technician_id=ticket.assignee_id,
        policy_version=ticket.policy_version,
    ), actor=actor, now=now or utcnow())  # fmt: skip


async def _policy_in_force(db: AsyncSession, ties: _Ties) -> policies.ActivePolicy:
    """The version the session (or ticket) carries, a pilot's where one decided it; the active
    policy only when that label names no stored version."""
    found = await policies.get_policy_by_label(db, organisation_id=ties.organisation_id,
                                               label=ties.policy_version)
    if found is not None:
        return found
    return await policies.get_active_policy(db, organisation_id=ties.organisation_id)


async def _schedule(db: AsyncSession, ties: _Ties, *, actor: Actor, now: datetime) -> Survey | None:
    wanted = (await _policy_in_force(db, ties)).policy.post_session.survey
    if wanted is None or not wanted.enabled or not sampled_in(ties.subject, wanted.sampling):
        return None
    if ties.technician_id is not None and ties.technician_id == ties.requester_id:
        # Staff who opened a ticket for themselves and helped on it would rate their own help.
        return None
    existing = await db.execute(
        select(Survey.id).where(Survey.organisation_id == ties.organisation_id,
                                Survey.subject == ties.subject)
    )
    if existing.first() is not None:
        return None
    send_after = now + wanted.delay
    survey = Survey(
        organisation_id=ties.organisation_id, subject=ties.subject, ticket_id=ties.ticket_id,
        support_session_id=ties.support_session_id, requester_id=ties.requester_id,
        technician_id=ties.technician_id, policy_version=ties.policy_version,
        scale_min=wanted.scale[0], scale_max=wanted.scale[1], state=str(SurveyState.SCHEDULED),
        created_at=now, send_after=send_after, expires_at=send_after + LINK_LIFETIME,
        comment="", nonce=secrets.token_urlsafe(24),
    )  # fmt: skip
    db.add(survey)
    await db.flush()
    await _audit(db, survey, AuditAction.SURVEY_CREATED, actor=actor,
                 ticket_id=str(survey.ticket_id),
                 support_session_id=str(survey.support_session_id or ""),
                 policy_version=survey.policy_version or "", send_after=send_after.isoformat())
    if send_after <= now:
        await _send(db, survey, actor=actor, now=now)
    return survey


async def _send(db: AsyncSession, survey: Survey, *, actor: Actor, now: datetime) -> None:
    survey.state = str(SurveyState.SENT)
    survey.sent_at = now
    survey.expires_at = now + LINK_LIFETIME
    await _audit(db, survey, AuditAction.SURVEY_SENT, actor=actor,
                 expires_at=survey.expires_at.isoformat())


async def send_due(db: AsyncSession, *, now: datetime | None = None, limit: int = 500) -> int:
    """The scheduler's round: surveys whose delay has passed become answerable."""
    now = now or utcnow()
    rows = (await db.execute(
        select(Survey).where(Survey.state == str(SurveyState.SCHEDULED),
                             Survey.send_after <= now)
        .order_by(Survey.send_after).limit(limit).with_for_update(skip_locked=True)
    )).scalars().all()  # fmt: skip
    for survey in rows:
        await _send(db, survey, actor=Actor.system(survey.organisation_id), now=now)
    return len(rows)


async def expire_due(db: AsyncSession, *, now: datetime | None = None, limit: int = 500) -> int:
    """The expiry round: sent surveys nobody answered within ``SURVEY_LINK_DAYS``."""
    now = now or utcnow()
    rows = (await db.execute(
        select(Survey).where(Survey.state == str(SurveyState.SENT), Survey.expires_at <= now)
        .order_by(Survey.expires_at).limit(limit).with_for_update(skip_locked=True)
    )).scalars().all()  # fmt: skip
    for survey in rows:
        survey.state = str(SurveyState.EXPIRED)
        await _audit(db, survey, AuditAction.SURVEY_EXPIRED,
                     actor=Actor.system(survey.organisation_id))
    return len(rows)


# ---- links -------------------------------------------------------------------------------------


def link_token(key: Ed25519PrivateKey, survey: Survey) -> str:
    """The survey's current link (the same text for as long as its nonce stays)."""
    return make_link_token(key, LinkPayload(survey_id=survey.id, subject=survey.subject,
                                            nonce=survey.nonce, expires_at=survey.expires_at))


async def renew_link(
    db: AsyncSession, *, survey_id: uuid.UUID, actor: Actor, key: Ed25519PrivateKey
) -> str:
    """The person's new link: the nonce changes, so every earlier link stops working."""
    survey = await _mine_for_update(db, survey_id=survey_id, actor=actor)
    _check_answerable(survey, now=utcnow())
    survey.nonce = secrets.token_urlsafe(24)
    await _audit(db, survey, AuditAction.SURVEY_LINK_RENEWED, actor=actor)
    return link_token(key, survey)


async def survey_for_link(
    db: AsyncSession, *, key: Ed25519PrivateKey, token: str, expected_subject: str | None = None,
    now: datetime | None = None,
) -> Survey:
    """The survey a link opens, checked in the documented order: signature, nonce, expiry,
    already answered, subject. Raises the matching ``survey.*`` error."""
    link = read_link_token(key.public_key(), token)
    survey = await db.get(Survey, link.survey_id)
    if survey is None or survey.nonce != link.nonce or survey.subject != link.subject:
        raise SurveyLinkInvalid(reason="replaced")
    _check_answerable(survey, now=now or utcnow())
    if expected_subject is not None and expected_subject != survey.subject:
        raise SurveyWrongSubject()
    return survey


def _check_answerable(survey: Survey, *, now: datetime) -> None:
    state = SurveyState(survey.state)
    if state is SurveyState.SCHEDULED:
        raise SurveyNotFound()
    if state is SurveyState.EXPIRED or (state is SurveyState.SENT and survey.expires_at <= now):
        raise SurveyLinkExpired(expires_at=survey.expires_at.isoformat())
    if state in FINISHED:
        raise SurveyAlreadyAnswered(state=str(state))


# ---- answering ---------------------------------------------------------------------------------


def check_answer(survey: Survey, *, score: int, comment: str) -> None:
    if not survey.scale_min <= score <= survey.scale_max:
        raise SurveyScoreOutOfScale(min=survey.scale_min, max=survey.scale_max, score=score)
    if len(comment) > MAX_COMMENT:
        raise SurveyCommentTooLong(max_length=MAX_COMMENT, length=len(comment))
    # Every path (API, page, portal) checks here: the page's form field is a bare string.
    if (found := forbidden_character(comment, multiline=True)) is not None:
        raise SurveyCommentInvalid(position=found[0], reason=found[1])


async def _finish(
    db: AsyncSession, survey: Survey, *, state: SurveyState, via: Via, actor: Actor,
    score: int | None = None, comment: str = "",
) -> Survey:
    now = utcnow()
    # The one winner: the row still sent, with the nonce this caller checked.
    result = await db.execute(
        update(Survey).where(Survey.id == survey.id, Survey.state == str(SurveyState.SENT),
                             Survey.nonce == survey.nonce, Survey.expires_at > now)
        .values(state=str(state), answered_at=now, score=score, comment=comment,
                answered_via=str(via))
        .execution_options(synchronize_session=False)
    )  # fmt: skip
    assert isinstance(result, CursorResult)  # noqa: S101 -- an UPDATE gives a cursor result
    if result.rowcount != 1:
        await db.refresh(survey)
        _check_answerable(survey, now=now)
        raise SurveyLinkInvalid(reason="replaced")  # still open, but a new link replaced ours
    await db.refresh(survey)
    if state is SurveyState.ANSWERED:
        await _audit(db, survey, AuditAction.SURVEY_ANSWERED, actor=actor, score=score,
                     via=str(via), comment_length=len(comment))
    else:
        await _audit(db, survey, AuditAction.SURVEY_DECLINED, actor=actor, via=str(via))
    return survey


def _link_actor(survey: Survey) -> Actor:
    # Whoever holds the link acts for the person it was sent to; they are not logged in.
    return Actor(id=survey.requester_id, display_name="survey link",
                 organisation_id=survey.organisation_id)


async def answer_by_link(
    db: AsyncSession, *, key: Ed25519PrivateKey, token: str, score: int, comment: str = "",
    expected_subject: str | None = None, via: Via = Via.LINK,
) -> Survey:
    survey = await survey_for_link(db, key=key, token=token, expected_subject=expected_subject)
    check_answer(survey, score=score, comment=comment)
    return await _finish(db, survey, state=SurveyState.ANSWERED, via=via,
                         actor=_link_actor(survey), score=score, comment=comment)


async def decline_by_link(
    db: AsyncSession, *, key: Ed25519PrivateKey, token: str,
    expected_subject: str | None = None, via: Via = Via.LINK,
) -> Survey:
    survey = await survey_for_link(db, key=key, token=token, expected_subject=expected_subject)
    return await _finish(db, survey, state=SurveyState.DECLINED, via=via,
                         actor=_link_actor(survey))


async def _mine_for_update(db: AsyncSession, *, survey_id: uuid.UUID, actor: Actor) -> Survey:
    survey = await db.get(Survey, survey_id, with_for_update=True)
    if survey is None or survey.organisation_id != actor.organisation_id:
        raise SurveyNotFound()
    if survey.requester_id != actor.id:
        if actor.role in STAFF_ROLES:
            # Staff see their organisation's surveys in the KPIs; answering one is the person's.
            raise SurveyNotThePerson()
        raise SurveyNotFound()
    if survey.state == SurveyState.SCHEDULED:
        raise SurveyNotFound()
    return survey


async def answer_mine(
    db: AsyncSession, *, survey_id: uuid.UUID, score: int, comment: str, actor: Actor,
) -> Survey:
    """A logged-in person answers their own survey in the portal, without the link."""
    survey = await _mine_for_update(db, survey_id=survey_id, actor=actor)
    _check_answerable(survey, now=utcnow())
    check_answer(survey, score=score, comment=comment)
    return await _finish(db, survey, state=SurveyState.ANSWERED, via=Via.PORTAL, actor=actor,
                         score=score, comment=comment)


async def decline_mine(db: AsyncSession, *, survey_id: uuid.UUID, actor: Actor) -> Survey:
    survey = await _mine_for_update(db, survey_id=survey_id, actor=actor)
    _check_answerable(survey, now=utcnow())
    return await _finish(db, survey, state=SurveyState.DECLINED, via=Via.PORTAL, actor=actor)


# ---- finding -----------------------------------------------------------------------------------


async def list_mine(
    db: AsyncSession, *, actor: Actor, pending_only: bool = False,
    ticket_id: uuid.UUID | None = None, limit: int = 100, offset: int = 0,
) -> list[Survey]:
    """The person's surveys that reached them (sent or later), newest first."""
    query = select(Survey).where(Survey.organisation_id == actor.organisation_id,
                                 Survey.requester_id == actor.id,
                                 Survey.state != str(SurveyState.SCHEDULED))
    if pending_only:
        query = query.where(Survey.state == str(SurveyState.SENT), Survey.expires_at > utcnow())
    if ticket_id is not None:
        query = query.where(Survey.ticket_id == ticket_id)
    query = query.order_by(Survey.created_at.desc(), Survey.id).limit(limit).offset(offset)
    return list((await db.execute(query)).scalars().all())


async def get_for_support_session(
    db: AsyncSession, *, support_session_id: uuid.UUID
) -> Survey | None:
    found = await db.execute(
        select(Survey).where(Survey.support_session_id == support_session_id)
    )
    return found.scalars().first()

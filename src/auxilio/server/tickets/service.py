"""Opening tickets, moving them through their states, comments, time, and finding them.

Every state change locks the ticket row (``FOR UPDATE`` on PostgreSQL; SQLite transactions
are already serialised by ``BEGIN IMMEDIATE``) and writes its audit event in the same
transaction. The transition table lives in ``states.py``; assignment in ``assignment.py``.

Visibility: holders of ``ticket:read_all`` see every ticket of their organisation; holders of
``ticket:read_own`` (end users) see the tickets they requested and no internal comment. A
ticket outside the caller's sight is ``ticket_not_found``, never ``forbidden``.

KPI fields (the definitions docs/kpis.md relies on):

* ``first_response_at``: the first public comment by a staff member other than the requester,
  or the first status change by such a staff member out of ``new``, whichever comes first.
* ``resolved_at`` / ``closed_at``: the time of the latest move into that state. A reopen does
  not clear them: they keep the last resolution (closure) until the next one overwrites it, so
  the status, not the presence of the timestamp, says whether a ticket is resolved now.
* ``reopen_count``: moves to ``open`` from ``resolved`` or ``closed``.
* ``contact_count``: 1 for the opening, +1 for each public comment by staff or by the
  requester; internal notes are not contacts.
* ``time_spent_seconds``: the sum of the ticket's time entries, recomputed on each entry.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from auxilio.policy.roles import STAFF_ROLES, Permission, Role
from auxilio.server.audit.actions import AuditAction
from auxilio.server.audit.service import record
from auxilio.server.context import Actor
from auxilio.server.db.base import utcnow
from auxilio.server.devices import service as devices
from auxilio.server.errors import (
    DeviceNotFound,
    DeviceNotOwned,
    Forbidden,
    IllegalTransition,
    InvalidRequester,
    TicketNotFound,
    ValidationFailed,
)
from auxilio.server.identity import service as identity
from auxilio.server.identity import service as identity_service
from auxilio.server.policies.authorize import authorize_permission
from auxilio.server.policies.service import get_policy_for
from auxilio.server.surveys import service as surveys
from auxilio.server.tickets.assignment import auto_assign
from auxilio.server.tickets.models import Ticket, TicketComment, TimeEntry
from auxilio.server.tickets.states import (
    REOPENABLE,
    TicketStatus,
    allowed_from,
    check_transition,
    is_reopen,
)


def sees_all_tickets(actor: Actor) -> bool:
    """True for ``ticket:read_all``; False for ``ticket:read_own``; Forbidden for neither."""
    if authorize_permission(actor, Permission.TICKET_READ_ALL).allowed:
        return True
    if authorize_permission(actor, Permission.TICKET_READ_OWN).allowed:
        return False
    raise Forbidden(permission=str(Permission.TICKET_READ_OWN))


def is_staff_response(actor: Actor, ticket: Ticket) -> bool:
    # A staff member who opened a ticket for their own problem is the requester, not support.
    return actor.role in STAFF_ROLES and actor.id != ticket.requester_id


def _org(actor: Actor) -> uuid.UUID:
    if actor.organisation_id is None or actor.id is None:
        raise Forbidden("Tickets belong to a person of an organisation.")
    return actor.organisation_id


async def _next_number(db: AsyncSession, organisation_id: uuid.UUID) -> int:
    return await identity_service.allocate_ticket_number(db, organisation_id=organisation_id)


async def _requester(db: AsyncSession, actor: Actor, requester_id: uuid.UUID | None) -> uuid.UUID:
    org = _org(actor)
    if requester_id is None or requester_id == actor.id:
        assert actor.id is not None  # noqa: S101 -- _org checked it
        return actor.id
    if actor.role not in STAFF_ROLES:
        raise Forbidden("You can open tickets only for yourself.", field="requester_id")
    user = await identity.get_user(db, organisation_id=org, user_id=requester_id)
    if user is None or not user.is_active or user.role != Role.END_USER:
        raise InvalidRequester(requester_id=str(requester_id))
    return user.id


async def _check_device(
    db: AsyncSession, actor: Actor, requester_id: uuid.UUID, device_id: uuid.UUID
) -> str | None:
    """The requester's device's group; refuses another's device."""
    device = await devices.get_device(db, organisation_id=_org(actor), device_id=device_id)
    if device is not None and device.owner_id == requester_id:
        return device.device_group
    # Staff may know the device exists; an end user learns nothing about others' devices.
    if device is not None and devices.sees_all_devices(actor):
        raise DeviceNotOwned(device_id=str(device_id))
    raise DeviceNotFound(device_id=str(device_id))


async def _link_audit(db: AsyncSession, ticket: Ticket, actor: Actor) -> None:
    await record(db, action=AuditAction.DEVICE_LINKED, actor=actor, target_type="ticket",
                 target_id=ticket.id, details={"device_id": str(ticket.device_id),
                                               "number": ticket.number})


async def open_ticket(
    db: AsyncSession,
    *,
    title: str,
    description: str,
    category: str,
    priority: str,
    actor: Actor,
    requester_id: uuid.UUID | None = None,
    device_id: uuid.UUID | None = None,
    now: datetime | None = None,
) -> Ticket:
    """Open a ticket for the actor, or (staff) for an end user, then try to route it."""
    now = now or utcnow()
    org = _org(actor)
    requester = await _requester(db, actor, requester_id)
    group = None
    if device_id is not None:
        group = await _check_device(db, actor, requester, device_id)
    # The version in force for its device's group now (a pilot's), for the KPIs' slice.
    policy = await get_policy_for(db, organisation_id=org, device_group=group, at=now)
    assert actor.id is not None  # noqa: S101 -- _org checked it
    ticket = Ticket(
        organisation_id=org, number=await _next_number(db, org), title=title,
        description=description, category=category, priority=priority,
        status=str(TicketStatus.NEW), requester_id=requester, created_by_id=actor.id,
        device_id=device_id, created_at=now, updated_at=now, contact_count=1,
        reopen_count=0, time_spent_seconds=0, policy_version=policy.version_label,
    )
    db.add(ticket)
    await db.flush()
    await record(db, action=AuditAction.TICKET_OPENED, actor=actor, target_type="ticket",
                 target_id=ticket.id,
                 details={"number": ticket.number, "category": category, "priority": priority,
                          "requester_id": str(requester), "on_behalf": requester != actor.id,
                          "device_id": str(device_id) if device_id else None})
    if device_id is not None:
        await _link_audit(db, ticket, actor)
    await auto_assign(db, ticket=ticket, actor=actor, now=now)
    return ticket


async def get_visible_ticket_or_raise(
    db: AsyncSession, *, ticket_id: uuid.UUID, actor: Actor, lock: bool = False
) -> Ticket:
    """The ticket if the actor may see it; ``lock`` for every caller that will change it."""
    query = select(Ticket).where(Ticket.id == ticket_id, Ticket.organisation_id == _org(actor))
    if lock:
        query = query.with_for_update()
    ticket = (await db.execute(query)).scalar_one_or_none()
    if ticket is None or (not sees_all_tickets(actor) and ticket.requester_id != actor.id):
        raise TicketNotFound(ticket_id=str(ticket_id))
    return ticket


async def update_ticket(
    db: AsyncSession, *, ticket: Ticket, changes: Mapping[str, Any], actor: Actor,
    now: datetime | None = None,
) -> Ticket:
    """Change title, category, priority or the linked device; audits what actually changed."""
    allowed = {"title", "category", "priority", "device_id"}
    unknown = set(changes) - allowed
    if unknown:
        raise ValidationFailed(f"{', '.join(sorted(unknown))} cannot be changed here.",
                               fields=sorted(unknown))
    if changes.get("device_id") is not None:
        await _check_device(db, actor, ticket.requester_id, changes["device_id"])
    changed = {k: v for k, v in changes.items() if getattr(ticket, k) != v}
    if not changed:
        return ticket
    before = {k: getattr(ticket, k) for k in changed}
    for name, value in changed.items():
        setattr(ticket, name, value)
    ticket.updated_at = now or utcnow()
    await record(db, action=AuditAction.TICKET_UPDATED, actor=actor, target_type="ticket",
                 target_id=ticket.id, details={"number": ticket.number, "before": before,
                                               "after": dict(changed)})
    if "device_id" in changed:
        await _link_audit(db, ticket, actor)
    return ticket


async def transition_ticket(
    db: AsyncSession, *, ticket: Ticket, to: TicketStatus, actor: Actor,
    now: datetime | None = None,
) -> Ticket:
    """Move the ticket along the table in ``states.py``; illegal moves change nothing."""
    current = TicketStatus(ticket.status)
    check_transition(current, to)
    now = now or utcnow()
    reopened = is_reopen(current, to)
    ticket.status = str(to)
    if to is TicketStatus.RESOLVED:
        # Before resolved_at moves: it tells the survey since when a session survey counts.
        await surveys.schedule_for_ticket(db, ticket=ticket, actor=actor, now=now)
        ticket.resolved_at = now
    elif to is TicketStatus.CLOSED:
        ticket.closed_at = now
    if reopened:
        ticket.reopen_count += 1
    if current is TicketStatus.NEW and ticket.first_response_at is None and is_staff_response(
        actor, ticket
    ):
        ticket.first_response_at = now
    ticket.updated_at = now
    await record(db, action=AuditAction.TICKET_STATUS_CHANGED, actor=actor, target_type="ticket",
                 target_id=ticket.id, details={"number": ticket.number, "from": str(current),
                                               "to": str(to), "reopen": reopened})
    return ticket


async def reopen_ticket(
    db: AsyncSession, *, ticket: Ticket, actor: Actor, now: datetime | None = None
) -> Ticket:
    """The requester's "it is not fixed": only from resolved or closed."""
    current = TicketStatus(ticket.status)
    if current not in REOPENABLE:
        raise IllegalTransition(
            "Only a resolved or closed ticket can be reopened.",
            **{"from": str(current), "to": str(TicketStatus.OPEN),
               "allowed": allowed_from(current)},
        )
    return await transition_ticket(db, ticket=ticket, to=TicketStatus.OPEN, actor=actor, now=now)


async def add_comment(
    db: AsyncSession, *, ticket: Ticket, body: str, internal: bool, actor: Actor,
    now: datetime | None = None,
) -> TicketComment:
    if internal and not authorize_permission(actor, Permission.TICKET_COMMENT_INTERNAL).allowed:
        raise Forbidden(permission=str(Permission.TICKET_COMMENT_INTERNAL))
    now = now or utcnow()
    assert actor.id is not None  # noqa: S101 -- the route's identity is a person
    comment = TicketComment(organisation_id=ticket.organisation_id, ticket_id=ticket.id,
                            author_id=actor.id, body=body, internal=internal, created_at=now)
    db.add(comment)
    if not internal:
        staff = is_staff_response(actor, ticket)
        if staff and ticket.first_response_at is None:
            ticket.first_response_at = now
        if staff or actor.id == ticket.requester_id:
            ticket.contact_count += 1
    ticket.updated_at = now
    await db.flush()
    # The text stays out of the audit log: it may hold personal data subject to erasure.
    await record(db, action=AuditAction.TICKET_COMMENTED, actor=actor, target_type="ticket",
                 target_id=ticket.id, details={"number": ticket.number, "internal": internal,
                                               "comment_id": str(comment.id),
                                               "length": len(body)})
    return comment


async def list_comments(
    db: AsyncSession, *, ticket: Ticket, actor: Actor, limit: int = 200, offset: int = 0
) -> list[TicketComment]:
    query = select(TicketComment).where(TicketComment.ticket_id == ticket.id)
    if not sees_all_tickets(actor):
        query = query.where(TicketComment.internal.is_(False))
    rows = await db.execute(
        query.order_by(TicketComment.created_at, TicketComment.id).limit(limit).offset(offset)
    )
    return list(rows.scalars())


async def comment_counts(
    db: AsyncSession, *, tickets: Sequence[Ticket], actor: Actor
) -> dict[uuid.UUID, int]:
    """Comments per ticket as this actor may see them (internal notes hidden from end users)."""
    if not tickets:
        return {}
    query = (
        select(TicketComment.ticket_id, func.count())
        .where(TicketComment.ticket_id.in_([t.id for t in tickets]))
        .group_by(TicketComment.ticket_id)
    )
    if not sees_all_tickets(actor):
        query = query.where(TicketComment.internal.is_(False))
    return {row[0]: int(row[1]) for row in await db.execute(query)}


async def log_time(
    db: AsyncSession, *, ticket: Ticket, minutes: int, note: str, actor: Actor,
    now: datetime | None = None,
) -> TimeEntry:
    return await _log_seconds(db, ticket=ticket, seconds=minutes * 60, note=note, actor=actor,
                              now=now)  # fmt: skip


async def _log_seconds(
    db: AsyncSession, *, ticket: Ticket, seconds: int, note: str, actor: Actor,
    now: datetime | None = None, source: str = "manual",
) -> TimeEntry:
    assert actor.id is not None  # noqa: S101 -- the route's identity is a person
    entry = TimeEntry(organisation_id=ticket.organisation_id, ticket_id=ticket.id,
                      technician_id=actor.id, seconds=seconds, note=note,
                      created_at=now or utcnow())
    db.add(entry)
    await db.flush()
    # Recomputed rather than incremented: the column is by definition the sum of the entries.
    spent = select(func.sum(TimeEntry.seconds)).where(TimeEntry.ticket_id == ticket.id)
    total = (await db.execute(spent)).scalar_one()
    ticket.time_spent_seconds = int(total or 0)
    ticket.updated_at = entry.created_at
    await record(db, action=AuditAction.TICKET_TIME_LOGGED, actor=actor, target_type="ticket",
                 target_id=ticket.id, details={"number": ticket.number, "seconds": entry.seconds,
                                               "total_seconds": ticket.time_spent_seconds,
                                               "source": source})
    return entry


# ---- what support sessions do to their ticket (the inputs of the KPIs, docs/kpis.md) ---------


async def _ticket_for_update(db: AsyncSession, ticket_id: uuid.UUID) -> Ticket:
    ticket = await db.get(Ticket, ticket_id, with_for_update=True)
    assert ticket is not None  # noqa: S101 -- a support session's ticket exists (foreign key)
    return ticket


async def record_session_started(
    db: AsyncSession, *, ticket_id: uuid.UUID, technician: Actor, now: datetime | None = None
) -> Ticket:
    """A support session became active on the ticket: the person was reached. A ``new`` ticket
    moves to ``open`` and gets its first response (an open one keeps its own)."""
    ticket = await _ticket_for_update(db, ticket_id)
    now = now or utcnow()
    if TicketStatus(ticket.status) is TicketStatus.NEW:
        return await transition_ticket(db, ticket=ticket, to=TicketStatus.OPEN, actor=technician,
                                       now=now)  # fmt: skip
    if ticket.first_response_at is None and is_staff_response(technician, ticket):
        ticket.first_response_at = now
        ticket.updated_at = now
    return ticket


async def record_session_time(
    db: AsyncSession, *, ticket_id: uuid.UUID, technician: Actor, seconds: int, note: str,
    now: datetime | None = None,
) -> TimeEntry | None:
    """A support session's duration, as a time entry of its technician (none for 0 s)."""
    if seconds <= 0:
        return None
    ticket = await _ticket_for_update(db, ticket_id)
    return await _log_seconds(db, ticket=ticket, seconds=seconds, note=note, actor=technician,
                              now=now, source="support_session")  # fmt: skip


async def record_session_summary(
    db: AsyncSession, *, ticket_id: uuid.UUID, technician: Actor, summary: str, public: bool,
    now: datetime | None = None,
) -> list[TicketComment]:
    """The technician's summary in the ticket's history: an internal note always, and a public
    comment for the person where the policy says ``post_session.summary_to_user``."""
    ticket = await _ticket_for_update(db, ticket_id)
    written = [await add_comment(db, ticket=ticket, body=summary, internal=True,
                                 actor=technician, now=now)]  # fmt: skip
    if public:
        written.append(await add_comment(db, ticket=ticket, body=summary, internal=False,
                                         actor=technician, now=now))  # fmt: skip
    return written


def _visible(actor: Actor) -> Select[Ticket]:
    query = select(Ticket).where(Ticket.organisation_id == _org(actor))
    if not sees_all_tickets(actor):
        query = query.where(Ticket.requester_id == actor.id)
    return query


async def list_tickets(
    db: AsyncSession,
    *,
    actor: Actor,
    status: TicketStatus | None = None,
    assignee_id: uuid.UUID | None = None,
    mine: bool = False,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[Ticket], int]:
    """One page of visible tickets, newest number first, and the total matching the filters.

    ``mine`` means "assigned to me" for staff; an end user's list is always their own.
    """
    query = _visible(actor)
    if status is not None:
        query = query.where(Ticket.status == str(status))
    if assignee_id is not None:
        query = query.where(Ticket.assignee_id == assignee_id)
    if mine and actor.role in STAFF_ROLES:
        query = query.where(Ticket.assignee_id == actor.id)
    total = (await db.execute(select(func.count()).select_from(query.subquery()))).scalar_one()
    rows = await db.execute(query.order_by(Ticket.number.desc()).limit(limit).offset(offset))
    return list(rows.scalars()), int(total)

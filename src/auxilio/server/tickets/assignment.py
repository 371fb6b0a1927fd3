"""Assigning tickets to technicians, by hand or through the routing in ``routing.py``.

Only technicians and senior technicians take tickets: supervisors and admins manage the queue
rather than work it. Resolved and closed tickets are not assigned (``ticket_not_active``).

"Last assignment" for the routing tie-break is the newest ``assigned_at`` among the tickets a
technician holds, whatever their status: the moment each was given to them. Every automatic
assignment, and every failure to assign, is audited with its reason (skill, hours, load).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from auxilio.policy.roles import Role
from auxilio.server.audit.actions import AuditAction
from auxilio.server.audit.service import record
from auxilio.server.context import Actor
from auxilio.server.db.base import utcnow
from auxilio.server.errors import InvalidAssignee, TicketNotActive
from auxilio.server.identity import service as identity
from auxilio.server.tickets.models import Ticket
from auxilio.server.tickets.routing import Candidate, route
from auxilio.server.tickets.states import ACTIVE_STATUSES, TicketStatus

TECHNICIAN_ROLES: tuple[Role, ...] = (Role.TECHNICIAN, Role.SENIOR_TECHNICIAN)
_ACTIVE = [str(s) for s in ACTIVE_STATUSES]


def _check_active(ticket: Ticket) -> None:
    if TicketStatus(ticket.status) not in ACTIVE_STATUSES:
        raise TicketNotActive(status=ticket.status)


async def _set_assignee(
    db: AsyncSession, *, ticket: Ticket, assignee_id: uuid.UUID | None, mode: str, actor: Actor,
    now: datetime, reason: dict[str, object] | None = None,
) -> None:
    before = ticket.assignee_id
    ticket.assignee_id = assignee_id
    ticket.assigned_at = now if assignee_id is not None else None
    ticket.updated_at = now
    details: dict[str, object] = {"number": ticket.number, "mode": mode,
                                  "from": str(before) if before else None,
                                  "to": str(assignee_id) if assignee_id else None}  # fmt: skip
    if reason is not None:
        details["reason"] = reason
    await record(db, action=AuditAction.TICKET_ASSIGNED, actor=actor, target_type="ticket",
                 target_id=ticket.id, details=details)


async def assign_ticket(
    db: AsyncSession, *, ticket: Ticket, assignee_id: uuid.UUID | None, actor: Actor,
    now: datetime | None = None,
) -> Ticket:
    """Assign by hand (``None`` unassigns); assigning the current assignee again is a no-op."""
    _check_active(ticket)
    if assignee_id is not None:
        user = await identity.get_user(db, organisation_id=ticket.organisation_id,
                                       user_id=assignee_id)
        if user is None or not user.is_active or Role(user.role) not in TECHNICIAN_ROLES:
            raise InvalidAssignee(assignee_id=str(assignee_id))
    if assignee_id != ticket.assignee_id:
        await _set_assignee(db, ticket=ticket, assignee_id=assignee_id, mode="manual",
                            actor=actor, now=now or utcnow())
    return ticket


async def gather_candidates(
    db: AsyncSession, *, organisation_id: uuid.UUID, excluding: uuid.UUID | None = None
) -> list[Candidate]:
    """Every active technician with their current load (``excluding`` one ticket's own weight)."""
    users = [
        u
        for role in TECHNICIAN_ROLES
        for u in await identity.list_users(db, organisation_id=organisation_id, role=role)
        if u.is_active
    ]
    if not users:
        return []
    held = (
        select(Ticket.assignee_id, func.count(), func.max(Ticket.assigned_at))
        .where(Ticket.organisation_id == organisation_id,
               Ticket.assignee_id.in_([u.id for u in users]))
        .group_by(Ticket.assignee_id)
    )
    if excluding is not None:
        held = held.where(Ticket.id != excluding)
    last = {row[0]: row[2] for row in await db.execute(held)}
    load = {
        row[0]: int(row[1])
        for row in await db.execute(held.where(Ticket.status.in_(_ACTIVE)))
    }
    return [
        Candidate(user_id=u.id, timezone=u.timezone, working_hours=u.working_hours or {},
                  skills=frozenset(u.skills or ()), open_tickets=load.get(u.id, 0),
                  last_assigned_at=last.get(u.id))
        for u in users
    ]


async def auto_assign(
    db: AsyncSession, *, ticket: Ticket, actor: Actor, now: datetime | None = None
) -> Ticket:
    """Route the ticket now; with no eligible technician it stays as it is, and that is audited."""
    _check_active(ticket)
    now = now or utcnow()
    candidates = await gather_candidates(db, organisation_id=ticket.organisation_id,
                                         excluding=ticket.id)
    routing = route(candidates, category=ticket.category, now=now)
    chosen = routing.chosen
    if chosen is None:
        await record(db, action=AuditAction.TICKET_AUTO_ASSIGN_FAILED, actor=actor,
                     target_type="ticket", target_id=ticket.id,
                     details={"number": ticket.number, "reason": routing.reason()})
        return ticket
    if chosen.user_id != ticket.assignee_id:
        await _set_assignee(db, ticket=ticket, assignee_id=chosen.user_id, mode="auto",
                            actor=actor, now=now, reason=routing.reason())
    return ticket


async def assign_waiting_tickets(
    db: AsyncSession, *, now: datetime | None = None, limit: int = 200
) -> int:
    """Route the tickets that wait in the queue (new, unassigned), oldest first; how many got a
    technician. Run by the queue job (``queue.py``) so that a ticket opened while nobody with
    its skill was in hours is taken as soon as someone is."""
    now = now or utcnow()
    waiting = (await db.execute(
        select(Ticket).where(Ticket.assignee_id.is_(None),
                             Ticket.status == str(TicketStatus.NEW))
        .order_by(Ticket.created_at).limit(limit).with_for_update(skip_locked=True)
    )).scalars().all()  # fmt: skip
    assigned = 0
    for ticket in waiting:
        routing = route(
            await gather_candidates(db, organisation_id=ticket.organisation_id),
            category=ticket.category, now=now,
        )  # fmt: skip
        if routing.chosen is not None:
            queue = Actor(id=None, display_name="ticket queue",
                          organisation_id=ticket.organisation_id)  # fmt: skip
            await _set_assignee(db, ticket=ticket, assignee_id=routing.chosen.user_id,
                                mode="queue", actor=queue, now=now, reason=routing.reason())
            assigned += 1
    return assigned

"""Ticket routes. Each declares one permission:

=====================================  ========================  ==============================
route                                  permission                who, with the role table
=====================================  ========================  ==============================
POST   /tickets                        ticket:create             end users; staff on behalf
GET    /tickets, /tickets/{id}         user:read_self            anyone; the service narrows
GET    /tickets/{id}/comments          user:read_self            (read_all: org, read_own: own)
PATCH  /tickets/{id}                   ticket:update             technicians and up
POST   /tickets/{id}/transition        ticket:update             any move of the table
POST   /tickets/{id}/close             ticket:comment            the requester: resolved->closed
POST   /tickets/{id}/reopen            ticket:comment            the requester: reopen
POST   /tickets/{id}/assign            ticket:assign             senior technicians and up
POST   /tickets/{id}/auto-assign       ticket:assign
POST   /tickets/{id}/comments          ticket:comment            internal notes: the service
                                                                 also asks comment_internal
POST   /tickets/{id}/time              ticket:update             staff only
*      /tickets/{id}/attachments       (see attachments.py)
=====================================  ========================  ==============================

Reads are gated by ``user:read_self`` because ``ticket:read_own`` and ``ticket:read_all`` are
disjoint in the role table; which of the two the caller holds decides what they see, and a
ticket outside it is a 404. The requester's two moves get routes of their own so that
``ticket:update`` stays a staff permission.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, Query, Request

from auxilio.policy.roles import Permission
from auxilio.server.api.deps import DbSession, Identity, require
from auxilio.server.audit.actions import AuditAction
from auxilio.server.audit.service import record
from auxilio.server.context import Actor
from auxilio.server.errors import Forbidden
from auxilio.server.tickets import assignment, attachments, service
from auxilio.server.tickets import schemas as s
from auxilio.server.tickets.models import Ticket
from auxilio.server.tickets.states import TicketStatus

router = APIRouter(prefix="/tickets", tags=["tickets"])
router.include_router(attachments.router)

CreateTickets = Annotated[Identity, require(Permission.TICKET_CREATE)]
ReadTickets = Annotated[Identity, require(Permission.TICKET_READ)]
UpdateTickets = Annotated[Identity, require(Permission.TICKET_UPDATE)]
AssignTickets = Annotated[Identity, require(Permission.TICKET_ASSIGN)]
CommentTickets = Annotated[Identity, require(Permission.TICKET_COMMENT)]


async def _outs(db: DbSession, tickets: Sequence[Ticket], actor: Actor) -> list[s.TicketOut]:
    counts = await service.comment_counts(db, tickets=tickets, actor=actor)
    outs = []
    for ticket in tickets:
        out = s.TicketOut.model_validate(ticket)
        out.comment_count = counts.get(ticket.id, 0)
        outs.append(out)
    return outs


async def _out(db: DbSession, ticket: Ticket, actor: Actor) -> s.TicketOut:
    return (await _outs(db, [ticket], actor))[0]


@router.post("", response_model=s.TicketOut, status_code=201)
async def open_ticket(body: s.TicketCreateIn, caller: CreateTickets, db: DbSession) -> s.TicketOut:
    ticket = await service.open_ticket(
        db, title=body.title, description=body.description, category=str(body.category),
        priority=str(body.priority), requester_id=body.requester_id, device_id=body.device_id,
        actor=caller.actor,
    )
    return await _out(db, ticket, caller.actor)


@router.get("", response_model=s.TicketPage)
async def list_tickets(
    caller: ReadTickets,
    db: DbSession,
    status: TicketStatus | None = None,
    assignee_id: uuid.UUID | None = None,
    mine: bool = False,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> s.TicketPage:
    rows, total = await service.list_tickets(
        db, actor=caller.actor, status=status, assignee_id=assignee_id, mine=mine,
        limit=limit, offset=offset,
    )
    return s.TicketPage(items=await _outs(db, rows, caller.actor), total=total, limit=limit,
                        offset=offset)


@router.get("/{ticket_id}", response_model=s.TicketOut)
async def get_ticket(ticket_id: uuid.UUID, caller: ReadTickets, db: DbSession) -> s.TicketOut:
    ticket = await service.get_visible_ticket_or_raise(db, ticket_id=ticket_id, actor=caller.actor)
    return await _out(db, ticket, caller.actor)


@router.patch("/{ticket_id}", response_model=s.TicketOut)
async def update_ticket(
    ticket_id: uuid.UUID, body: s.TicketUpdateIn, caller: UpdateTickets, db: DbSession
) -> s.TicketOut:
    ticket = await service.get_visible_ticket_or_raise(db, ticket_id=ticket_id, actor=caller.actor,
                                                       lock=True)
    changes = {k: (str(v) if k in {"category", "priority"} else v)
               for k, v in body.model_dump(exclude_unset=True).items()}
    await service.update_ticket(db, ticket=ticket, changes=changes, actor=caller.actor)
    return await _out(db, ticket, caller.actor)


@router.post("/{ticket_id}/transition", response_model=s.TicketOut)
async def transition(
    ticket_id: uuid.UUID, body: s.TransitionIn, caller: UpdateTickets, db: DbSession
) -> s.TicketOut:
    ticket = await service.get_visible_ticket_or_raise(db, ticket_id=ticket_id, actor=caller.actor,
                                                       lock=True)
    await service.transition_ticket(db, ticket=ticket, to=body.to, actor=caller.actor)
    return await _out(db, ticket, caller.actor)


@router.post("/{ticket_id}/close", response_model=s.TicketOut)
async def close(ticket_id: uuid.UUID, caller: CommentTickets, db: DbSession) -> s.TicketOut:
    ticket = await service.get_visible_ticket_or_raise(db, ticket_id=ticket_id, actor=caller.actor,
                                                       lock=True)
    await service.transition_ticket(db, ticket=ticket, to=TicketStatus.CLOSED, actor=caller.actor)
    return await _out(db, ticket, caller.actor)


@router.post("/{ticket_id}/reopen", response_model=s.TicketOut)
async def reopen(ticket_id: uuid.UUID, caller: CommentTickets, db: DbSession) -> s.TicketOut:
    ticket = await service.get_visible_ticket_or_raise(db, ticket_id=ticket_id, actor=caller.actor,
                                                       lock=True)
    await service.reopen_ticket(db, ticket=ticket, actor=caller.actor)
    return await _out(db, ticket, caller.actor)


@router.post("/{ticket_id}/assign", response_model=s.TicketOut)
async def assign(
    ticket_id: uuid.UUID, body: s.AssignIn, caller: AssignTickets, db: DbSession
) -> s.TicketOut:
    ticket = await service.get_visible_ticket_or_raise(db, ticket_id=ticket_id, actor=caller.actor,
                                                       lock=True)
    await assignment.assign_ticket(db, ticket=ticket, assignee_id=body.assignee_id,
                                   actor=caller.actor)
    return await _out(db, ticket, caller.actor)


@router.post("/{ticket_id}/auto-assign", response_model=s.TicketOut)
async def auto_assign(ticket_id: uuid.UUID, caller: AssignTickets, db: DbSession) -> s.TicketOut:
    ticket = await service.get_visible_ticket_or_raise(db, ticket_id=ticket_id, actor=caller.actor,
                                                       lock=True)
    await assignment.auto_assign(db, ticket=ticket, actor=caller.actor)
    return await _out(db, ticket, caller.actor)


@router.get("/{ticket_id}/comments", response_model=list[s.CommentOut])
async def list_comments(
    ticket_id: uuid.UUID,
    caller: ReadTickets,
    db: DbSession,
    limit: Annotated[int, Query(ge=1, le=500)] = 200,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[s.CommentOut]:
    ticket = await service.get_visible_ticket_or_raise(db, ticket_id=ticket_id, actor=caller.actor)
    rows = await service.list_comments(db, ticket=ticket, actor=caller.actor, limit=limit,
                                       offset=offset)
    return [s.CommentOut.model_validate(c) for c in rows]


@router.post("/{ticket_id}/comments", response_model=s.CommentOut, status_code=201)
async def add_comment(
    ticket_id: uuid.UUID, body: s.CommentIn, caller: CommentTickets, db: DbSession,
    request: Request,
) -> s.CommentOut:
    ticket = await service.get_visible_ticket_or_raise(db, ticket_id=ticket_id, actor=caller.actor,
                                                       lock=True)
    try:
        comment = await service.add_comment(db, ticket=ticket, body=body.body,
                                            internal=body.internal, actor=caller.actor)
    except Forbidden as exc:
        # Denials are evidence too: drop the request's work, keep the record of the attempt.
        await db.rollback()
        await record(db, action=AuditAction.ACCESS_FORBIDDEN, actor=caller.actor,
                     details={"permission": exc.details.get("permission"),
                              "method": request.method, "path": request.url.path})
        await db.commit()
        raise
    return s.CommentOut.model_validate(comment)


@router.post("/{ticket_id}/time", response_model=s.TimeEntryOut, status_code=201)
async def log_time(
    ticket_id: uuid.UUID, body: s.TimeEntryIn, caller: UpdateTickets, db: DbSession
) -> s.TimeEntryOut:
    ticket = await service.get_visible_ticket_or_raise(db, ticket_id=ticket_id, actor=caller.actor,
                                                       lock=True)
    entry = await service.log_time(db, ticket=ticket, minutes=body.minutes, note=body.note,
                                   actor=caller.actor)
    out = s.TimeEntryOut.model_validate(entry)
    out.ticket_time_spent_seconds = ticket.time_spent_seconds
    return out

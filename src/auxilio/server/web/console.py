"""The technician console: the queue, a ticket with its history and sessions, the live session.

=======================================  ====================  =================================
page                                     permission            what
=======================================  ====================  =================================
GET  /console                            ticket:read_all       the queue, with its filters
GET  /console/queue                      ticket:read_all       the queue's rows (htmx polling)
GET  /console/tickets/{number}           ticket:read_all       ticket, history, sessions, start
POST /console/tickets/{number}/assign    ticket:assign         take it, or give it to someone
POST /console/tickets/{number}/status    ticket:update         a move of the state table
POST /console/tickets/{number}/comments  ticket:comment        a public comment or internal note
GET  /console/sessions/{id}              support_session:      the live session page
                                         request               (console_session.py)
POST /web/ws-token                       support_session:      a token for /ws/technician
                                         request               (console_session.py)
=======================================  ====================  =================================

The pages call the same services as the JSON API, so they allow and refuse exactly what it
does. Starting a session is the one step done by the browser itself (``static/js/console.js``):
the technician's X25519 key pair must be made in the page, so that its private half never
leaves it, and the request (``POST /api/v1/support-sessions``) carries the public half. A
refusal comes back with the policy's rule and reason, which the page shows as they are.

The join code is known to the server only as a hash: the page that asked for the session shows
it, and hands it to the live page in the tab's ``sessionStorage`` (never in a URL).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from auxilio.policy.roles import Permission
from auxilio.server.api.deps import DbSession
from auxilio.server.audit.actions import AuditAction
from auxilio.server.audit.models import AuditEvent
from auxilio.server.context import Actor
from auxilio.server.errors import DomainError, TicketNotFound, ValidationFailed
from auxilio.server.identity.models import User
from auxilio.server.policies.authorize import authorize_permission
from auxilio.server.support_sessions import service as sessions
from auxilio.server.tickets import assignment
from auxilio.server.tickets import service as tickets
from auxilio.server.tickets.models import Ticket
from auxilio.server.tickets.schemas import TicketCategory, TicketPriority
from auxilio.server.tickets.states import ACTIVE_STATUSES, TicketStatus, allowed_from
from auxilio.server.web import console_session
from auxilio.server.web.pages import (
    CsrfChecked,
    register_pages,
    render,
    translator,
    web_require,
)
from auxilio.server.web.policy_messages import reason_text

router = APIRouter(prefix="/console", include_in_schema=False)

Staff = Annotated[Actor, web_require(Permission.TICKET_READ_ALL)]
Assigner = Annotated[Actor, web_require(Permission.TICKET_ASSIGN)]
Updater = Annotated[Actor, web_require(Permission.TICKET_UPDATE)]
Commenter = Annotated[Actor, web_require(Permission.TICKET_COMMENT)]

QUEUE_LIMIT = 100
# How often the queue's rows are fetched again (htmx polling), in seconds.
QUEUE_POLL_SECONDS = 3


# ---- the queue -------------------------------------------------------------------------------


_E = TypeVar("_E", TicketStatus, TicketCategory, TicketPriority)


def _choice(kind: type[_E], value: str | None) -> _E | None:
    """A filter's value, or None for "any" and for anything that is not one of its values: a
    hand-edited URL shows the unfiltered queue rather than an error page."""
    try:
        return kind(value) if value else None
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class QueueFilters:
    status: TicketStatus | None = None
    skill: TicketCategory | None = None
    priority: TicketPriority | None = None
    mine: bool = False

    @classmethod
    def parse(cls, status: str | None, skill: str | None, priority: str | None,
              mine: str | None) -> QueueFilters:  # fmt: skip
        return cls(status=_choice(TicketStatus, status), skill=_choice(TicketCategory, skill),
                   priority=_choice(TicketPriority, priority), mine=mine in {"1", "on", "true"})

    def query(self) -> dict[str, str]:
        """The filters as query parameters (for the polling URL and the links)."""
        out = {"status": self.status, "skill": self.skill, "priority": self.priority}
        params = {k: str(v) for k, v in out.items() if v is not None}
        if self.mine:
            params["mine"] = "1"
        return params


@dataclass(frozen=True, slots=True)
class QueueRow:
    ticket: Ticket
    requester: str
    assignee: str | None


def _org(actor: Actor) -> uuid.UUID:
    assert actor.organisation_id is not None  # noqa: S101 -- staff belong to an organisation
    return actor.organisation_id


async def _names(db: AsyncSession, ids: Iterable[uuid.UUID | None]) -> dict[uuid.UUID, str]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    rows = await db.execute(select(User.id, User.display_name).where(User.id.in_(wanted)))
    return {row[0]: row[1] for row in rows}


async def queue_rows(
    db: AsyncSession, *, actor: Actor, filters: QueueFilters, limit: int = QUEUE_LIMIT
) -> tuple[list[QueueRow], int]:
    """The queue as staff see it: the organisation's tickets, most urgent first, then oldest,
    and the number matching the filters. "Mine" is "assigned to me", as in the API."""
    query = select(Ticket).where(Ticket.organisation_id == _org(actor))
    if filters.status is not None:
        query = query.where(Ticket.status == str(filters.status))
    if filters.skill is not None:
        query = query.where(Ticket.category == str(filters.skill))
    if filters.priority is not None:
        query = query.where(Ticket.priority == str(filters.priority))
    if filters.mine:
        query = query.where(Ticket.assignee_id == actor.id)
    total = (await db.execute(select(func.count()).select_from(query.subquery()))).scalar_one()
    urgency = _urgency_order()
    found = list((await db.execute(
        query.order_by(urgency, Ticket.created_at, Ticket.number).limit(limit)
    )).scalars())  # fmt: skip
    names = await _names(db, [t.requester_id for t in found] + [t.assignee_id for t in found])
    rows = [QueueRow(ticket=t, requester=names.get(t.requester_id, "?"),
                     assignee=names.get(t.assignee_id) if t.assignee_id else None)
            for t in found]  # fmt: skip
    return rows, int(total)


def _urgency_order() -> Any:
    ranks = {str(p): i for i, p in enumerate(reversed(list(TicketPriority)))}
    return case(ranks, value=Ticket.priority, else_=len(ranks))


def queue_version(rows: Sequence[QueueRow], total: int) -> str:
    """A digest of what the rows show: the poll sends it back, and an unchanged queue is
    answered 204 (htmx then swaps nothing), so focus and scroll stay where the person is."""
    digest = hashlib.sha256(str(total).encode())
    for row in rows:
        t = row.ticket
        digest.update(f"|{t.id}:{t.status}:{t.priority}:{t.category}:{t.assignee_id}:"
                      f"{t.title}:{row.assignee}".encode())  # fmt: skip
    return digest.hexdigest()[:16]


def _queue_context(filters: QueueFilters, rows: list[QueueRow], total: int) -> dict[str, Any]:
    version = queue_version(rows, total)
    return {
        "filters": filters,
        "rows": rows,
        "total": total,
        "statuses": list(TicketStatus),
        "skills": list(TicketCategory),
        "priorities": list(TicketPriority),
        "poll_url": "/console/queue?" + urlencode({**filters.query(), "v": version}),
        "poll_seconds": QUEUE_POLL_SECONDS,
        "version": version,
    }


@router.get("", response_class=HTMLResponse)
async def queue_page(
    request: Request, actor: Staff, db: DbSession,
    status: Annotated[str | None, Query()] = None,
    skill: Annotated[str | None, Query()] = None,
    priority: Annotated[str | None, Query()] = None,
    mine: Annotated[str | None, Query()] = None,
) -> HTMLResponse:
    filters = QueueFilters.parse(status, skill, priority, mine)
    rows, total = await queue_rows(db, actor=actor, filters=filters)
    return render(request, "web/console/queue.html", **_queue_context(filters, rows, total))


@router.get("/queue", response_model=None)
async def queue_fragment(
    request: Request, actor: Staff, db: DbSession,
    status: Annotated[str | None, Query()] = None,
    skill: Annotated[str | None, Query()] = None,
    priority: Annotated[str | None, Query()] = None,
    mine: Annotated[str | None, Query()] = None,
    v: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    """The rows only: what the queue page polls for, so it updates without a reload. ``v`` is
    the version the page shows; the same version again is a 204 (nothing to swap)."""
    filters = QueueFilters.parse(status, skill, priority, mine)
    rows, total = await queue_rows(db, actor=actor, filters=filters)
    context = _queue_context(filters, rows, total)
    if v is not None and v == context["version"]:
        return Response(status_code=204)
    response = render(request, "web/console/_queue_rows.html", **context)
    # The address bar follows the filters (replaced, not pushed: polling adds no history).
    response.headers["HX-Replace-Url"] = "/console" + (
        "?" + urlencode(filters.query()) if filters.query() else ""
    )
    return response


# ---- the ticket ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One line of a ticket's history: a comment, or an event of its audit trail."""

    at: Any
    who: str
    kind: str  # "comment", "note" (internal), or the audit action
    text: str = ""
    details: dict[str, Any] = field(default_factory=dict)


# Ticket events shown in its history (the others, like time logged, are in the figures).
_HISTORY_ACTIONS = (
    AuditAction.TICKET_OPENED, AuditAction.TICKET_STATUS_CHANGED, AuditAction.TICKET_ASSIGNED,
    AuditAction.TICKET_AUTO_ASSIGN_FAILED, AuditAction.TICKET_UPDATED,
    AuditAction.TICKET_ATTACHMENT_ADDED,
)


async def _ticket_by_number(db: AsyncSession, actor: Actor, number: int) -> Ticket:
    found = (await db.execute(select(Ticket.id).where(
        Ticket.organisation_id == _org(actor), Ticket.number == number
    ))).scalar_one_or_none()  # fmt: skip
    if found is None:
        raise TicketNotFound(number=number)
    return await tickets.get_visible_ticket_or_raise(db, ticket_id=found, actor=actor)


async def _history(db: AsyncSession, ticket: Ticket, actor: Actor) -> list[HistoryEntry]:
    comments = await tickets.list_comments(db, ticket=ticket, actor=actor, limit=500)
    events = list((await db.execute(
        select(AuditEvent).where(
            AuditEvent.organisation_id == ticket.organisation_id,
            AuditEvent.target_type == "ticket", AuditEvent.target_id == ticket.id.hex,
            AuditEvent.action.in_([str(a) for a in _HISTORY_ACTIONS]),
        ).order_by(AuditEvent.occurred_at, AuditEvent.id).limit(500)
    )).scalars())  # fmt: skip
    names = await _names(db, [c.author_id for c in comments] + _assignees(events))
    entries = [HistoryEntry(at=c.created_at, who=names.get(c.author_id, "?"),
                            kind="note" if c.internal else "comment", text=c.body)
               for c in comments]  # fmt: skip
    for event in events:
        details = dict(event.details or {})
        assigned = event.action == AuditAction.TICKET_ASSIGNED
        for key in ("from", "to"):
            person = _uuid(details.get(key)) if assigned else None
            if person is not None:
                details[key] = names.get(person, details[key])
        entries.append(HistoryEntry(at=event.occurred_at, who=event.actor_name,
                                    kind=event.action, details=details))
    return sorted(entries, key=lambda e: e.at)


def _uuid(value: Any) -> uuid.UUID | None:
    if not value:
        return None
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def _assignees(events: Sequence[AuditEvent]) -> list[uuid.UUID | None]:
    return [_uuid((e.details or {}).get(k)) for e in events
            if e.action == AuditAction.TICKET_ASSIGNED for k in ("from", "to")]  # fmt: skip


def _may(actor: Actor, permission: Permission) -> bool:
    return authorize_permission(actor, permission).allowed


async def _technicians(db: AsyncSession, actor: Actor) -> list[User]:
    rows = await db.execute(select(User).where(
        User.organisation_id == _org(actor), User.is_active.is_(True),
        User.role.in_([str(r) for r in assignment.TECHNICIAN_ROLES]),
    ).order_by(User.display_name))  # fmt: skip
    return list(rows.scalars())


async def _ticket_context(db: AsyncSession, actor: Actor, ticket: Ticket) -> dict[str, Any]:
    session_rows, _ = await sessions.list_visible(db, actor=actor, ticket_id=ticket.id, limit=50)
    names = await _names(db, [ticket.requester_id, ticket.assignee_id,
                              *(s.technician_id for s in session_rows)])  # fmt: skip
    may_assign = _may(actor, Permission.TICKET_ASSIGN)
    active = TicketStatus(ticket.status) in ACTIVE_STATUSES
    return {
        "ticket": ticket,
        "names": names,
        "history": await _history(db, ticket, actor),
        "sessions": session_rows,
        "may_assign": may_assign and active,
        "may_take": (may_assign and active and ticket.assignee_id != actor.id
                     and actor.role in assignment.TECHNICIAN_ROLES),
        "technicians": await _technicians(db, actor) if may_assign and active else [],
        "transitions": allowed_from(TicketStatus(ticket.status))
        if _may(actor, Permission.TICKET_UPDATE) else [],
        "may_note": _may(actor, Permission.TICKET_COMMENT_INTERNAL),
        "may_start": _may(actor, Permission.SUPPORT_SESSION_REQUEST),
        "start": await console_session.start_options(db, actor),
    }


async def _ticket_page(
    request: Request, db: AsyncSession, actor: Actor, number: int,
    error: DomainError | None = None,
) -> HTMLResponse:
    ticket = await _ticket_by_number(db, actor, number)
    context = await _ticket_context(db, actor, ticket)
    status = error.status if error is not None else 200
    return render(request, "web/console/ticket.html", status_code=status, error=error,
                  reason_text=reason_text, **context)


@router.get("/tickets/{number}", response_class=HTMLResponse)
async def ticket_page(request: Request, number: int, actor: Staff, db: DbSession) -> HTMLResponse:
    return await _ticket_page(request, db, actor, number)


def _back(number: int, anchor: str = "") -> RedirectResponse:
    # 303: the browser follows with a GET, so a reload never repeats the form.
    return RedirectResponse(f"/console/tickets/{number}{anchor}", status_code=303)


async def _act(request: Request, db: AsyncSession, actor: Actor, number: int,
               step: Any, anchor: str) -> Response:  # fmt: skip
    """Run one change on the ticket; a refusal shows the ticket again with the error and its
    code, having changed nothing. The change runs in a savepoint: rolling back the whole
    transaction would expire the person and organisation the page header shows."""
    ticket = await _ticket_by_number(db, actor, number)
    await db.refresh(ticket, with_for_update=True)
    try:
        async with db.begin_nested():
            await step(ticket)
    except DomainError as exc:
        return await _ticket_page(request, db, actor, number, error=exc)
    return _back(number, anchor)


@router.post("/tickets/{number}/assign")
async def assign_ticket(
    request: Request, number: int, actor: Assigner, db: DbSession, _csrf: CsrfChecked,
    assignee: Annotated[str, Form()] = "",
) -> Response:
    """``assignee``: "me" (take it), a technician's id, or empty to take it off its assignee."""
    target = actor.id if assignee == "me" else _uuid(assignee) if assignee else None

    async def step(ticket: Ticket) -> None:
        await assignment.assign_ticket(db, ticket=ticket, assignee_id=target, actor=actor)

    return await _act(request, db, actor, number, step, "#assignment")


@router.post("/tickets/{number}/status")
async def move_ticket(
    request: Request, number: int, actor: Updater, db: DbSession, _csrf: CsrfChecked,
    to: Annotated[str, Form()],
) -> Response:
    _ = translator(request)

    async def step(ticket: Ticket) -> None:
        target = _choice(TicketStatus, to)
        if target is None:
            raise ValidationFailed(_("That is not a ticket status."), field="to")
        await tickets.transition_ticket(db, ticket=ticket, to=target, actor=actor)

    return await _act(request, db, actor, number, step, "#status")


@router.post("/tickets/{number}/comments")
async def comment_ticket(
    request: Request, number: int, actor: Commenter, db: DbSession, _csrf: CsrfChecked,
    body: Annotated[str, Form(max_length=20_000)],
    internal: Annotated[str | None, Form()] = None,
) -> Response:
    _ = translator(request)

    async def step(ticket: Ticket) -> None:
        if not body.strip():
            raise ValidationFailed(_("The comment is empty."), field="body")
        await tickets.add_comment(db, ticket=ticket, body=body.strip(),
                                  internal=internal is not None, actor=actor)

    return await _act(request, db, actor, number, step, "#history")


register_pages(router)

"""Ticket attachments: what a technician's client brings back from a device to the ticket.

=========================================  ===============  ===================================
route                                      permission       who
=========================================  ===============  ===================================
POST /tickets/{id}/attachments             ticket:update    staff who see the ticket
GET  /tickets/{id}/attachments             user:read_self   staff who see it, and the requester
GET  /tickets/{id}/attachments/{aid}       user:read_self   (as for the ticket and its comments)
=========================================  ===============  ===================================

Kinds: ``diagnostics`` (the report the person chose to send), ``runbook_result`` (a runbook's
exit and output), ``file_note`` (a technician's note about a transferred file; the file itself
stays end-to-end and is never uploaded here). The content is text, JSON or plain, of at most
``MAX_ATTACHMENT_BYTES`` in UTF-8; it is stored with its size and SHA-256, and the audit event
carries those, never the content nor its name (a file name can be personal data).

A ticket outside the caller's sight is ``ticket_not_found``, as for every ticket route.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime
from typing import Annotated, Literal

import orjson
from fastapi import APIRouter, Query
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from auxilio.policy.roles import Permission
from auxilio.protocol.results import diagnostics_digest, runbook_result_digest
from auxilio.server.api.deps import DbSession, Identity, require
from auxilio.server.audit.actions import AuditAction
from auxilio.server.audit.service import record
from auxilio.server.context import Actor
from auxilio.server.db.base import utcnow
from auxilio.server.errors import Conflict, NotFound, PayloadTooLarge, ValidationFailed
from auxilio.server.support_sessions import service as support_sessions
from auxilio.server.support_sessions.models import SessionActivity
from auxilio.server.tickets import service as tickets
from auxilio.server.tickets.attachment_models import TicketAttachment
from auxilio.server.tickets.models import Ticket
from auxilio.server.validation import Name

MAX_ATTACHMENT_BYTES = 1024 * 1024
AttachmentKind = Literal["diagnostics", "runbook_result", "file_note"]
MediaType = Literal["application/json", "text/plain"]


class AttachmentTooLarge(PayloadTooLarge):
    code = "attachment_too_large"
    default_message = f"An attachment holds at most {MAX_ATTACHMENT_BYTES} bytes of text."


class AttachmentNotJson(ValidationFailed):
    code = "attachment_not_json"
    default_message = "The content is declared application/json but is not JSON."


class AttachmentSessionMismatch(ValidationFailed):
    code = "attachment_session_mismatch"
    default_message = "That support session is not one of this ticket's."


class AttachmentTampered(Conflict):
    code = "attachment_tampered"
    default_message = ("This attachment's content does not match the size and SHA-256 recorded "
                       "when it was added; it is not served.")


class AttachmentNotFound(NotFound):
    code = "attachment_not_found"
    default_message = "No such attachment on this ticket."


def _no_nul(value: str) -> str:
    # PostgreSQL refuses NUL in text; other control characters are kept (a runbook's output
    # may hold escape sequences; JSON content escapes them anyway).
    if "\x00" in value:
        raise ValueError("NUL characters are not allowed")
    return value


# Bounded by the request body limit (max_body_bytes); the byte limit is the service's check.
Content = Annotated[str, AfterValidator(_no_nul)]


class AttachmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: AttachmentKind
    name: Name
    media_type: MediaType = "application/json"
    content: Content
    support_session_id: uuid.UUID | None = None


class AttachmentSummaryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    ticket_id: uuid.UUID
    support_session_id: uuid.UUID | None
    kind: str
    name: str
    media_type: str
    size: int
    sha256: str
    # The device reported sending exactly this content in the named session.
    verified: bool
    author_id: uuid.UUID
    created_at: AwareDatetime


class AttachmentOut(AttachmentSummaryOut):
    content: str


# -- service -------------------------------------------------------------------------------------


async def _check_session(
    db: AsyncSession, *, ticket: Ticket, support_session_id: uuid.UUID, actor: Actor
) -> None:
    found = await support_sessions.get_visible_or_raise(
        db, support_session_id=support_session_id, actor=actor
    )
    if found.ticket_id != ticket.id:
        raise AttachmentSessionMismatch(support_session_id=str(support_session_id))


async def add_attachment(
    db: AsyncSession,
    *,
    ticket: Ticket,
    kind: str,
    name: str,
    media_type: str,
    content: str,
    support_session_id: uuid.UUID | None,
    actor: Actor,
    now: datetime | None = None,
    device_verified: bool = False,
) -> TicketAttachment:
    """Store a result on the ticket; its size and hash go to the audit log, its text does not.
    ``device_verified``: the caller checked the device's signature over the content (an
    automated run's result, server/automation)."""
    data = content.encode()
    if len(data) > MAX_ATTACHMENT_BYTES:
        raise AttachmentTooLarge(limit=MAX_ATTACHMENT_BYTES, size=len(data))
    if media_type == "application/json":
        try:
            orjson.loads(data)
        except orjson.JSONDecodeError:
            raise AttachmentNotJson(field="content") from None
    if support_session_id is not None:
        await _check_session(db, ticket=ticket, support_session_id=support_session_id,
                             actor=actor)  # fmt: skip
    verified = device_verified or (support_session_id is not None and await reported_by_device(
        db, support_session_id=support_session_id, kind=kind, data=data))
    assert actor.id is not None  # noqa: S101 -- the route's identity is a person
    attachment = TicketAttachment(verified=verified,
        organisation_id=ticket.organisation_id, ticket_id=ticket.id,
        support_session_id=support_session_id, kind=kind, name=name, media_type=media_type,
        content=content, size=len(data), sha256=hashlib.sha256(data).hexdigest(),
        author_id=actor.id, created_at=now or utcnow(),
    )  # fmt: skip
    db.add(attachment)
    await db.flush()
    await record(db, action=AuditAction.TICKET_ATTACHMENT_ADDED, actor=actor,
                 target_type="ticket", target_id=ticket.id,
                 details={"number": ticket.number, "attachment_id": str(attachment.id),
                          "kind": kind, "media_type": media_type, "size": attachment.size,
                          "sha256": attachment.sha256, "verified": verified,
                          "support_session_id": str(support_session_id)
                          if support_session_id else None})  # fmt: skip
    return attachment


_REPORTED_AS = {"diagnostics": "diagnostics_collected", "runbook_result": "runbook_run"}


async def reported_by_device(
    db: AsyncSession, *, support_session_id: uuid.UUID, kind: str, data: bytes
) -> bool:
    """Whether the device reported sending this result in the session: the digest of the
    content's diagnostics report (or runbook result) is one the device put in a
    ``session.activity`` (protocol.results). Anything else is the client's word only."""
    activity_kind = _REPORTED_AS.get(kind)
    if activity_kind is None:
        return False
    try:
        content = orjson.loads(data)
    except orjson.JSONDecodeError:
        return False
    if not isinstance(content, dict):
        return False
    if kind == "diagnostics":
        report = content.get("report")
        if not isinstance(report, dict):
            return False
        digest = diagnostics_digest(report)
    else:
        digest = runbook_result_digest(content)
    found = await db.execute(
        select(SessionActivity.id).where(
            SessionActivity.support_session_id == support_session_id,
            SessionActivity.kind == activity_kind, SessionActivity.sha256 == digest,
        ).limit(1)
    )  # fmt: skip
    return found.first() is not None


def check_intact(attachment: TicketAttachment) -> None:
    """The content is what was stored: its size and SHA-256 (audited when it was added) still
    match; a row edited in the database is refused, never served as genuine."""
    data = attachment.content.encode()
    if len(data) != attachment.size or hashlib.sha256(data).hexdigest() != attachment.sha256:
        raise AttachmentTampered(attachment_id=str(attachment.id))


async def list_attachments(
    db: AsyncSession, *, ticket: Ticket, limit: int = 200, offset: int = 0
) -> list[TicketAttachment]:
    rows = await db.execute(
        select(TicketAttachment)
        .where(TicketAttachment.ticket_id == ticket.id)
        .order_by(TicketAttachment.created_at, TicketAttachment.id)
        .limit(limit)
        .offset(offset)
    )
    return list(rows.scalars())


async def get_attachment_or_raise(
    db: AsyncSession, *, ticket: Ticket, attachment_id: uuid.UUID
) -> TicketAttachment:
    found = await db.get(TicketAttachment, attachment_id)
    if found is None or found.ticket_id != ticket.id:
        raise AttachmentNotFound(attachment_id=str(attachment_id))
    return found


# -- routes (mounted under /tickets by tickets/routes.py) ----------------------------------------

router = APIRouter()
ReadTickets = Annotated[Identity, require(Permission.TICKET_READ)]
UpdateTickets = Annotated[Identity, require(Permission.TICKET_UPDATE)]


@router.post("/{ticket_id}/attachments", response_model=AttachmentSummaryOut, status_code=201)
async def post_attachment(
    ticket_id: uuid.UUID, body: AttachmentIn, caller: UpdateTickets, db: DbSession
) -> AttachmentSummaryOut:
    ticket = await tickets.get_visible_ticket_or_raise(db, ticket_id=ticket_id, actor=caller.actor)
    attachment = await add_attachment(
        db, ticket=ticket, kind=body.kind, name=body.name, media_type=body.media_type,
        content=body.content, support_session_id=body.support_session_id, actor=caller.actor,
    )  # fmt: skip
    return AttachmentSummaryOut.model_validate(attachment)


@router.get("/{ticket_id}/attachments", response_model=list[AttachmentSummaryOut])
async def get_attachments(
    ticket_id: uuid.UUID,
    caller: ReadTickets,
    db: DbSession,
    limit: Annotated[int, Query(ge=1, le=500)] = 200,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[AttachmentSummaryOut]:
    """Without their content: fetch one to read it."""
    ticket = await tickets.get_visible_ticket_or_raise(db, ticket_id=ticket_id, actor=caller.actor)
    rows = await list_attachments(db, ticket=ticket, limit=limit, offset=offset)
    return [AttachmentSummaryOut.model_validate(a) for a in rows]


@router.get("/{ticket_id}/attachments/{attachment_id}", response_model=AttachmentOut)
async def get_attachment(
    ticket_id: uuid.UUID, attachment_id: uuid.UUID, caller: ReadTickets, db: DbSession
) -> AttachmentOut:
    ticket = await tickets.get_visible_ticket_or_raise(db, ticket_id=ticket_id, actor=caller.actor)
    found = await get_attachment_or_raise(db, ticket=ticket, attachment_id=attachment_id)
    check_intact(found)
    return AttachmentOut.model_validate(found)

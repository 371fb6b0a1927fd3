"""What the portal's ticket page shows: the history, the sessions with their one report and
consent receipts, and the attachments, gathered through the domains' services.

The report's rows mirror ``protocol.report.render_lines`` field for field (the same labels,
the same order, the same values), with the labels and words translated: the person reads the
same report in the browser as in the agent and the technician's CLI.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from auxilio.crypto.errors import CryptoError
from auxilio.crypto.keys import decode_ed25519_public_key
from auxilio.crypto.receipts import ConsentReceipt, verify_receipt
from auxilio.protocol.report import RunbookRunNote, SessionReport
from auxilio.protocol.types import SignedDocument
from auxilio.server.audit.actions import AuditAction
from auxilio.server.audit.models import AuditEvent
from auxilio.server.context import Actor
from auxilio.server.identity import service as identity
from auxilio.server.support_sessions import during, receipts
from auxilio.server.support_sessions import service as support_sessions
from auxilio.server.support_sessions.models import ConsentReceiptRecord
from auxilio.server.tickets import attachments, service
from auxilio.server.tickets.attachment_models import TicketAttachment
from auxilio.server.tickets.models import Ticket

Gettext = Callable[[str], str]


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    at: datetime
    kind: str  # comment | status | session
    who: str
    body: str = ""  # a comment's text
    before: str = ""  # a status change: from
    after: str = ""  # a status change: to; a session: its state
    session_id: str = ""


@dataclass(frozen=True, slots=True)
class ReceiptView:
    decided_at: datetime
    received_at: datetime
    asked: str  # the prompt the person saw, or "" when they kept it off the server
    decisions: tuple[tuple[str, str], ...]  # (capability, granted|refused|timed_out)
    timeout_seconds: int
    timeout_default: str
    verified: bool  # the device's signature checks out against the key it proved at join


@dataclass(frozen=True, slots=True)
class SessionView:
    id: str
    state: str
    report: SessionReport
    receipts: tuple[ReceiptView, ...]


@dataclass(frozen=True, slots=True)
class TicketPage:
    ticket: Ticket
    history: tuple[HistoryEntry, ...]
    sessions: tuple[SessionView, ...]
    attachments: tuple[TicketAttachment, ...]
    names: dict[uuid.UUID, str] = field(default_factory=dict)


async def _names(db: AsyncSession, org: uuid.UUID, ids: set[uuid.UUID]) -> dict[uuid.UUID, str]:
    names: dict[uuid.UUID, str] = {}
    for user_id in ids:
        user = await identity.get_user(db, organisation_id=org, user_id=user_id)
        names[user_id] = user.display_name if user is not None else "?"
    return names


async def _status_changes(db: AsyncSession, ticket: Ticket) -> list[HistoryEntry]:
    """The ticket's moves as the audit chain recorded them (the only place they are kept)."""
    rows = await db.execute(
        select(AuditEvent.occurred_at, AuditEvent.actor_name, AuditEvent.details)
        .where(AuditEvent.organisation_id == ticket.organisation_id,
               AuditEvent.action == str(AuditAction.TICKET_STATUS_CHANGED),
               AuditEvent.target_type == "ticket", AuditEvent.target_id == ticket.id.hex)
        .order_by(AuditEvent.seq)
    )  # fmt: skip
    return [HistoryEntry(at=at, kind="status", who=who, before=str(details.get("from", "")),
                         after=str(details.get("to", "")))
            for at, who, details in rows]  # fmt: skip


def _receipt(row: ConsentReceiptRecord, device_key: str | None) -> ReceiptView:
    signed = SignedDocument(body=row.body, signature=row.signature)
    body: ConsentReceipt | None = None
    if device_key is not None:
        try:
            body = verify_receipt(decode_ed25519_public_key(device_key), signed)
        except CryptoError:
            body = None
    return ReceiptView(
        decided_at=row.decided_at, received_at=row.received_at,
        asked=(body.prompt_text or "") if body is not None else "",
        decisions=tuple(sorted(row.decisions.items())),
        timeout_seconds=body.timeout_seconds if body is not None else 0,
        timeout_default=str(body.timeout_default) if body is not None else "",
        verified=body is not None,
    )


async def _sessions(db: AsyncSession, ticket: Ticket, actor: Actor) -> list[SessionView]:
    rows, _total = await support_sessions.list_visible(db, actor=actor, ticket_id=ticket.id,
                                                       limit=100)  # fmt: skip
    views = []
    for row in rows:
        receipts_of = await receipts.list_receipts(db, support_session_id=row.id,
                                                   organisation_id=row.organisation_id)
        views.append(SessionView(
            id=str(row.id), state=str(row.state),
            report=await during.build_session_report(db, support_session=row),
            receipts=tuple(_receipt(r, row.device_public_key) for r in receipts_of),
        ))  # fmt: skip
    return views


def _session_entries(rows: Sequence[SessionView]) -> list[HistoryEntry]:
    entries = []
    for view in rows:
        report = view.report
        at = report.started_at or report.ended_at
        if at is not None:
            entries.append(HistoryEntry(at=at, kind="session", who=report.technician_name,
                                        after=view.state, session_id=view.id))  # fmt: skip
    return entries


async def ticket_page(db: AsyncSession, *, ticket_id: uuid.UUID, actor: Actor) -> TicketPage:
    """Everything the ticket page shows; ``TicketNotFound`` for a ticket outside the actor's
    sight (another person's is indistinguishable from one that does not exist)."""
    ticket = await service.get_visible_ticket_or_raise(db, ticket_id=ticket_id, actor=actor)
    # The portal is the person's view: internal notes stay out even for staff reading it.
    comments = [c for c in await service.list_comments(db, ticket=ticket, actor=actor)
                if not c.internal]  # fmt: skip
    names = await _names(db, ticket.organisation_id, {c.author_id for c in comments})
    sessions = await _sessions(db, ticket, actor)
    history = [
        HistoryEntry(at=c.created_at, kind="comment", who=names[c.author_id], body=c.body)
        for c in comments
    ]
    history += await _status_changes(db, ticket)
    history += _session_entries(sessions)
    history.sort(key=lambda entry: entry.at)
    return TicketPage(
        ticket=ticket, history=tuple(history), sessions=tuple(sessions),
        attachments=tuple(await attachments.list_attachments(db, ticket=ticket)), names=names,
    )


# ---- the one report, line by line ------------------------------------------------------------


def _duration(seconds: float | None) -> str:
    whole = int(seconds or 0)
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def _runbook(note: RunbookRunNote, _: Gettext) -> str:
    if note.exit_code is None:
        return _("%(runbook)s (stopped at its time limit)") % {"runbook": note.runbook_id}
    return _("%(runbook)s (exit %(code)s)") % {"runbook": note.runbook_id,
                                                "code": note.exit_code}  # fmt: skip


def report_rows(
    report: SessionReport, *, _: Gettext, clock: Callable[[datetime], str],
    label: Callable[[str], str],
) -> list[tuple[str, str]]:
    """(label, value) pairs in ``render_lines``'s order. ``label`` names a capability in the
    reader's language; with the identity for ``_`` and ``label`` and ISO times for ``clock``,
    ``f"{label}: {value}"`` is exactly ``render_lines`` (tests/web/test_portal.py checks)."""
    none = _("none")

    def when(moment: datetime | None) -> str:
        return clock(moment) if moment is not None else "-"

    granted = [
        _("%(capability)s (revoked)") % {"capability": label(str(c.capability))}
        if c.revoked_at is not None else label(str(c.capability))
        for c in report.capabilities if c.granted
    ]  # fmt: skip
    files = report.files
    zones = ", ".join(report.zones_opened) or none
    if report.zones_refused:
        zones += " " + _("(refused: %(zones)s)") % {"zones": ", ".join(report.zones_refused)}
    summary = {
        "written": report.summary or "",
        "pending": _("(not written yet)"),
        "not_required": _("(not required)"),
    }[report.summary_state]
    end = _("%(reason)s (by %(party)s)") % {"reason": report.end_reason or "-",
                                            "party": report.ended_by or "-"}  # fmt: skip
    if report.end_detail:
        end += f": {report.end_detail}"
    return [
        (_("Support session"), report.support_session_id),
        (_("Technician"), f"{report.technician_name} ({report.organisation_name})"),
        (_("Ticket"), report.ticket_ref or "-"),
        (_("Started"), when(report.started_at) if report.started_at else _("never started")),
        (_("Ended"), when(report.ended_at)),
        (_("Duration"), _duration(report.duration_seconds)),
        (_("Capabilities granted"), ", ".join(granted) or none),
        (_("Capabilities used"), ", ".join(label(c) for c in report.used()) or none),
        (_("Commands run"), str(report.commands_run)),
        (_("Files"), _("%(read)s read (%(read_bytes)s bytes), %(written)s written "
                       "(%(written_bytes)s bytes)") % files.model_dump()),
        (_("Personal folders opened"), zones),
        (_("Diagnostics sent"), str(report.diagnostics_sent)),
        (_("Runbooks run"), ", ".join(_runbook(n, _) for n in report.runbooks_run) or none),
        (_("Recorded"), _("yes") if report.recorded else _("no")),
        (_("End reason"), end),
        (_("Summary"), summary),
    ]


def attachment_text(attachment: TicketAttachment) -> str:
    """The content as the person reads it: JSON indented, text as it is."""
    if attachment.media_type != "application/json":
        return attachment.content
    import orjson

    try:
        value: Any = orjson.loads(attachment.content)
    except orjson.JSONDecodeError:
        return attachment.content
    return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()

"""The end-user portal and the join page.

====================================================  ================  ==========================
page                                                  permission        what
====================================================  ================  ==========================
GET  /portal                                          ticket:read       my tickets, a new ticket
POST /portal/tickets                                  ticket:create     open one (errors at field)
GET  /portal/tickets/{id}                             ticket:read       history, sessions, report,
                                                                        receipts, attachments
POST /portal/tickets/{id}/comments                    ticket:comment    a public comment
GET  /portal/tickets/{id}/attachments/{aid}           ticket:read       one attachment, readable
GET  /portal/policy                                   policy:read       the policy in plain words
GET  /join, /join/{code}                              (public)          what happens, how to join
GET  /join/{code}/agent/{platform}                    (public)          the agent (agent_download)
====================================================  ================  ==========================

The pages call the same services as the JSON API, so a ticket outside the person's sight is a
404 here as there. The join page is public and never looks the code up: it checks the code's
shape only, so it cannot be used to find out which codes exist. It offers the single-file agent
for the platform the browser's User-Agent names (server-side, no script) when this server has a
build of it; the download itself (``agent_download``) is where the code is checked.
"""

from __future__ import annotations

import re
import uuid
from typing import Annotated

from babel.dates import get_day_names
from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy import func, select

from auxilio.policy.roles import Permission
from auxilio.protocol.types import Capability
from auxilio.server.api.deps import DbSession, SettingsDep
from auxilio.server.context import Actor
from auxilio.server.errors import TicketNotFound
from auxilio.server.policies import service as policies
from auxilio.server.support_sessions.service import JOIN_CODE_ALPHABET
from auxilio.server.tickets import attachments as ticket_attachments
from auxilio.server.tickets import service as tickets
from auxilio.server.tickets.models import Ticket
from auxilio.server.tickets.schemas import CommentIn, TicketCreateIn
from auxilio.server.web import agent_download, i18n, portal_policy
from auxilio.server.web.pages import (
    N_,
    CsrfChecked,
    allowed,
    current_identity,
    language,
    register_pages,
    render,
    time_zone,
    translator,
    web_require,
)
from auxilio.server.web.portal_ticket import attachment_text, report_rows, ticket_page
from auxilio.server.web.survey_page import pending_surveys

router = APIRouter(include_in_schema=False)

Reader = Annotated[Actor, web_require(Permission.TICKET_READ)]
Opener = Annotated[Actor, web_require(Permission.TICKET_CREATE)]
Commenter = Annotated[Actor, web_require(Permission.TICKET_COMMENT)]
PolicyReader = Annotated[Actor, web_require(Permission.POLICY_READ)]

TICKETS_SHOWN = 100

STATUS_LABELS = {
    "new": N_("New"),
    "open": N_("Open"),
    "pending": N_("Waiting for you"),
    "resolved": N_("Resolved"),
    "closed": N_("Closed"),
}
CATEGORY_LABELS = {
    "hardware": N_("Hardware"),
    "software": N_("Software"),
    "network": N_("Network"),
    "account": N_("Account"),
    "other": N_("Other"),
}
SESSION_STATE_LABELS = {
    "requested": N_("Requested"),
    "awaiting_consent": N_("Waiting for your consent"),
    "active": N_("In progress"),
    "ended": N_("Finished"),
    "denied": N_("Denied by the policy"),
    "rejected": N_("You refused"),
    "expired": N_("Expired"),
}
DECISION_LABELS = {
    "granted": N_("allowed"),
    "refused": N_("refused"),
    "timed_out": N_("not answered in time"),
}
ATTACHMENT_KIND_LABELS = {
    "diagnostics": N_("Diagnostics report"),
    "runbook_result": N_("Runbook result"),
    "file_note": N_("Note about a file"),
}
# What each capability means, in the words of the join page (the protocol's names).
CAPABILITY_MEANINGS = {
    Capability.CHAT: (N_("Chat"), N_("Written messages between you and the technician.")),
    Capability.TERMINAL: (N_("Terminal"), N_(
        "The technician runs commands on your computer; you see each one as it runs.")),
    Capability.FILES: (N_("Files"), N_(
        "The technician copies files to or from your computer. Personal folders (documents, "
        "pictures, email...) need your own permission, folder by folder.")),
    Capability.DIAGNOSTICS: (N_("Diagnostics"), N_(
        "A report about your computer (system, disks, network). You see it and choose whether "
        "to send it.")),
    Capability.RUNBOOKS: (N_("Runbooks"), N_(
        "Scripts your organisation has reviewed and approved, such as clearing a cache.")),
    Capability.SCREEN: (N_("Screen"), N_("The technician sees your screen.")),
    Capability.INPUT: (N_("Remote control"), N_(
        "The technician moves your mouse and types on your keyboard.")),
    Capability.CLIPBOARD: (N_("Clipboard"), N_(
        "The technician puts text on your clipboard or reads the text you copied; you see each "
        "time.")),
}
# Report capability names are the protocol's; the report shows them with these labels.
REPORT_CAPABILITY_LABELS = {str(cap): label for cap, (label, _) in CAPABILITY_MEANINGS.items()}

_CODE_CHARS = re.escape(JOIN_CODE_ALPHABET)
_CODE = re.compile(rf"^[{_CODE_CHARS}]{{3}}-?[{_CODE_CHARS}]{{3}}-?[{_CODE_CHARS}]{{3}}$")


# ---- my tickets ------------------------------------------------------------------------------


async def _my_tickets(db: DbSession, actor: Actor) -> tuple[list[Ticket], int]:
    """The tickets this person asked for, newest first. For an end user that is everything
    ``tickets.list_tickets`` shows them; staff reading the portal see their own requests too,
    not the organisation's queue (that is the console's)."""
    query = select(Ticket).where(Ticket.organisation_id == actor.organisation_id,
                                 Ticket.requester_id == actor.id)  # fmt: skip
    total = (await db.execute(select(func.count()).select_from(query.subquery()))).scalar_one()
    rows = await db.execute(query.order_by(Ticket.number.desc()).limit(TICKETS_SHOWN))
    return list(rows.scalars()), int(total)


async def _portal(
    request: Request, db: DbSession, actor: Actor, *, status_code: int = 200,
    values: dict[str, str] | None = None, errors: dict[str, str] | None = None,
) -> HTMLResponse:
    rows, total = await _my_tickets(db, actor)
    return render(
        request, "web/portal/index.html", status_code=status_code, tickets=rows, total=total,
        shown=len(rows), values=values or {"category": "software"}, errors=errors or {},
        categories=CATEGORY_LABELS, statuses=STATUS_LABELS,
        can_open=allowed(actor, Permission.TICKET_CREATE),
        pending_surveys=await pending_surveys(request, db, actor),
    )


@router.get("/portal", response_class=HTMLResponse)
async def portal(request: Request, actor: Reader, db: DbSession) -> HTMLResponse:
    return await _portal(request, db, actor)


def _ticket_errors(request: Request, exc: ValidationError) -> dict[str, str]:
    _ = translator(request)
    messages = {
        "title": _("Give the ticket a short title (one line, at most 200 characters)."),
        "description": _("The description can hold at most 20,000 characters."),
        "category": _("Choose one of the categories."),
    }
    fields = {str(error["loc"][0]) for error in exc.errors() if error["loc"]}
    return {name: messages[name] for name in messages if name in fields}


@router.post("/portal/tickets", response_model=None)
async def open_ticket(
    request: Request, actor: Opener, db: DbSession, _csrf: CsrfChecked,
    title: Annotated[str, Form()] = "", description: Annotated[str, Form()] = "",
    category: Annotated[str, Form()] = "",
) -> Response:
    values = {"title": title, "description": description, "category": category}
    try:
        body = TicketCreateIn(title=title.strip(), description=description.strip(),
                              category=category)
    except ValidationError as exc:
        return await _portal(request, db, actor, status_code=422, values=values,
                             errors=_ticket_errors(request, exc))  # fmt: skip
    ticket = await tickets.open_ticket(
        db, title=body.title, description=body.description, category=str(body.category),
        priority=str(body.priority), actor=actor,
    )
    return RedirectResponse(f"/portal/tickets/{ticket.id}", status_code=303)


# ---- one ticket ------------------------------------------------------------------------------


def _not_found(request: Request) -> HTMLResponse:
    _ = translator(request)
    return render(request, "web/error.html", status_code=404, title=_("Ticket not found"),
                  message=_("There is no such ticket among yours."), code="ticket_not_found")


async def _ticket(
    request: Request, db: DbSession, actor: Actor, ticket_id: uuid.UUID, *,
    status_code: int = 200, comment: str = "", comment_error: str = "",
) -> HTMLResponse:
    try:
        page = await ticket_page(db, ticket_id=ticket_id, actor=actor)
    except TicketNotFound:
        return _not_found(request)
    _ = translator(request)
    formatters = _formatters(request)

    def label(capability: str) -> str:
        return _(REPORT_CAPABILITY_LABELS.get(capability, capability))

    reports = {
        view.id: report_rows(view.report, _=_, clock=formatters.datetime, label=label)
        for view in page.sessions
    }
    return render(
        request, "web/portal/ticket.html", status_code=status_code, page=page,
        ticket=page.ticket, reports=reports, statuses=STATUS_LABELS, categories=CATEGORY_LABELS,
        session_states=SESSION_STATE_LABELS, decisions=DECISION_LABELS,
        capability_labels=REPORT_CAPABILITY_LABELS, kinds=ATTACHMENT_KIND_LABELS,
        comment=comment, comment_error=comment_error,
        can_comment=allowed(actor, Permission.TICKET_COMMENT),
        pending_surveys=await pending_surveys(request, db, actor, ticket_id=page.ticket.id),
    )


def _formatters(request: Request) -> i18n.Formatters:
    return i18n.Formatters(language(request), i18n.zone(time_zone(request)))


@router.get("/portal/tickets/{ticket_id}", response_class=HTMLResponse)
async def ticket(
    request: Request, ticket_id: uuid.UUID, actor: Reader, db: DbSession
) -> HTMLResponse:
    return await _ticket(request, db, actor, ticket_id)


@router.post("/portal/tickets/{ticket_id}/comments", response_model=None)
async def comment(
    request: Request, ticket_id: uuid.UUID, actor: Commenter, db: DbSession, _csrf: CsrfChecked,
    body: Annotated[str, Form()] = "",
) -> Response:
    try:
        found = await tickets.get_visible_ticket_or_raise(db, ticket_id=ticket_id, actor=actor,
                                                          lock=True)  # fmt: skip
    except TicketNotFound:
        return _not_found(request)
    try:
        checked = CommentIn(body=body.strip())
    except ValidationError:
        _ = translator(request)
        return await _ticket(request, db, actor, ticket_id, status_code=422, comment=body,
                             comment_error=_("Write a comment first (at most 20,000 "
                                             "characters)."))  # fmt: skip
    await tickets.add_comment(db, ticket=found, body=checked.body, internal=False, actor=actor)
    return RedirectResponse(f"/portal/tickets/{ticket_id}#history", status_code=303)


@router.get("/portal/tickets/{ticket_id}/attachments/{attachment_id}",
            response_class=HTMLResponse)  # fmt: skip
async def attachment(
    request: Request, ticket_id: uuid.UUID, attachment_id: uuid.UUID, actor: Reader,
    db: DbSession,
) -> HTMLResponse:
    try:
        found_ticket = await tickets.get_visible_ticket_or_raise(db, ticket_id=ticket_id,
                                                                 actor=actor)  # fmt: skip
        found = await ticket_attachments.get_attachment_or_raise(
            db, ticket=found_ticket, attachment_id=attachment_id
        )
    except (TicketNotFound, ticket_attachments.AttachmentNotFound):
        return _not_found(request)
    return render(request, "web/portal/attachment.html", ticket=found_ticket,
                  attachment=found, text=attachment_text(found),
                  kinds=ATTACHMENT_KIND_LABELS)  # fmt: skip


# ---- the policy ------------------------------------------------------------------------------


@router.get("/portal/policy", response_class=HTMLResponse)
async def policy(request: Request, actor: PolicyReader, db: DbSession) -> HTMLResponse:
    assert actor.organisation_id is not None  # noqa: S101 -- a person of an organisation
    active = await policies.get_active_policy(db, organisation_id=actor.organisation_id)
    view = portal_policy.describe_policy(active.compiled, version_label=active.version_label)
    return render(
        request, "web/portal/policy.html", policy=view, labels=portal_policy,
        duration_parts=portal_policy.duration_parts, size_parts=portal_policy.size_parts,
        day_names=_day_names(request),
    )


def _day_names(request: Request) -> list[str]:
    names = get_day_names("wide", locale=language(request))
    return [str(names[index]) for index in range(7)]


# ---- joining a session -----------------------------------------------------------------------


def normalise_code(text: str) -> str | None:
    """``"acd-efh-jkm "`` -> ``"ACD-EFH-JKM"``; None for anything not shaped like a join code.
    The shape only: whether such a code exists is never asked here."""
    raw = text.strip().upper().replace(" ", "")
    if not _CODE.match(raw):
        return None
    letters = raw.replace("-", "")
    return f"{letters[:3]}-{letters[3:6]}-{letters[6:]}"


def _server_url(request: Request, settings: SettingsDep) -> str:
    if settings.public_url:
        return settings.public_url.rstrip("/")
    return str(request.base_url).rstrip("/")


def _join_page(request: Request, settings: SettingsDep, typed: str | None) -> HTMLResponse:
    code = normalise_code(typed) if typed is not None else None
    _ = translator(request)
    error = "" if typed is None or code is not None else _(
        "That does not look like a join code. A code has nine letters and digits, such as "
        "ACD-EFH-JKM."
    )
    detected = agent_download.detect_platform(request.headers.get("user-agent", ""))
    build = agent_download.offered_build(settings, detected)
    others = [b for b in agent_download.available_builds(settings) if b != build]
    platform = build.platform if build else detected or ""
    return render(
        request, "web/portal/join.html", status_code=400 if error else 200, code=code,
        typed=typed or "", error=error, server=_server_url(request, settings),
        capabilities=list(CAPABILITY_MEANINGS.values()),
        build=build, build_name=agent_download.BUILD_PREFIX + build.platform if build else "",
        system=platform.split("-")[0],
        system_label=agent_download.platform_label(platform) if platform else "",
        other_builds=others, platform_label=agent_download.platform_label,
        headers={"x-robots-tag": "noindex"},
    )


@router.get("/join", response_class=HTMLResponse)
async def join(
    request: Request, settings: SettingsDep, db: DbSession, code: str | None = None
) -> Response:
    if code is not None and (normal := normalise_code(code)) is not None:
        return RedirectResponse(f"/join/{normal}", status_code=303)
    # Public; a logged-in person still sees their header (name, areas, log out).
    await current_identity(request, db)
    return _join_page(request, settings, code)


@router.get("/join/{code}", response_class=HTMLResponse)
async def join_code(
    request: Request, code: str, settings: SettingsDep, db: DbSession
) -> HTMLResponse:
    await current_identity(request, db)
    return _join_page(request, settings, code[:64])


register_pages(router)

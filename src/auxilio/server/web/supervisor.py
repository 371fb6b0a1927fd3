"""Supervisor pages: the organisation's live support sessions, the extensions waiting for an
approver, the audit search with the chain's verification status, and the recordings.

Approving or refusing an extension goes through ``support_sessions.extensions`` exactly as the
API's route does (the policy decides whether this approver may; a refusal of the approval
leaves the extension pending for someone who may), and the device and technician are told.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from auxilio.policy.roles import Permission
from auxilio.protocol.frames import Party
from auxilio.protocol.states import SupportSessionState
from auxilio.server.api.deps import DbSession
from auxilio.server.audit.actions import AuditAction
from auxilio.server.audit.chain import chain_for
from auxilio.server.audit.models import AuditEvent
from auxilio.server.audit.reading import verify_database
from auxilio.server.audit.witness import WitnessInvalid, read_witness
from auxilio.server.context import Actor
from auxilio.server.errors import DomainError, ExtensionNotFound, SupportSessionNotActive
from auxilio.server.identity import service as identity
from auxilio.server.recordings.models import AuditorKey, Recording
from auxilio.server.support_sessions import extensions, service
from auxilio.server.support_sessions.models import SessionExtension, SupportSession
from auxilio.server.support_sessions.runtime import SupportSessionRuntime
from auxilio.server.web.pages import (
    N_,
    CsrfChecked,
    allowed,
    flash,
    register_pages,
    render,
    translator,
    web_require,
)

router = APIRouter(prefix="/supervisor", include_in_schema=False)

ReadSessions = Annotated[Actor, web_require(Permission.SUPPORT_SESSION_READ_ALL)]
Approve = Annotated[Actor, web_require(Permission.SUPPORT_SESSION_APPROVE)]
EndAny = Annotated[Actor, web_require(Permission.SUPPORT_SESSION_END_ANY)]
ReadAudit = Annotated[Actor, web_require(Permission.AUDIT_READ)]
S = SupportSessionState
STATE_NAMES = {
    S.REQUESTED: N_("Waiting for the device"),
    S.AWAITING_CONSENT: N_("Waiting for consent"),
    S.ACTIVE: N_("In progress"),
}
AUDIT_PAGE = 100


@dataclass(frozen=True, slots=True)
class LiveRow:
    support_session: SupportSession
    technician: str
    seconds_left: float | None


@dataclass(frozen=True, slots=True)
class PendingRow:
    extension: SessionExtension
    support_session: SupportSession
    technician: str


def _org(actor: Actor) -> uuid.UUID:
    assert actor.organisation_id is not None  # noqa: S101 -- staff belong to an organisation
    return actor.organisation_id


async def _names(db: AsyncSession, organisation_id: uuid.UUID) -> dict[uuid.UUID, str]:
    return {
        u.id: u.display_name for u in await identity.list_users(db, organisation_id=organisation_id)
    }


async def live_sessions(db: AsyncSession, *, organisation_id: uuid.UUID) -> list[LiveRow]:
    rows = await db.execute(
        select(SupportSession)
        .where(
            SupportSession.organisation_id == organisation_id,
            SupportSession.state.in_([str(s) for s in service.LIVE_STATES]),
        )
        .order_by(SupportSession.created_at)
    )
    names = await _names(db, organisation_id)
    now = datetime.now(UTC)
    return [
        LiveRow(row, names.get(row.technician_id, "?"),
                max(0.0, (row.not_after - now).total_seconds()) if row.not_after else None)
        for row in rows.scalars()
    ]  # fmt: skip


async def pending_extensions(db: AsyncSession, *, organisation_id: uuid.UUID) -> list[PendingRow]:
    rows = await db.execute(
        select(SessionExtension, SupportSession)
        .join(SupportSession, SupportSession.id == SessionExtension.support_session_id)
        .where(
            SupportSession.organisation_id == organisation_id,
            SupportSession.state == str(S.ACTIVE),
            SessionExtension.state == "pending",
        )
        .order_by(SessionExtension.created_at)
    )
    names = await _names(db, organisation_id)
    return [PendingRow(ext, row, names.get(ext.requested_by_id, "?")) for ext, row in rows.tuples()]


def minutes_left(seconds: float | None) -> int | None:
    return None if seconds is None else int(seconds // 60)


async def _overview(request: Request, db: DbSession, actor: Actor, fragment: bool) -> HTMLResponse:
    org = _org(actor)
    context: dict[str, Any] = {
        "live": await live_sessions(db, organisation_id=org),
        "pending": await pending_extensions(db, organisation_id=org),
        "states": STATE_NAMES,
        "can_approve": allowed(actor, Permission.SUPPORT_SESSION_APPROVE),
        "can_audit": allowed(actor, Permission.AUDIT_READ),
        "can_end": allowed(actor, Permission.SUPPORT_SESSION_END_ANY),
        "can_declare": allowed(actor, Permission.EMERGENCY_DECLARE),
        "minutes_left": minutes_left,
    }
    template = "web/supervisor/_live.html" if fragment else "web/supervisor/index.html"
    return render(request, template, **context)


@router.get("")
async def overview(request: Request, db: DbSession, actor: ReadSessions) -> HTMLResponse:
    return await _overview(request, db, actor, fragment=False)


@router.get("/live")
async def live_fragment(request: Request, db: DbSession, actor: ReadSessions) -> HTMLResponse:
    """The live sessions and pending approvals alone: the page polls it every few seconds."""
    return await _overview(request, db, actor, fragment=True)


@router.post("/extensions/{extension_id}/{answer}", response_model=None)
async def decide(
    extension_id: uuid.UUID,
    answer: str,
    request: Request,
    db: DbSession,
    actor: Approve,
    _csrf: CsrfChecked,
) -> Response:
    """Approve or refuse a pending extension, as ``POST .../extensions/{id}/approve|deny``."""
    _ = translator(request)
    if answer not in {"approve", "deny"}:
        return HTMLResponse("", status_code=404)
    approve = answer == "approve"
    runtime: SupportSessionRuntime = request.app.state.support_sessions
    ext = await db.get(SessionExtension, extension_id)
    back = RedirectResponse("/supervisor", status_code=303)
    try:
        if ext is None:
            raise ExtensionNotFound(extension_id=str(extension_id))
        row = await service.get_visible_or_raise(
            db, support_session_id=ext.support_session_id, actor=actor, lock=True
        )
        ext = await extensions.get_extension_or_raise(
            db, support_session=row, extension_id=extension_id
        )
        outcome = await extensions.decide_extension(
            db, support_session=row, extension=ext, approve=approve, actor=actor,
            server_key=runtime.signing_key,
        )  # fmt: skip
    except DomainError as exc:
        await db.rollback()
        flash(back, request, _("Not done: %(reason)s", reason=exc.message), "error")
        return back
    await db.commit()
    if approve and outcome.grant is None:
        # The policy refused this approver: the extension stays pending for someone who may.
        flash(
            back,
            request,
            _(
                "The policy did not let you approve it (%(rule)s: %(reason)s).",
                rule=outcome.decision.rule,
                reason=outcome.decision.reason,
            ),
            "error",
        )
        return back
    await runtime.announce_extension(
        row, approved=approve, decided_by=Party.SUPERVISOR, grant=outcome.grant,
        reason=outcome.decision.reason,
    )  # fmt: skip
    flash(back, request, _("Approved: the person on the device is asked to accept it.")
          if approve else _("Refused: the session ends at its current time."))  # fmt: skip
    return back


@router.post("/sessions/{support_session_id}/end")
async def end_session(
    support_session_id: uuid.UUID,
    request: Request,
    db: DbSession,
    actor: EndAny,
    _csrf: CsrfChecked,
) -> RedirectResponse:
    """A supervisor ends a live session, as ``POST /support-sessions/{id}/end`` does: the
    device and the technician are told at once, and the end is audited with who did it."""
    _ = translator(request)
    back = RedirectResponse("/supervisor", status_code=303)
    try:
        row = await service.get_visible_or_raise(
            db, support_session_id=support_session_id, actor=actor, lock=True
        )
        if service.is_final(row):
            raise SupportSessionNotActive(state=row.state)
        await service.end_by_request(db, support_session=row, actor=actor)
    except DomainError as exc:
        flash(back, request, _("Not done: %(reason)s", reason=exc.message), "error")
        return back
    await db.commit()
    runtime: SupportSessionRuntime = request.app.state.support_sessions
    await runtime.announce_end(row)
    flash(back, request, _("The session was ended."))
    return back


# ---- audit -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuditQuery:
    action: str = ""
    actor: str = ""
    target: str = ""
    since: date | None = None
    until: date | None = None

    @classmethod
    def from_request(cls, request: Request) -> AuditQuery:
        params = request.query_params

        def day(name: str) -> date | None:
            try:
                return date.fromisoformat(params.get(name, "").strip())
            except ValueError:
                return None

        return cls(
            action=params.get("action", "").strip()[:80],
            actor=params.get("actor", "").strip()[:200],
            target=params.get("target", "").strip()[:64],
            since=day("since"),
            until=day("until"),
        )

    @property
    def given(self) -> bool:
        return any((self.action, self.actor, self.target, self.since, self.until))


async def search_audit(
    db: AsyncSession, *, organisation_id: uuid.UUID, query: AuditQuery, limit: int = AUDIT_PAGE
) -> list[AuditEvent]:
    """Newest first. The actor matches by name (part of it) or id; the target by its id or
    type; days are whole UTC days, the end day included."""
    sql = select(AuditEvent).where(AuditEvent.chain == chain_for(organisation_id))
    if query.action:
        sql = sql.where(AuditEvent.action == query.action)
    if query.actor:
        needle = query.actor.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        by_name = AuditEvent.actor_name.ilike(f"%{needle}%", escape="\\")
        actor_id = _uuid_or_none(query.actor)
        # Not "actor_id == None" for a name: SQL would read it as IS NULL and add every event
        # of the CLI and the system to the results.
        by_id = AuditEvent.actor_id == actor_id
        sql = sql.where(by_name if actor_id is None else by_name | by_id)
    if query.target:
        # Ids are stored as 32 hex digits; people paste them with dashes.
        as_uuid = _uuid_or_none(query.target)
        wanted = {query.target, as_uuid.hex} if as_uuid else {query.target}
        sql = sql.where(AuditEvent.target_id.in_(wanted) | (AuditEvent.target_type == query.target))
    if query.since:
        sql = sql.where(AuditEvent.occurred_at >= datetime.combine(query.since, time(0), UTC))
    if query.until:
        end = datetime.combine(query.until, time(0), UTC) + timedelta(days=1)
        sql = sql.where(AuditEvent.occurred_at < end)
    rows = await db.execute(sql.order_by(AuditEvent.seq.desc()).limit(limit))
    return list(rows.scalars())


def id_text(stored: str | None) -> str:
    """A stored id as people write it: a UUID with its dashes, anything else as it is."""
    if stored and len(stored) == 32:
        as_uuid = _uuid_or_none(stored)
        if as_uuid is not None:
            return str(as_uuid)
    return stored or ""


def _uuid_or_none(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


async def verify_chain(request: Request, db: AsyncSession, organisation_id: uuid.UUID) -> Any:
    """The chain's report, as ``GET /api/v1/audit/verify`` computes it (witness included)."""
    chain = chain_for(organisation_id)
    witness_dir = request.app.state.settings.audit_witness_path
    try:
        witness = read_witness([witness_dir], chains=[chain]) if witness_dir.is_dir() else {}
    except WitnessInvalid as exc:
        return {"ok": False, "events": 0, "reason": str(exc), "seq": None}
    conn = await db.connection()
    [report] = await verify_database(
        conn, public_key=request.app.state.signing_key.public_key(), chains=[chain],
        witness=witness,
    )  # fmt: skip
    return {
        "ok": report.ok,
        "events": report.events,
        "checkpoints": report.checkpoints,
        "witnessed": report.witnessed,
        "reason": report.broken.reason if report.broken else None,
        "seq": report.broken.seq if report.broken else None,
    }


@router.get("/audit")
async def audit(request: Request, db: DbSession, actor: ReadAudit) -> HTMLResponse:
    org = _org(actor)
    query = AuditQuery.from_request(request)
    events = await search_audit(db, organisation_id=org, query=query)
    return render(
        request, "web/supervisor/audit.html", query=query, events=events,
        actions=sorted(str(a) for a in AuditAction), verification=await verify_chain(
            request, db, org), limit=AUDIT_PAGE, id_text=id_text,
    )  # fmt: skip


# ---- recordings ------------------------------------------------------------------------------


@router.get("/recordings")
async def recordings(request: Request, db: DbSession, actor: ReadAudit) -> HTMLResponse:
    """The organisation's recordings. Opening one needs the auditor's private key, which the
    server never holds: ``auxilio recording export`` and the page's player use it where it is."""
    org = _org(actor)
    rows = await db.execute(
        select(Recording, SupportSession)
        .join(SupportSession, SupportSession.id == Recording.support_session_id)
        .where(Recording.organisation_id == org)
        .order_by(Recording.created_at.desc())
        .limit(200)
    )
    names = await _names(db, org)
    items = [(rec, row, names.get(row.technician_id, "?")) for rec, row in rows.tuples()]
    return render(request, "web/supervisor/recordings.html", items=items)


@router.get("/recordings/{support_session_id}")
async def recording(
    support_session_id: uuid.UUID, request: Request, db: DbSession, actor: ReadAudit
) -> HTMLResponse:
    """One recording, played in the page: the auditor's private key is read and used there
    (static/js/recording-player.js), never sent; the page fetches only the ciphertext."""
    org = _org(actor)
    found = (
        await db.execute(
            select(Recording, SupportSession, AuditorKey)
            .join(SupportSession, SupportSession.id == Recording.support_session_id)
            .join(AuditorKey, AuditorKey.id == Recording.auditor_key_id)
            .where(Recording.support_session_id == support_session_id,
                   Recording.organisation_id == org)
        )
    ).first()  # fmt: skip
    if found is None:
        return render(request, "web/supervisor/recording.html", status_code=404, item=None)
    rec, row, key = found
    names = await _names(db, org)
    return render(
        request, "web/supervisor/recording.html",
        item=(rec, row, names.get(row.technician_id, "?")), fingerprint=key.fingerprint,
        api=f"/api/v1/recordings/{support_session_id}/sealed",
    )  # fmt: skip


register_pages(router)

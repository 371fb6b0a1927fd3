"""Support-session routes. Each declares one permission:

==============================================  =========================  ======================
route                                           permission                 notes
==============================================  =========================  ======================
POST /support-sessions                          support_session:request    policy decides next
GET  /support-sessions(?ticket_id=)             user:read_self             service narrows
GET  /support-sessions/{id}                     user:read_self             (read_all / read_own)
POST /support-sessions/{id}/end                 support_session:request    own, or end_any
POST /support-sessions/{id}/extensions          support_session:request    own session
POST .../extensions/{ext}/approve | /deny       support_session:approve
POST /support-sessions/{id}/summary             support_session:request    own, after the end
GET  /support-sessions/{id}/report              user:read_self             requester and staff
GET  /support-sessions/{id}/receipts            user:read_self
GET  /me/consent-receipts                       support_session:read_own   end users
GET  /tickets/{id}/support-sessions             user:read_self
GET  /server-key                                (public)                   agents pin it
==============================================  =========================  ======================

Reads use ``user:read_self`` because ``read_own`` and ``read_all`` are disjoint in the role
table; which one the caller holds decides what they see, and anything else is a 404. A policy
refusal keeps its record (the denied session, the audited decision): the transaction is
committed before the 403 is raised.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from auxilio.crypto.keys import encode_public_key, fingerprint
from auxilio.policy import Effect
from auxilio.policy.roles import Permission
from auxilio.policy.schema import SessionMode
from auxilio.protocol.frames import Party
from auxilio.server.api.deps import DbSession, Identity, require
from auxilio.server.context import Actor
from auxilio.server.errors import ApprovalRequired, ValidationFailed
from auxilio.server.keys import public_pem
from auxilio.server.policies.service import policy_denied
from auxilio.server.support_sessions import during, extensions, receipts, service
from auxilio.server.support_sessions import schemas as s
from auxilio.server.support_sessions.models import SessionExtension, SupportSession
from auxilio.server.support_sessions.runtime import SupportSessionRuntime
from auxilio.server.tickets import service as tickets

router = APIRouter(prefix="/support-sessions", tags=["support sessions"])
me_router = APIRouter(prefix="/me", tags=["support sessions"])
tickets_router = APIRouter(prefix="/tickets", tags=["support sessions"])
public_router = APIRouter(tags=["support sessions"])

RequestSessions = Annotated[Identity, require(Permission.SUPPORT_SESSION_REQUEST)]
ReadSessions = Annotated[Identity, require(Permission.SUPPORT_SESSION_READ)]
ApproveSessions = Annotated[Identity, require(Permission.SUPPORT_SESSION_APPROVE)]
ReadOwnSessions = Annotated[Identity, require(Permission.SUPPORT_SESSION_READ_OWN)]


def _runtime(request: Request) -> SupportSessionRuntime:
    runtime: SupportSessionRuntime = request.app.state.support_sessions
    return runtime


def _out(row: SupportSession, viewer: Actor | None = None) -> s.SupportSessionOut:
    out = s.SupportSessionOut.model_validate(row)
    if (
        viewer is not None
        and viewer.id == row.technician_id
        and row.grant_body
        and row.grant_signature
    ):
        out.grant = s.SignedGrantOut(body=row.grant_body, signature=row.grant_signature)
    return out


def _extension_out(row: SessionExtension, not_after: datetime | None) -> s.ExtensionOut:
    return s.ExtensionOut(
        id=row.id,
        support_session_id=row.support_session_id,
        minutes=row.seconds / 60,
        reason=row.reason,
        state=row.state,
        decision_rule=row.decision_rule,
        decided_at=row.decided_at,
        new_not_after=not_after if row.state == "approved" else None,
    )


@router.post("", response_model=s.SupportSessionCreatedOut, status_code=201)
async def request_support_session(
    body: s.SupportSessionCreateIn, caller: RequestSessions, db: DbSession, request: Request
) -> s.SupportSessionCreatedOut:
    if body.mode == "unattended" and body.device_id is None:
        # Without a device the policy could only answer in the abstract (no group, no owner).
        raise ValidationFailed("An unattended session names its device (device_id).",
                               field="device_id")
    outcome = await service.request_support_session(
        db,
        ticket_id=body.ticket_id,
        mode=SessionMode(body.mode),
        capabilities=body.capabilities,
        technician_e2e_key=body.technician_e2e_key,
        actor=caller.actor,
        node_id=_runtime(request).settings.node_id,
        recording_requested=body.record,
        requested=service.Requested(
            terminal_shell=body.terminal_shell, files_direction=body.files_direction,
            runbooks=tuple(body.runbooks),
        ),
        device_id=body.device_id,
        server_fingerprint=fingerprint(_runtime(request).signing_key.public_key()),
    )
    decision = outcome.decision
    if outcome.support_session is None or decision.effect is Effect.DENY:
        await db.commit()
        if decision.effect is Effect.REQUIRE_APPROVAL:
            raise ApprovalRequired(
                decision.reason,
                rule=decision.rule,
                reason=decision.reason,
                policy_version=decision.policy_version,
            )
        raise policy_denied(decision)
    row = outcome.support_session
    return s.SupportSessionCreatedOut(
        id=row.id,
        state=row.state,
        join_code=outcome.join_code,
        join_code_expires_at=outcome.join_code_expires_at,
        device_id=row.device_id,
        pre_authorisation_id=row.pre_authorisation_id,
        max_duration_seconds=row.max_duration_seconds,
        policy_version=row.policy_version,
        recorded=row.recorded,
    )


@router.get("", response_model=s.SupportSessionPage)
async def list_support_sessions(
    caller: ReadSessions,
    db: DbSession,
    ticket_id: uuid.UUID | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> s.SupportSessionPage:
    rows, total = await service.list_visible(
        db, actor=caller.actor, ticket_id=ticket_id, limit=limit, offset=offset
    )
    return s.SupportSessionPage(
        items=[_out(r) for r in rows], total=total, limit=limit, offset=offset
    )


@router.get("/{support_session_id}", response_model=s.SupportSessionOut)
async def get_support_session(
    support_session_id: uuid.UUID, caller: ReadSessions, db: DbSession
) -> s.SupportSessionOut:
    return _out(
        await service.get_visible_or_raise(
            db, support_session_id=support_session_id, actor=caller.actor
        ),
        caller.actor,
    )


@router.post("/{support_session_id}/end", response_model=s.SupportSessionOut)
async def end_support_session(
    support_session_id: uuid.UUID, caller: RequestSessions, db: DbSession, request: Request
) -> s.SupportSessionOut:
    row = await service.get_visible_or_raise(
        db, support_session_id=support_session_id, actor=caller.actor, lock=True
    )
    await service.end_by_request(db, support_session=row, actor=caller.actor)
    await db.commit()
    await _runtime(request).announce_end(row)
    return _out(row)


@router.post("/{support_session_id}/extensions", response_model=s.ExtensionOut, status_code=201)
async def request_extension(
    support_session_id: uuid.UUID,
    body: s.ExtensionIn,
    caller: RequestSessions,
    db: DbSession,
    request: Request,
) -> JSONResponse:
    runtime = _runtime(request)
    row = await service.get_visible_or_raise(
        db, support_session_id=support_session_id, actor=caller.actor, lock=True
    )
    outcome = await extensions.request_extension(
        db,
        support_session=row,
        seconds=body.minutes * 60,
        reason=body.reason,
        actor=caller.actor,
        server_key=runtime.signing_key,
    )
    await db.commit()
    if outcome.decision.effect is Effect.DENY:
        await runtime.announce_extension(
            row, approved=False, decided_by=Party.SERVER, grant=None, reason=outcome.decision.reason
        )
        raise policy_denied(outcome.decision)
    if outcome.grant is not None:
        await runtime.announce_extension(
            row,
            approved=True,
            decided_by=Party.SERVER,
            grant=outcome.grant,
            reason=outcome.decision.reason,
        )
    # 202 while an approver has yet to answer; 201 when the extension already took effect.
    status = 201 if outcome.grant is not None else 202
    out = _extension_out(outcome.extension, row.not_after)
    return JSONResponse(out.model_dump(mode="json"), status_code=status)


async def _decide_extension(
    support_session_id: uuid.UUID,
    extension_id: uuid.UUID,
    caller: Identity,
    db: DbSession,
    request: Request,
    *,
    approve: bool,
) -> s.ExtensionOut:
    runtime = _runtime(request)
    row = await service.get_visible_or_raise(
        db, support_session_id=support_session_id, actor=caller.actor, lock=True
    )
    extension = await extensions.get_extension_or_raise(
        db, support_session=row, extension_id=extension_id
    )
    outcome = await extensions.decide_extension(
        db,
        support_session=row,
        extension=extension,
        approve=approve,
        actor=caller.actor,
        server_key=runtime.signing_key,
    )
    await db.commit()
    if approve and outcome.grant is None:
        raise policy_denied(outcome.decision)
    await runtime.announce_extension(
        row,
        approved=approve,
        decided_by=Party.SUPERVISOR,
        grant=outcome.grant,
        reason=outcome.decision.reason,
    )
    return _extension_out(extension, row.not_after)


@router.post(
    "/{support_session_id}/extensions/{extension_id}/approve", response_model=s.ExtensionOut
)
async def approve_extension(
    support_session_id: uuid.UUID,
    extension_id: uuid.UUID,
    caller: ApproveSessions,
    db: DbSession,
    request: Request,
) -> s.ExtensionOut:
    return await _decide_extension(
        support_session_id, extension_id, caller, db, request, approve=True
    )


@router.post("/{support_session_id}/extensions/{extension_id}/deny", response_model=s.ExtensionOut)
async def deny_extension(
    support_session_id: uuid.UUID,
    extension_id: uuid.UUID,
    caller: ApproveSessions,
    db: DbSession,
    request: Request,
) -> s.ExtensionOut:
    return await _decide_extension(
        support_session_id, extension_id, caller, db, request, approve=False
    )


@router.post("/{support_session_id}/summary", response_model=s.SupportSessionOut)
async def write_summary(
    support_session_id: uuid.UUID,
    body: s.SummaryIn,
    caller: RequestSessions,
    db: DbSession,
    request: Request,
) -> s.SupportSessionOut:
    row = await service.get_visible_or_raise(
        db, support_session_id=support_session_id, actor=caller.actor, lock=True
    )
    written = await during.write_summary(
        db, support_session=row, summary=body.summary, actor=caller.actor
    )
    await db.commit()
    # The person's report, again, now with the summary (after the commit: it reads it back).
    await _runtime(request).announce_report(written)
    return _out(written)


@router.get("/{support_session_id}/report", response_model=s.ReportOut)
async def session_report(
    support_session_id: uuid.UUID, caller: ReadSessions, db: DbSession
) -> s.ReportOut:
    row = await service.get_visible_or_raise(
        db, support_session_id=support_session_id, actor=caller.actor
    )
    return s.ReportOut.model_validate(await during.build_report(db, support_session=row))


@router.get("/{support_session_id}/receipts", response_model=list[s.ReceiptOut])
async def session_receipts(
    support_session_id: uuid.UUID, caller: ReadSessions, db: DbSession
) -> list[s.ReceiptOut]:
    row = await service.get_visible_or_raise(
        db, support_session_id=support_session_id, actor=caller.actor
    )
    rows = await receipts.list_receipts(
        db, support_session_id=row.id, organisation_id=row.organisation_id
    )
    return [s.ReceiptOut.model_validate(r) for r in rows]


@me_router.get("/consent-receipts", response_model=list[s.ReceiptOut])
async def my_consent_receipts(caller: ReadOwnSessions, db: DbSession) -> list[s.ReceiptOut]:
    assert caller.actor.organisation_id is not None  # noqa: S101 -- users have one
    rows = await receipts.list_receipts(
        db, requester_id=caller.user.id, organisation_id=caller.actor.organisation_id
    )
    return [s.ReceiptOut.model_validate(r) for r in rows]


@tickets_router.get("/{ticket_id}/support-sessions", response_model=s.SupportSessionPage)
async def ticket_support_sessions(
    ticket_id: uuid.UUID,
    caller: ReadSessions,
    db: DbSession,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> s.SupportSessionPage:
    await tickets.get_visible_ticket_or_raise(db, ticket_id=ticket_id, actor=caller.actor)
    rows, total = await service.list_visible(
        db, actor=caller.actor, ticket_id=ticket_id, limit=limit, offset=offset
    )
    return s.SupportSessionPage(
        items=[_out(r) for r in rows], total=total, limit=limit, offset=offset
    )


@public_router.get("/server-key", response_model=s.ServerKeyOut)
async def server_key(request: Request) -> s.ServerKeyOut:
    public = _runtime(request).signing_key.public_key()
    return s.ServerKeyOut(
        public_key=encode_public_key(public),
        public_key_pem=public_pem(public).decode("ascii"),
        fingerprint=fingerprint(public),
    )

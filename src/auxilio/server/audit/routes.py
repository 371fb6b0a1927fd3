"""Audit routes: page through, export (JSON Lines) and verify the caller's organisation chain."""

from __future__ import annotations

import io
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from sqlalchemy import select

from auxilio.policy.roles import Permission
from auxilio.server.api.deps import DbSession, Identity, require
from auxilio.server.audit import schemas as s
from auxilio.server.audit.actions import AuditAction
from auxilio.server.audit.chain import chain_for
from auxilio.server.audit.export import export_chain
from auxilio.server.audit.models import AuditEvent
from auxilio.server.audit.reading import verify_database
from auxilio.server.audit.service import record
from auxilio.server.audit.witness import WitnessInvalid, read_witness
from auxilio.server.keys import public_pem
from auxilio.server.validation import QueryText, SequenceNumber

router = APIRouter(prefix="/audit", tags=["audit"])

ReadAudit = Annotated[Identity, require(Permission.AUDIT_READ)]


@router.get("/events", response_model=s.AuditPage)
async def list_events(
    caller: ReadAudit,
    db: DbSession,
    after_seq: Annotated[SequenceNumber, Query()] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    action: Annotated[QueryText | None, Query(max_length=80)] = None,
) -> s.AuditPage:
    query = (
        select(AuditEvent)
        .where(
            AuditEvent.chain == chain_for(caller.user.organisation_id), AuditEvent.seq > after_seq
        )
        .order_by(AuditEvent.seq)
        .limit(limit)
    )
    if action:
        query = query.where(AuditEvent.action == action)
    rows = list((await db.execute(query)).scalars())
    return s.AuditPage(
        events=[s.AuditEventOut.model_validate(r) for r in rows],
        next_after_seq=rows[-1].seq if len(rows) == limit else None,
    )


@router.get("/export", response_class=Response)
async def export(caller: ReadAudit, db: DbSession, request: Request) -> Response:
    """The organisation's whole chain as JSON Lines, verifiable offline with the public key."""
    chain = chain_for(caller.user.organisation_id)
    # The export itself is recorded first, so the file proves it was taken.
    await record(db, action=AuditAction.AUDIT_EXPORTED, actor=caller.actor)
    await db.flush()
    conn = await db.connection()
    buffer = io.BytesIO()
    await export_chain(conn, chain, buffer, public_key=request.app.state.signing_key.public_key())
    return Response(
        buffer.getvalue(),
        media_type="application/x-ndjson",
        headers={"content-disposition": f'attachment; filename="audit-{chain}.jsonl"'},
    )


@router.get("/verify", response_model=s.VerifyOut)
async def verify(caller: ReadAudit, db: DbSession, request: Request) -> s.VerifyOut:
    conn = await db.connection()
    chain = chain_for(caller.user.organisation_id)
    witness_dir = request.app.state.settings.audit_witness_path
    try:
        witness = read_witness([witness_dir], chains=[chain]) if witness_dir.is_dir() else {}
    except WitnessInvalid as exc:
        return s.VerifyOut(chain=chain, intact=False, events=0, checkpoints=0, witnessed=0,
                           first_broken_seq=None, reason=str(exc),
                           code="audit.witness_unreadable")  # fmt: skip
    [report] = await verify_database(
        conn, public_key=request.app.state.signing_key.public_key(), chains=[chain],
        witness=witness,
    )  # fmt: skip
    return s.VerifyOut(
        chain=chain,
        intact=report.ok,
        events=report.events,
        checkpoints=report.checkpoints,
        witnessed=report.witnessed,
        first_broken_seq=report.broken.seq if report.broken else None,
        reason=report.broken.reason if report.broken else None,
        code=str(report.broken.code) if report.broken else None,
    )


@router.get("/public-key", response_class=Response)
async def public_key(caller: ReadAudit, request: Request) -> Response:
    return Response(
        public_pem(request.app.state.signing_key.public_key()), media_type="application/x-pem-file"
    )

"""Runbook catalogue routes. Each declares one permission:

==================================================  ===============  ==========================
route                                               permission       who, with the role table
==================================================  ===============  ==========================
POST   /runbooks                                    runbook:write    senior technicians and up
GET    /runbooks                                    runbook:read     staff (auditors included)
GET    /runbooks/{runbook_id}                       runbook:read     the approved version, or
                                                                     ``?version=``
POST   /runbooks/{runbook_id}/versions/{v}/approve  runbook:approve  technicians and up ask; the
                                                                     active policy's
                                                                     approver_roles decide
POST   /runbooks/{runbook_id}/versions/{v}/retire   runbook:write
==================================================  ===============  ==========================

A refused approval is recorded (``runbook:approval:refused``) in a transaction of its own: the
request's work is rolled back, the record of the attempt is kept.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from auxilio.policy.roles import Permission
from auxilio.server.api.deps import DbSession, Identity, require
from auxilio.server.errors import DomainError
from auxilio.server.runbooks import schemas as s
from auxilio.server.runbooks import service
from auxilio.server.runbooks.models import RunbookState, RunbookVersion
from auxilio.server.validation import OrdinalNumber

router = APIRouter(prefix="/runbooks", tags=["runbooks"])

ReadRunbooks = Annotated[Identity, require(Permission.RUNBOOK_READ)]
WriteRunbooks = Annotated[Identity, require(Permission.RUNBOOK_WRITE)]
ApproveRunbooks = Annotated[Identity, require(Permission.RUNBOOK_APPROVE)]


def _out(request: Request, row: RunbookVersion) -> s.RunbookOut:
    public = request.app.state.signing_key.public_key()
    return s.runbook_out(row, service.document_of(row, public))


@router.post("", response_model=s.RunbookOut, status_code=201)
async def create_draft(
    body: s.RunbookDraftIn, caller: WriteRunbooks, db: DbSession, request: Request
) -> s.RunbookOut:
    row = await service.create_draft(
        db, runbook_id=body.runbook_id, fields=body.fields(), actor=caller.actor
    )
    return _out(request, row)


@router.get("", response_model=s.RunbookPage)
async def list_runbooks(
    caller: ReadRunbooks,
    db: DbSession,
    request: Request,
    state: RunbookState | None = None,
    runbook_id: s.RunbookSlug | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> s.RunbookPage:
    assert caller.actor.organisation_id is not None  # noqa: S101 -- staff belong to an org
    rows, total = await service.list_runbooks(
        db, organisation_id=caller.actor.organisation_id, state=state, runbook_id=runbook_id,
        limit=limit, offset=offset,
    )  # fmt: skip
    public = request.app.state.signing_key.public_key()
    items = [s.summary_out(r, service.document_of(r, public)) for r in rows]
    return s.RunbookPage(items=items, total=total, limit=limit, offset=offset)


@router.get("/{runbook_id}", response_model=s.RunbookOut)
async def get_runbook(
    runbook_id: s.RunbookSlug,
    caller: ReadRunbooks,
    db: DbSession,
    request: Request,
    version: OrdinalNumber | None = None,
) -> s.RunbookOut:
    assert caller.actor.organisation_id is not None  # noqa: S101 -- staff belong to an org
    row = await service.get_runbook_or_raise(
        db, organisation_id=caller.actor.organisation_id, runbook_id=runbook_id, version=version
    )
    return _out(request, row)


@router.post("/{runbook_id}/versions/{version}/approve", response_model=s.RunbookOut)
async def approve(
    runbook_id: s.RunbookSlug,
    version: OrdinalNumber,
    caller: ApproveRunbooks,
    db: DbSession,
    request: Request,
) -> s.RunbookOut:
    org = caller.actor.organisation_id
    assert org is not None  # noqa: S101 -- staff belong to an org
    row = await service.get_runbook_or_raise(
        db, organisation_id=org, runbook_id=runbook_id, version=version, lock=True
    )
    try:
        await service.approve_runbook(
            db, row=row, actor=caller.actor, server_key=request.app.state.signing_key
        )
    except DomainError as exc:
        if not service.is_policy_refusal(exc):
            raise
        await db.rollback()
        await service.record_refusal(db, organisation_id=org, runbook_id=runbook_id,
                                     version=version, error=exc, actor=caller.actor)  # fmt: skip
        await db.commit()
        raise
    return _out(request, row)


@router.post("/{runbook_id}/versions/{version}/retire", response_model=s.RunbookOut)
async def retire(
    runbook_id: s.RunbookSlug,
    version: OrdinalNumber,
    caller: WriteRunbooks,
    db: DbSession,
    request: Request,
) -> s.RunbookOut:
    assert caller.actor.organisation_id is not None  # noqa: S101 -- staff belong to an org
    row = await service.get_runbook_or_raise(
        db, organisation_id=caller.actor.organisation_id, runbook_id=runbook_id, version=version,
        lock=True,
    )  # fmt: skip
    await service.retire_runbook(db, row=row, actor=caller.actor)
    return _out(request, row)

"""Automated runs of a device (docs/unattended.md, "Automated runs").

==================================================  ===================  =======================
route                                               permission           notes
==================================================  ===================  =======================
POST   /devices/{id}/automation-runs                automation:manage    policy + owner decide
GET    /devices/{id}/automation-runs                automation:manage    newest due first
GET    /devices/{id}/automation-runs/{run_id}       automation:manage
DELETE /devices/{id}/automation-runs/{run_id}       automation:manage    cancels (scheduled/sent)
==================================================  ===================  =======================

A refusal (``automation.*``, 403) is recorded (``automation:run:refused``) in a transaction of its
own: the request's work is rolled back, the record of the attempt is kept.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from auxilio.policy.roles import Permission
from auxilio.server.api.deps import DbSession, Identity, require
from auxilio.server.automation import service
from auxilio.server.automation.models import AutomationRun
from auxilio.server.devices.service import get_visible_device_or_raise

router = APIRouter(prefix="/devices", tags=["automation"])
ManageAutomation = Annotated[Identity, require(Permission.AUTOMATION_MANAGE)]

RunbookId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")]
ParamName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
ParamValue = Annotated[str, StringConstraints(max_length=4096)] | int | bool


class AutomationRunIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["runbook", "diagnostics"]
    runbook_id: RunbookId | None = None
    sections: list[Annotated[str, StringConstraints(max_length=32)]] = Field(
        default_factory=list, max_length=16)
    params: dict[ParamName, ParamValue] = Field(default_factory=dict, max_length=16)
    ticket_id: uuid.UUID | None = None
    due_at: AwareDatetime | None = None
    repeat_seconds: int | None = Field(default=None, ge=1, le=service.MAX_REPEAT_SECONDS)


class AutomationResultOut(BaseModel):
    status: str
    code: str | None
    exit_code: int | None
    output_sha256: str
    truncated: bool
    started_at: datetime
    finished_at: datetime
    attachment_id: uuid.UUID | None = None


class AutomationRunOut(BaseModel):
    id: uuid.UUID
    device_id: uuid.UUID
    ticket_id: uuid.UUID | None
    pre_authorisation_id: uuid.UUID | None
    kind: str
    runbook_id: str | None
    version: int | None
    params: dict[str, Any]
    sections: list[str]
    state: str
    due_at: datetime
    repeat_seconds: int | None
    policy_version: str | None
    error_code: str | None
    result: AutomationResultOut | None
    created_by: uuid.UUID
    created_at: datetime
    sent_at: datetime | None
    finished_at: datetime | None


def _out(run: AutomationRun) -> AutomationRunOut:
    spec = run.spec or {}
    result = run.result
    return AutomationRunOut(
        id=run.id, device_id=run.device_id, ticket_id=run.ticket_id,
        pre_authorisation_id=run.pre_authorisation_id, kind=run.kind,
        runbook_id=spec.get("runbook_id"), version=spec.get("version"),
        params=spec.get("params") or {}, sections=spec.get("sections") or [], state=run.state,
        due_at=run.due_at, repeat_seconds=run.repeat_seconds, policy_version=run.policy_version,
        error_code=run.error_code,
        result=AutomationResultOut.model_validate(result) if result else None,
        created_by=run.created_by, created_at=run.created_at, sent_at=run.sent_at,
        finished_at=run.finished_at,
    )  # fmt: skip


@router.post("/{device_id}/automation-runs", response_model=AutomationRunOut, status_code=201)
async def create_run(
    device_id: uuid.UUID, body: AutomationRunIn, caller: ManageAutomation, db: DbSession,
    request: Request,
) -> AutomationRunOut:  # fmt: skip
    device = await get_visible_device_or_raise(db, device_id=device_id, actor=caller.actor)
    new = service.NewRun(
        kind=body.kind, runbook_id=body.runbook_id, sections=tuple(body.sections),
        params=dict(body.params), ticket_id=body.ticket_id, due_at=body.due_at,
        repeat_seconds=body.repeat_seconds,
    )  # fmt: skip
    org, device_id = device.organisation_id, device.id
    try:
        run = await service.create_run(db, device=device, request=new, actor=caller.actor,
                                       server_key=request.app.state.signing_key)  # fmt: skip
    except service.AutomationRefused as exc:
        await db.rollback()
        await service.record_refusal(db, organisation_id=org, device_id=device_id, request=new,
                                     error=exc, actor=caller.actor)  # fmt: skip
        await db.commit()
        raise
    return _out(run)


@router.get("/{device_id}/automation-runs", response_model=list[AutomationRunOut])
async def list_runs(
    device_id: uuid.UUID, caller: ManageAutomation, db: DbSession,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[AutomationRunOut]:  # fmt: skip
    device = await get_visible_device_or_raise(db, device_id=device_id, actor=caller.actor)
    return [_out(r) for r in await service.list_runs(db, device=device, limit=limit,
                                                       offset=offset)]  # fmt: skip


@router.get("/{device_id}/automation-runs/{run_id}", response_model=AutomationRunOut)
async def get_run(
    device_id: uuid.UUID, run_id: uuid.UUID, caller: ManageAutomation, db: DbSession
) -> AutomationRunOut:
    device = await get_visible_device_or_raise(db, device_id=device_id, actor=caller.actor)
    return _out(await service.get_run_or_raise(db, device=device, run_id=run_id))


@router.delete("/{device_id}/automation-runs/{run_id}", response_model=AutomationRunOut)
async def cancel_run(
    device_id: uuid.UUID, run_id: uuid.UUID, caller: ManageAutomation, db: DbSession
) -> AutomationRunOut:
    device = await get_visible_device_or_raise(db, device_id=device_id, actor=caller.actor)
    run = await service.get_run_or_raise(db, device=device, run_id=run_id, lock=True)
    return _out(await service.cancel_run(db, run=run, actor=caller.actor))

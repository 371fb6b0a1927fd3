"""Emergency routes (docs/emergency.md):

=============================  ======================  ======================================
route                          permission              who
=============================  ======================  ======================================
GET  /emergency                support_session:read    everyone of the organisation (banner)
POST /emergency                emergency:declare       supervisors and admins ask; the active
                                                       policy's emergency.declare_roles decide
POST /emergency/lift           emergency:declare       the same power as declaring
=============================  ======================  ======================================

A refusal by the policy is recorded (``policy:decision:denied``) in a transaction of its own:
the request's work is rolled back, the record of the refusal is kept.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Request
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from auxilio.policy.roles import STAFF_ROLES, Permission
from auxilio.server.api.deps import DbSession, Identity, require
from auxilio.server.emergency import schemas as s
from auxilio.server.emergency import service
from auxilio.server.emergency.announce import announce_ended
from auxilio.server.emergency.models import Emergency
from auxilio.server.errors import PolicyDenied
from auxilio.server.identity.models import User

router = APIRouter(prefix="/emergency", tags=["emergency"])

ReadState = Annotated[Identity, require(Permission.SUPPORT_SESSION_READ)]
Declare = Annotated[Identity, require(Permission.EMERGENCY_DECLARE)]


async def _names(db: AsyncSession, row: Emergency) -> dict[uuid.UUID, str]:
    ids = {row.declared_by, *([row.lifted_by] if row.lifted_by else [])}
    found = await db.execute(select(User.id, User.display_name).where(User.id.in_(ids)))
    return {uid: name for uid, name in found}


@router.get("", response_model=s.EmergencyStateOut)
async def get_state(caller: ReadState, db: DbSession) -> s.EmergencyStateOut:
    org = caller.actor.organisation_id
    assert org is not None  # noqa: S101 -- every person belongs to an organisation
    row = await service.latest(db, organisation_id=org)
    if row is None:
        return s.EmergencyStateOut(active=False, emergency=None)
    out = s.emergency_out(row, await _names(db, row))
    if caller.actor.role not in STAFF_ROLES:
        # As on the banner: the person being helped reads who, when and why, not whom the
        # organisation escalates to.
        out = out.model_copy(update={"escalate_to": []})
    return s.EmergencyStateOut(active=row.lifted_at is None, emergency=out)


@router.post("", response_model=s.EmergencyDeclaredOut, status_code=201)
async def declare(
    body: s.EmergencyReasonIn, caller: Declare, db: DbSession, request: Request
) -> s.EmergencyDeclaredOut:
    try:
        declared = await service.declare(db, actor=caller.actor, reason=body.reason)
    except PolicyDenied:
        await db.rollback()
        await service.record_refusal(db, actor=caller.actor)
        raise
    row = declared.emergency
    out = s.emergency_out(row, await _names(db, row))
    # Committed before the peers hear of it: nobody is told of an end that was rolled back.
    await db.commit()
    await announce_ended(request.app.state.support_sessions, declared.ended)
    return s.EmergencyDeclaredOut(
        **out.model_dump(), rule=declared.decision.rule,
        ended_support_session_ids=[r.id for r in declared.ended],
    )  # fmt: skip


@router.post("/lift", response_model=s.EmergencyOut)
async def lift(body: s.EmergencyReasonIn, caller: Declare, db: DbSession) -> s.EmergencyOut:
    try:
        row = await service.lift(db, actor=caller.actor, reason=body.reason)
    except PolicyDenied:
        await db.rollback()
        await service.record_refusal(db, actor=caller.actor)
        raise
    return s.emergency_out(row, await _names(db, row))

"""Device routes: an end user registers their own devices; staff list the organisation's.

Reading is gated by ``user:read_self`` (any signed-in member) because ``device:read_own`` (end
users) and ``device:read_all`` (staff) are disjoint in the role table; the service then narrows
what the caller sees by which of the two they hold, and answers 404 for anything else.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from auxilio.policy.roles import Permission
from auxilio.server.api.deps import DbSession, Identity, require
from auxilio.server.devices import schemas as s
from auxilio.server.devices import service

router = APIRouter(prefix="/devices", tags=["devices"])

RegisterDevice = Annotated[Identity, require(Permission.DEVICE_REGISTER_OWN)]
ReadDevices = Annotated[Identity, require(Permission.DEVICE_READ)]


@router.post("", response_model=s.DeviceOut, status_code=201)
async def register_device(
    body: s.DeviceCreateIn, caller: RegisterDevice, db: DbSession
) -> s.DeviceOut:
    device = await service.register_device(
        db, name=body.name, platform=str(body.platform), device_group=body.device_group,
        actor=caller.actor,
    )
    return s.DeviceOut.model_validate(device)


@router.get("", response_model=s.DevicePage)
async def list_devices(
    caller: ReadDevices,
    db: DbSession,
    owner_id: uuid.UUID | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> s.DevicePage:
    rows, total = await service.list_devices(
        db, actor=caller.actor, owner_id=owner_id, limit=limit, offset=offset
    )
    return s.DevicePage(items=[s.DeviceOut.model_validate(d) for d in rows], total=total,
                        limit=limit, offset=offset)


@router.get("/{device_id}", response_model=s.DeviceOut)
async def get_device(device_id: uuid.UUID, caller: ReadDevices, db: DbSession) -> s.DeviceOut:
    device = await service.get_visible_device_or_raise(db, device_id=device_id, actor=caller.actor)
    return s.DeviceOut.model_validate(device)

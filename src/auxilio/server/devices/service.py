"""Registering devices and finding them, each caller seeing only what they may.

End users register and see their own devices; staff who hold ``device:read_all`` see every
device of their organisation. A device outside the caller's sight is reported as not found,
never as forbidden, so ids cannot be probed.
"""

from __future__ import annotations

import uuid

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from auxilio.policy.roles import Permission
from auxilio.server.audit.actions import AuditAction
from auxilio.server.audit.service import record
from auxilio.server.context import Actor
from auxilio.server.devices.models import Device
from auxilio.server.errors import DeviceNotFound, Forbidden
from auxilio.server.policies.authorize import authorize_permission


def sees_all_devices(actor: Actor) -> bool:
    """True for ``device:read_all``; False for ``device:read_own``; Forbidden for neither."""
    if authorize_permission(actor, Permission.DEVICE_READ_ALL).allowed:
        return True
    if authorize_permission(actor, Permission.DEVICE_READ_OWN).allowed:
        return False
    raise Forbidden(permission=str(Permission.DEVICE_READ_OWN))


def _org(actor: Actor) -> uuid.UUID:
    if actor.organisation_id is None:
        raise Forbidden("Devices belong to an organisation.")
    return actor.organisation_id


async def register_device(
    db: AsyncSession, *, name: str, platform: str, device_group: str | None, actor: Actor
) -> Device:
    """Register a device owned by the actor (an end user registers their own machines)."""
    if actor.id is None:
        raise Forbidden("Only a person can own a device.")
    device = Device(organisation_id=_org(actor), owner_id=actor.id, name=name, platform=platform,
                    device_group=device_group)
    db.add(device)
    await db.flush()
    await record(db, action=AuditAction.DEVICE_REGISTERED, actor=actor,
                 target_type="device", target_id=device.id,
                 details={"name": name, "platform": platform, "device_group": device_group})
    return device


async def get_device(
    db: AsyncSession, *, organisation_id: uuid.UUID, device_id: uuid.UUID
) -> Device | None:
    """A device of the organisation, whoever owns it (for other domains' own checks)."""
    device = await db.get(Device, device_id)
    return device if device is not None and device.organisation_id == organisation_id else None


async def get_visible_device_or_raise(
    db: AsyncSession, *, device_id: uuid.UUID, actor: Actor
) -> Device:
    device = await get_device(db, organisation_id=_org(actor), device_id=device_id)
    if device is None or (not sees_all_devices(actor) and device.owner_id != actor.id):
        raise DeviceNotFound(device_id=str(device_id))
    return device


def _visible(actor: Actor, owner_id: uuid.UUID | None) -> Select[Device]:
    query = select(Device).where(Device.organisation_id == _org(actor))
    if not sees_all_devices(actor):
        query = query.where(Device.owner_id == actor.id)
    if owner_id is not None:
        query = query.where(Device.owner_id == owner_id)
    return query


async def list_devices(
    db: AsyncSession, *, actor: Actor, owner_id: uuid.UUID | None = None,
    limit: int = 50, offset: int = 0,
) -> tuple[list[Device], int]:
    """One page of the devices the actor may see (newest first) and the total count."""
    query = _visible(actor, owner_id)
    total = (await db.execute(select(func.count()).select_from(query.subquery()))).scalar_one()
    rows = await db.execute(
        query.order_by(Device.created_at.desc(), Device.id).limit(limit).offset(offset)
    )
    return list(rows.scalars()), int(total)

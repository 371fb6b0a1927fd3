"""Policy pilots (R21): a stored version tried on one device group for a period.

While a pilot runs (``starts_at <= t < ends_at``, not stopped), the support sessions requested
for a device of its group and the tickets opened for one are decided by the pilot's version
(``service.get_policy_for``); everything else keeps the active policy. A group has at most one
pilot at any instant, so the version in force for a device is never ambiguous.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from auxilio.policy.roles import Permission
from auxilio.server.audit.actions import AuditAction
from auxilio.server.audit.service import record
from auxilio.server.context import Actor
from auxilio.server.db.base import utcnow
from auxilio.server.errors import Conflict, Forbidden, NotFound, ValidationFailed
from auxilio.server.policies.authorize import authorize_permission
from auxilio.server.policies.models import PolicyPilot, PolicyVersion
from auxilio.server.policies.service import get_version_or_raise

GROUP_MAX = 64


class PilotNotFound(NotFound):
    code = "pilot_not_found"
    default_message = "No such policy pilot."


class PilotOfActiveVersion(Conflict):
    code = "pilot_version_active"
    default_message = "The active policy version applies to every group already; pilot another."


class PilotOverlap(Conflict):
    code = "pilot_overlap"
    default_message = "Another pilot runs for this device group during that period."


class PilotNotRunning(Conflict):
    code = "pilot_not_running"
    default_message = "The pilot has already ended or been stopped."


class PilotGroupInvalid(ValidationFailed):
    code = "pilot_group_invalid"
    default_message = "The device group must be 1 to 64 printable characters."


class PilotPeriodInvalid(ValidationFailed):
    code = "pilot_period_invalid"
    default_message = "A pilot must end after it starts."


def _org(actor: Actor) -> uuid.UUID:
    if actor.organisation_id is None:
        raise Forbidden("Pilots belong to an organisation.")
    return actor.organisation_id


def _check_permission(actor: Actor) -> None:
    """The same permission as activating a version: a pilot activates one for a group."""
    if not authorize_permission(actor, Permission.POLICY_MANAGE).allowed:
        raise Forbidden(permission=str(Permission.POLICY_MANAGE))


def effective_end(pilot: PolicyPilot) -> datetime | None:
    """When the pilot stops applying: the earlier of its end and its stop; None: open-ended."""
    ends = [t for t in (pilot.ends_at, pilot.stopped_at) if t is not None]
    return min(ends) if ends else None


def _overlaps(pilot: PolicyPilot, starts_at: datetime, ends_at: datetime | None) -> bool:
    end = effective_end(pilot)
    if end is not None and end <= pilot.starts_at:
        return False  # stopped before it started: it never applied
    starts_before_new_ends = ends_at is None or pilot.starts_at < ends_at
    ends_after_new_starts = end is None or end > starts_at
    return starts_before_new_ends and ends_after_new_starts


def _check_group(device_group: str) -> str:
    group = device_group.strip()
    if not group or len(group) > GROUP_MAX or not group.isprintable():
        raise PilotGroupInvalid(field="device_group")
    return group


async def start_pilot(
    db: AsyncSession,
    actor: Actor,
    *,
    version_number: int,
    device_group: str,
    starts_at: datetime,
    ends_at: datetime | None,
) -> PolicyPilot:
    """Pilot version ``version_number`` on ``device_group`` from ``starts_at`` to ``ends_at``
    (open-ended: until stopped)."""
    _check_permission(actor)
    org = _org(actor)
    group = _check_group(device_group)
    if ends_at is not None and ends_at <= starts_at:
        raise PilotPeriodInvalid(field="ends_at")
    version = await get_version_or_raise(db, organisation_id=org, number=version_number)
    if version.is_active:
        raise PilotOfActiveVersion(number=version_number)
    # Two starts at once must not both find the group free: locking the organisation's
    # versions (there is at least the piloted one) queues them, the second then sees the first.
    await db.execute(
        select(PolicyVersion.id).where(PolicyVersion.organisation_id == org).with_for_update()
    )
    existing = await db.execute(
        select(PolicyPilot).where(
            PolicyPilot.organisation_id == org, PolicyPilot.device_group == group
        )
    )
    for other in existing.scalars():
        if _overlaps(other, starts_at, ends_at):
            raise PilotOverlap(device_group=group, pilot_id=str(other.id))
    assert actor.id is not None  # noqa: S101 -- a staff member with policy:manage
    pilot = PolicyPilot(
        organisation_id=org,
        policy_version_id=version.id,
        device_group=group,
        starts_at=starts_at,
        ends_at=ends_at,
        created_by=actor.id,
        created_at=utcnow(),
    )
    db.add(pilot)
    await db.flush()
    await record(
        db,
        action=AuditAction.POLICY_PILOT_STARTED,
        actor=actor,
        organisation_id=org,
        target_type="policy_pilot",
        target_id=pilot.id,
        details={
            "number": version.number,
            "sha256": version.sha256,
            "device_group": group,
            "starts_at": starts_at.isoformat(),
            "ends_at": ends_at.isoformat() if ends_at else None,
        },
    )
    return pilot


async def get_pilot_or_raise(
    db: AsyncSession, *, organisation_id: uuid.UUID, pilot_id: uuid.UUID
) -> PolicyPilot:
    pilot = await db.get(PolicyPilot, pilot_id)
    if pilot is None or pilot.organisation_id != organisation_id:
        raise PilotNotFound(pilot_id=str(pilot_id))
    return pilot


async def stop_pilot(db: AsyncSession, actor: Actor, pilot_id: uuid.UUID) -> PolicyPilot:
    """Stop the pilot now: the group's devices are decided by the active policy again."""
    _check_permission(actor)
    org = _org(actor)
    pilot = await get_pilot_or_raise(db, organisation_id=org, pilot_id=pilot_id)
    now = utcnow()
    end = effective_end(pilot)
    if end is not None and end <= now:
        raise PilotNotRunning(pilot_id=str(pilot_id))
    pilot.stopped_at = now
    await db.flush()
    await record(
        db,
        action=AuditAction.POLICY_PILOT_STOPPED,
        actor=actor,
        organisation_id=org,
        target_type="policy_pilot",
        target_id=pilot.id,
        details={"device_group": pilot.device_group, "started": pilot.starts_at <= now},
    )
    return pilot


async def list_pilots(
    db: AsyncSession, organisation_id: uuid.UUID
) -> list[tuple[PolicyPilot, PolicyVersion]]:
    """Every pilot of the organisation with its version, the latest start first."""
    rows = await db.execute(
        select(PolicyPilot, PolicyVersion)
        .join(PolicyVersion, PolicyVersion.id == PolicyPilot.policy_version_id)
        .where(PolicyPilot.organisation_id == organisation_id)
        .order_by(PolicyPilot.starts_at.desc(), PolicyPilot.created_at.desc())
    )
    return [(pilot, version) for pilot, version in rows]


def pilot_state(pilot: PolicyPilot, now: datetime) -> str:
    """``scheduled``, ``running``, ``ended`` or ``stopped`` at ``now``."""
    if pilot.stopped_at is not None and pilot.stopped_at <= now:
        return "stopped"
    if pilot.ends_at is not None and pilot.ends_at <= now:
        return "ended"
    return "running" if pilot.starts_at <= now else "scheduled"

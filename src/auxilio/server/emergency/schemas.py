"""Request and response bodies of the emergency routes."""

from __future__ import annotations

import uuid
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, StringConstraints

from auxilio.server.emergency.models import Emergency

# The service trims and checks it again (emergency.reason_required / _invalid / _too_long).
Reason = Annotated[str, StringConstraints(min_length=1, max_length=2000)]


class EmergencyReasonIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Reason


class EmergencyOut(BaseModel):
    id: uuid.UUID
    active: bool
    declared_by: uuid.UUID
    declared_by_name: str
    declared_at: AwareDatetime
    reason: str
    policy_version: str | None
    # The policy's emergency.actions at the declaration: end_all_sessions, lock_unattended.
    actions: list[str]
    # Notified in the console (the banner); no email is sent: the server has none yet. Empty
    # for end users in GET /emergency, as on their banner.
    escalate_to: list[str]
    sessions_ended: int
    lifted_by: uuid.UUID | None
    lifted_by_name: str | None
    lifted_at: AwareDatetime | None
    lift_reason: str | None


class EmergencyStateOut(BaseModel):
    active: bool
    # The active emergency; without one, the last lifted one (null if there never was one).
    emergency: EmergencyOut | None


class EmergencyDeclaredOut(EmergencyOut):
    rule: str  # the policy rule that allowed it (emergency.declare_roles)
    ended_support_session_ids: list[uuid.UUID]


def emergency_out(row: Emergency, names: dict[uuid.UUID, str]) -> EmergencyOut:
    return EmergencyOut(
        id=row.id, active=row.lifted_at is None, declared_by=row.declared_by,
        declared_by_name=names.get(row.declared_by, "?"), declared_at=row.declared_at,
        reason=row.reason, policy_version=row.policy_version, actions=list(row.actions or []),
        escalate_to=list(row.escalate_to or []), sessions_ended=row.sessions_ended,
        lifted_by=row.lifted_by,
        lifted_by_name=names.get(row.lifted_by) if row.lifted_by else None,
        lifted_at=row.lifted_at, lift_reason=row.lift_reason,
    )  # fmt: skip

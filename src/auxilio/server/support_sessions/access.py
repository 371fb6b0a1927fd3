"""Whether the technician of a live support session may still run it (issue 7 §3).

Access is checked when a session is requested and again on every scheduler tick while it is
live, so that what identity changes afterwards reaches sessions already running: a revoked token,
a deactivated user, a role that no longer may run the session, a training the active policy
requires that was removed or has expired. The check reads identity through its services (the
identity domain never learns about support sessions); the scheduler ends what fails it.

Any token of the technician revoked after the session was requested ends it: the server cannot
tell which of a person's tokens drove which step (REST on one node, the WebSocket on another), and
a revocation is the moment someone decided that a credential must stop working.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from auxilio.policy.roles import Permission, Role, role_has_permission
from auxilio.policy.schema import Policy
from auxilio.protocol.types import Capability
from auxilio.server.identity import auth
from auxilio.server.identity import service as identity
from auxilio.server.policies import service as policies
from auxilio.server.support_sessions.models import SupportSession
from auxilio.server.support_sessions.service import POLICY_NAMES


@dataclass(frozen=True, slots=True)
class _Technician:
    """What identity says about one technician right now (or that they are gone)."""

    detail: str | None  # a standing reason to end every session of theirs, or None
    revoked_at: datetime | None = None  # their latest token revocation
    role: Role | None = None


@dataclass
class AccessCheck:
    """One round of checks; identity is read once per technician per round."""

    db: AsyncSession
    now: datetime
    # By technician and the policy version their session was decided with (a pilot's
    # version can require other trainings than the active one).
    _seen: dict[tuple[uuid.UUID, str | None], _Technician] = field(default_factory=dict)
    _policies: dict[tuple[uuid.UUID, str | None], Policy] = field(default_factory=dict)

    async def _policy(self, support_session: SupportSession) -> Policy:
        key = (support_session.organisation_id, support_session.policy_version)
        found = self._policies.get(key)
        if found is None:
            active = await policies.policy_for_session(self.db, support_session)
            found = self._policies[key] = active.policy
        return found

    async def lost(self, support_session: SupportSession) -> str | None:
        """Why ``support_session``'s technician lost access (the ``session.end`` detail)."""
        seen = (support_session.technician_id, support_session.policy_version)
        tech = self._seen.get(seen)
        if tech is None:
            tech = await self._technician(support_session)
            self._seen[seen] = tech
        if tech.detail is not None:
            return tech.detail
        if tech.revoked_at is not None and tech.revoked_at >= support_session.created_at:
            return "token_revoked"
        assert tech.role is not None  # noqa: S101 -- set whenever detail is None
        return await self._role_allows(support_session, tech.role)

    async def _technician(self, support_session: SupportSession) -> _Technician:
        user = await identity.get_user(
            self.db,
            organisation_id=support_session.organisation_id,
            user_id=support_session.technician_id,
        )
        if user is None or not user.is_active:
            return _Technician("user_deactivated")
        revoked_at = await auth.last_revocation(self.db, user_id=user.id)
        if not role_has_permission(Role(user.role), Permission.SUPPORT_SESSION_REQUEST):
            return _Technician("role_removed", revoked_at)
        policy = await self._policy(support_session)
        done = await identity.current_trainings(self.db, user=user, now=self.now)
        for required in policy.staff.trainings_required:
            completed = done.get(required.id)
            if completed is None:
                lapsed = any(
                    row.training_id == required.id
                    for row in await identity.list_trainings(self.db, user=user)
                )
                state = "expired" if lapsed else "missing"
                return _Technician(f"training_{state}:{required.id}", revoked_at)
            if self.now - completed > required.max_age:
                return _Technician(f"training_expired:{required.id}", revoked_at)
        return _Technician(None, revoked_at, Role(user.role))

    async def _role_allows(self, support_session: SupportSession, role: Role) -> str | None:
        """The policy names the roles per capability: a role change can take one away."""
        policy = await self._policy(support_session)
        for name in support_session.requested_capabilities:
            rule = policy.capabilities.get(POLICY_NAMES[Capability(name)])
            if rule is not None and role not in rule.roles:
                return "role_removed"
        return None

"""Route permissions, answered through the policy engine (one place decides)."""

from __future__ import annotations

from dataclasses import dataclass

from auxilio.policy.roles import Permission, role_has_permission
from auxilio.server.context import Actor


@dataclass(frozen=True, slots=True)
class PermissionDecision:
    allowed: bool
    rule: str


def authorize_permission(actor: Actor, permission: Permission) -> PermissionDecision:
    if actor.role is None:
        return PermissionDecision(False, "default")
    if actor.scopes is not None and str(permission) not in actor.scopes:
        return PermissionDecision(False, "token.scopes")
    allowed = role_has_permission(actor.role, permission)
    return PermissionDecision(allowed, f"roles.{actor.role.value}" if allowed else "default")

"""Route permissions, answered through the policy engine (one place decides)."""

from __future__ import annotations

from auxilio.policy import Decision, Permission, authorize
from auxilio.policy.decision import Effect
from auxilio.server.context import Actor


def authorize_permission(actor: Actor, permission: Permission) -> Decision:
    """The engine's answer for the actor's role, narrowed further by a token's scopes."""
    if actor.role is None:
        return authorize("", permission)
    decision = authorize(actor.role, permission)
    if decision.allowed and actor.scopes is not None and str(permission) not in actor.scopes:
        return decision._replace(
            effect=Effect.DENY,
            rule="token.scopes",
            reason=f"The token is not scoped for {permission}.",
        )
    return decision

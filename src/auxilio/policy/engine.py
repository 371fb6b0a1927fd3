"""The decision engine: ``evaluate``, ``explain`` and ``authorize``.

Semantics (docs/policy.md): every rule of the request kind is read in order; the strongest
outcome wins (deny > require_approval > require_consent > allow), so a deny always overrides;
and unless some rule grants (ALLOW) the answer is deny with rule ``default``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

from auxilio.policy.compiled import CompiledPolicy, compile_policy
from auxilio.policy.decision import (
    NO_OBLIGATIONS,
    STRENGTH,
    Decision,
    Effect,
    Explanation,
    RuleOutcome,
)
from auxilio.policy.requests import (
    AccessFile,
    CheckPermission,
    DeclareEmergency,
    EvaluationContext,
    ExtendSession,
    Request,
    StartSupportSession,
    UseCapability,
    UseExternalTool,
)
from auxilio.policy.roles import ROLE_PERMISSIONS, Permission, Role
from auxilio.policy.rules import (
    capability_rules,
    emergency_rules,
    extend_rules,
    file_rules,
    start_rules,
)
from auxilio.policy.schema import Platform, Policy, SessionMode

_DENY, _ALLOW = Effect.DENY, Effect.ALLOW
_APPROVAL = Effect.REQUIRE_APPROVAL
# Kept importable for callers that rank effects themselves; _decide encodes the same order.
EFFECT_ORDER = STRENGTH

RuleSet = Callable[[CompiledPolicy, Any, EvaluationContext], Iterator[RuleOutcome]]


@dataclass(frozen=True, slots=True)
class _ExternalToolAsk:
    """An external tool asked as the catalogue entry "external_tools.<tool>". A plain
    dataclass: building a pydantic model here cost more than the whole decision."""

    capability: str
    technician_role: Role
    mode: SessionMode
    ticket_id: str | None
    platform: Platform | None = None
    path: str | None = None
    direction: Literal["upload", "download"] | None = None
    size: int | None = None
    runbook_id: str | None = None
    terminal_shell: str | None = None
    reason: str = ""


def _external_tool_rules(
    cp: CompiledPolicy, req: UseExternalTool, ctx: EvaluationContext
) -> Iterator[RuleOutcome]:
    ask = _ExternalToolAsk(
        f"external_tools.{req.tool}", req.technician_role, req.mode, req.ticket_id
    )
    return capability_rules(cp, ask, ctx)


_RULES: dict[type, RuleSet] = {
    StartSupportSession: start_rules,
    UseCapability: capability_rules,
    UseExternalTool: _external_tool_rules,
    ExtendSession: extend_rules,
    AccessFile: file_rules,
    DeclareEmergency: emergency_rules,
}


def evaluate(
    policy: Policy | CompiledPolicy, request: Request, context: EvaluationContext
) -> Decision:
    """May this happen now under this policy?  Pure: the time is ``context.now``."""
    if isinstance(request, CheckPermission):
        return authorize(request.role, request.permission)
    cp = policy if isinstance(policy, CompiledPolicy) else compile_policy(policy)
    return _decide(cp, _RULES[type(request)](cp, request, context), None)


def explain(
    policy: Policy | CompiledPolicy, request: Request, context: EvaluationContext
) -> Explanation:
    """The decision and every rule considered on the way, in evaluation order."""
    if isinstance(request, CheckPermission):
        decision = authorize(request.role, request.permission)
        step = RuleOutcome(
            decision.rule, decision.effect, decision.reason, None, decision.reason_code,
            decision.params,
        )  # fmt: skip
        return Explanation(decision, (step,))
    cp = policy if isinstance(policy, CompiledPolicy) else compile_policy(policy)
    trail: list[RuleOutcome] = []
    decision = _decide(cp, _RULES[type(request)](cp, request, context), trail)
    if decision.rule == "default":
        trail.append(
            RuleOutcome("default", Effect.DENY, decision.reason, None, decision.reason_code)
        )
    return Explanation(decision, tuple(trail))


def _decide(
    cp: CompiledPolicy, outcomes: Iterator[RuleOutcome], trail: list[RuleOutcome] | None
) -> Decision:
    # Written out with identity checks rather than STRENGTH lookups: enum hashing is a Python
    # call, and this loop runs on every decision.  The order is the same as STRENGTH's.
    denied: RuleOutcome | None = None
    strongest: RuleOutcome | None = None
    grant: RuleOutcome | None = None
    for outcome in outcomes:
        if trail is not None:
            trail.append(outcome)
        effect = outcome.effect
        if effect is None:
            continue
        if effect is _DENY:
            if denied is None:
                denied = outcome
            if trail is None:
                break  # deny overrides: nothing read later can change the answer
        elif effect is _ALLOW:
            if grant is None:
                grant = outcome
            if strongest is None:
                strongest = outcome
        elif effect is _APPROVAL:
            if strongest is None or strongest.effect is not _APPROVAL:
                strongest = outcome
        elif strongest is None or strongest.effect is _ALLOW:
            strongest = outcome  # require_consent outranks only allow
    if denied is not None:
        return Decision(
            _DENY, denied.rule, denied.reason, cp.version, NO_OBLIGATIONS,
            denied.reason_code, denied.params,
        )  # fmt: skip
    if grant is None or strongest is None:
        return _default(cp.version)
    obligations = grant.obligations or NO_OBLIGATIONS
    if strongest is not grant and strongest.obligations is not None:
        # The condition that decided (a consent prompt, an approval) travels with the
        # grant's limits.
        extra = strongest.obligations
        obligations = obligations._replace(
            consent=extra.consent or obligations.consent,
            zones=extra.zones or obligations.zones,
        )
    assert strongest.effect is not None  # noqa: S101 - strongest only ever holds decided outcomes
    return Decision(
        strongest.effect, strongest.rule, strongest.reason, cp.version, obligations,
        strongest.reason_code, strongest.params,
    )  # fmt: skip


def _default(version: str | None) -> Decision:
    return Decision(
        Effect.DENY, "default", "no rule of the policy allows this", version, NO_OBLIGATIONS,
        "default.no_rule_allows",
    )  # fmt: skip


# ------------------------------------------------------------------------------------- authorize


def _permission_table() -> dict[tuple[str, str], Decision]:
    table: dict[tuple[str, str], Decision] = {}
    for role in Role:
        held = ROLE_PERMISSIONS.get(role, frozenset())
        for permission in Permission:
            params = MappingProxyType({"role": str(role), "permission": str(permission)})
            if permission in held:
                decision = Decision(
                    Effect.ALLOW, f"roles.{role}", f"the role {role} holds {permission}", None,
                    NO_OBLIGATIONS, "roles.permission_held", params,
                )  # fmt: skip
            else:
                decision = Decision(
                    Effect.DENY, f"roles.{role}", f"the role {role} does not hold {permission}",
                    None, NO_OBLIGATIONS, "roles.permission_missing", params,
                )  # fmt: skip
            table[(role, permission)] = decision
    return table


# Every (role, permission) pair answered in advance: a route check is one dict lookup.  StrEnum
# members hash like their strings, so plain "admin" / "audit:read" keys hit the same entries.
_PERMISSIONS = _permission_table()
_UNKNOWN = Decision(
    Effect.DENY, "default", "unknown role or permission", None, NO_OBLIGATIONS, "roles.unknown"
)


def authorize(role: Role | str, permission: Permission | str) -> Decision:
    """May ``role`` use ``permission``?  From ``roles.ROLE_PERMISSIONS``; deny by default."""
    return _PERMISSIONS.get((role, permission), _UNKNOWN)

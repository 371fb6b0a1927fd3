"""What the engine answers: a :class:`Decision`, and for ``explain`` the whole trail of rules."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple

from auxilio.policy.reasons import NO_PARAMS, ReasonParams
from auxilio.policy.roles import Role
from auxilio.policy.schema import ConsentMethod, ConsentScope, OnTimeout, RecordingMode


class Effect(StrEnum):
    ALLOW = "allow"
    DENY = "deny"
    REQUIRE_CONSENT = "require_consent"
    REQUIRE_APPROVAL = "require_approval"


# How the outcomes of several rules combine: the strongest wins, so a deny always overrides.
STRENGTH: dict[Effect, int] = {
    Effect.ALLOW: 0,
    Effect.REQUIRE_CONSENT: 1,
    Effect.REQUIRE_APPROVAL: 2,
    Effect.DENY: 3,
}

# The value types below are NamedTuples rather than frozen dataclasses: just as immutable, and
# several times cheaper to build, which matters at tens of thousands of decisions a second.


class ConsentObligation(NamedTuple):
    """What the consent prompt must look like and what silence means."""

    subject: str  # "session", a capability name, or "zone:<name>"
    methods: tuple[ConsentMethod, ...]
    timeout: dt.timedelta
    on_timeout: OnTimeout
    scope: ConsentScope
    reason_required: bool = False


class Obligations(NamedTuple):
    """Conditions attached to a decision; the server and the agent both enforce them."""

    record: RecordingMode | None = None
    end_at: dt.datetime | None = None
    warn_at: dt.datetime | None = None
    idle_timeout: dt.timedelta | None = None
    consent: ConsentObligation | None = None
    zones: tuple[str, ...] = ()
    notify_user: bool = False
    ticket_required: bool = False
    approver_role: Role | None = None
    max_size: int | None = None
    emergency_actions: tuple[str, ...] = ()
    escalate_to: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, without the fields left at their empty default."""
        defaults = Obligations._field_defaults
        return {
            k: _jsonable(v._asdict() if isinstance(v, ConsentObligation) else v)
            for k, v in self._asdict().items()
            if v != defaults[k]
        }


NO_OBLIGATIONS = Obligations()


class Decision(NamedTuple):
    effect: Effect
    rule: str
    reason: str
    policy_version: str | None
    obligations: Obligations = NO_OBLIGATIONS
    # The reason by its stable code (auxilio.policy.reasons.REASONS) and what fills it.
    reason_code: str = ""
    params: ReasonParams = NO_PARAMS

    @property
    def allowed(self) -> bool:
        return self.effect is Effect.ALLOW

    def as_dict(self) -> dict[str, Any]:
        return {
            "effect": self.effect.value,
            "rule": self.rule,
            "reason": self.reason,
            "reason_code": self.reason_code,
            "params": dict(self.params),
            "policy_version": self.policy_version,
            "obligations": self.obligations.as_dict(),
        }


class RuleOutcome(NamedTuple):
    """One rule's verdict.  ``effect`` None means the rule was considered and had no objection
    (it neither grants nor denies on its own)."""

    rule: str
    effect: Effect | None
    reason: str
    obligations: Obligations | None = None
    reason_code: str = ""
    params: ReasonParams = NO_PARAMS


@dataclass(frozen=True, slots=True)
class Explanation:
    decision: Decision
    trail: tuple[RuleOutcome, ...] = field(default_factory=tuple)

    def as_dict(self) -> dict[str, Any]:
        return {
            "decision": self.decision.as_dict(),
            "trail": [
                {
                    "rule": o.rule,
                    "outcome": o.effect.value if o.effect else "pass",
                    "reason": o.reason,
                    "reason_code": o.reason_code,
                    "params": dict(o.params),
                }
                for o in self.trail
            ],
        }


def _jsonable(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value
